#!/bin/sh
# The request (method, path, headers without secrets, body) is the event's data.
event=$(cat)
echo "push received by invocation $FNHOST_INVOCATION_ID (attempt $FNHOST_ATTEMPT)" >&2
printf '%s\n' "$event" >> pushes.jsonl
echo '{"recorded": true}'
