"""An exec handler for the fs trigger: counts the rows of a CSV file.

The CloudEvent arrives on stdin; its data names the file. What is printed on stdout is
the result; stderr is the attempt's log. Exit code 3 would be a failure not worth retrying
(add `permanent_exit_codes: [3]` to the handler to make it so).
"""
import csv
import json
import sys

event = json.load(sys.stdin)
path = event["data"]["abs_path"]
with open(path, newline="", encoding="utf-8", errors="replace") as f:
    rows = sum(1 for _ in csv.reader(f))
print(f"{event['data']['path']}: {rows} rows", file=sys.stderr)
json.dump({"file": event["data"]["path"], "rows": rows}, sys.stdout)
