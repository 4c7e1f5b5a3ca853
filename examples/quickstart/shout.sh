#!/bin/sh
# An exec handler. The event arrives on stdin as CloudEvent JSON; what the handler
# prints on stdout is its result; stderr is its log. Exit 0 means success.
event=$(cat)
echo "shout: invocation $FNHOST_INVOCATION_ID, attempt $FNHOST_ATTEMPT of $FNHOST_MAX_ATTEMPTS" >&2
printf '{"shouted": "%s"}\n' "$(printf '%s' "$event" | tr '[:lower:]' '[:upper:]' | sed 's/"/\\"/g')"
