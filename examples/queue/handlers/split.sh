#!/bin/sh
# A handler emits messages by answering {"fnhost_messages": [{"queue": …, "data": …}]}:
# they are enqueued in the same transaction that records this success.
event=$(cat)
order=$(printf '%s' "$event" | sed 's/.*"order": *"\([^"]*\)".*/\1/')
echo "splitting order $order" >&2
cat <<JSON
{"order": "$order", "fnhost_messages": [
  {"queue": "items", "data": {"order": "$order", "line": 1}, "dedup_key": "$order-1"},
  {"queue": "items", "data": {"order": "$order", "line": 2}, "dedup_key": "$order-2"}
]}
JSON
