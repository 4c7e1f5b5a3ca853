#!/bin/sh
# An exec handler: the CloudEvent arrives on stdin, stdout is the result, stderr the log.
# Exit 0 is success; anything else is retried.
echo "heartbeat: attempt $FNHOST_ATTEMPT of invocation $FNHOST_INVOCATION_ID" >&2
printf '{"at": "%s"}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
