#!/bin/sh
# The event's data says which slot this is and whether it runs late (past_due).
event=$(cat)
printf '%s\n' "$event" >> ticks.jsonl
echo "tick $FNHOST_INVOCATION_ID" >&2
