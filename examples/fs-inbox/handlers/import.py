"""Imports a CSV file: here it only counts rows and sums the second column.

The event's data names the file: path (relative to the inbox), abs_path, size, mtime, op.
A file that is not CSV exits with 3, which the manifest lists as a permanent failure.
"""
import csv
import json
import sys

event = json.load(sys.stdin)
data = event["data"]
try:
    with open(data["abs_path"], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
except (UnicodeDecodeError, csv.Error) as err:
    print(f"{data['path']}: not a CSV file: {err}", file=sys.stderr)
    sys.exit(3)

total = 0.0
for row in rows[1:]:
    try:
        total += float(row[1])
    except (IndexError, ValueError):
        pass
print(f"imported {data['path']} ({data['op']}): {len(rows)} rows", file=sys.stderr)
json.dump({"file": data["path"], "rows": len(rows), "total": total}, sys.stdout)
