"""An exec handler: the CloudEvent arrives on stdin, the result goes to stdout, the log
to stderr. Exit 3 is listed in permanent_exit_codes: bad input is not retried."""
import json
import os
import sys

event = json.load(sys.stdin)
data = event.get("data") or {}
text = data.get("text") if isinstance(data, dict) else None
if not isinstance(text, str):
    print('bad input: the data needs a "text" string', file=sys.stderr)
    sys.exit(3)

print(f"counting words for invocation {os.environ['FNHOST_INVOCATION_ID']} "
      f"(attempt {os.environ['FNHOST_ATTEMPT']}, hint {os.environ.get('LANGUAGE_HINT')})",
      file=sys.stderr)
words = text.split()
json.dump({"words": len(words), "longest": max(words, key=len) if words else None}, sys.stdout)
