// Package manifest reads functions.yaml: strict decoding with file:line:col errors,
// ${VAR} and ${VAR:-default} expansion, defaults merged into every function, and
// validation of everything that can be checked before the host starts.
//
// # Decoding
//
// Load and Parse decode the whole file and report every problem they find, not only
// the first, as an *Errors whose Error method prints one "file:line:col: message" per
// line. Unknown keys (with a suggestion when one is close), values of the wrong type,
// duplicate keys, bad durations and enumerations, and references to functions that do
// not exist are all problems. Anchors, aliases and merge keys (<<) work as in YAML.
//
// Durations are Go durations (500ms, 30s, 1m30s, 2h) that may start with whole days
// (7d, 1d12h). Keys are snake_case. A key with nothing after it means the same as a
// key left out.
//
// # Environment
//
// In every scalar value, ${VAR} is replaced by the variable's value and ${VAR:-default}
// by the value, or by the default when the variable is unset or empty; $$ is a literal
// $. A variable that is unset and has no default is a problem. Expansion happens
// before conversion, so "workers: ${WORKERS:-8}" is an integer, and references need no
// quotes even inside flow mappings ("auth: {key: ${HOOK_KEY}}"). Secret values
// (api_key, auth keys and HMAC secrets, s3 keys and tokens, http handler headers) are
// of type Secret: they print as "***" and never appear in problems.
//
// # Reference
//
//	version: 1                     # required
//	host:
//	  listen: 127.0.0.1:8080       # host:port
//	  storage: sqlite:.fnhost/fnhost.db   # sqlite:PATH or a bare PATH (relative to
//	                               # this file), or postgres://... / postgresql://...
//	  workers: 32                  # >= 1
//	  api_key: ${FNHOST_API_KEY}   # required unless listen is loopback or localhost
//	  log: {format: text, level: info}    # text|json; debug|info|warn|error
//	  retention: 168h              # how long finished invocations are kept
//	  lease: 30s                   # >= 1s
//	  shutdown_timeout: 30s
//	  max_log_bytes: 65536
//	  max_body_bytes: 1048576
//	  dashboard: {enabled: true, read_only: false}   # the web UI at /dashboard/
//	defaults:
//	  timeout: 30s
//	  retry:
//	    max_attempts: 5            # >= 1, counting the first run
//	    backoff: exponential       # exponential|fixed
//	    initial_interval: 1s
//	    max_interval: 5m           # >= initial_interval
//	    jitter: 0.1                # 0..1
//	functions:                     # at least one
//	  NAME:                        # [a-z0-9][a-z0-9_-]{0,62}
//	    description: text
//	    handler:                   # exactly one of builtin, exec, http
//	      builtin: echo
//	      exec: [python3, handler.py]     # a list: no shell is used
//	      dir: .                   # exec only; relative to this file
//	      env: {KEY: value}        # exec only
//	      permanent_exit_codes: [2] # exec only; 1..255, fail without retry
//	      grace_period: 5s         # exec only; SIGTERM to SIGKILL
//	      http: https://host/path
//	      headers: {Authorization: "Bearer ${TOKEN}"}   # http only
//	    timeout: 30s               # overrides defaults.timeout
//	    retry: {max_attempts: 3}   # overrides defaults.retry field by field
//	    concurrency: 0             # >= 0; 0 means only the host's cap
//	    then: [other]              # or a single name; run after success
//	    on_failure: alert          # run once when attempts are exhausted
//	    triggers:                  # each item has exactly one kind
//	      - http:
//	          path: /hooks/NAME    # not under /api/, /dashboard, /metrics, /healthz, /readyz
//	          methods: [POST]
//	          mode: async          # sync|async
//	          auth: {key: ${KEY}}  # or {hmac: {secret: ${S}, header: X-Hub-Signature-256}}
//	          max_body_bytes: 1048576
//	      - cron:
//	          schedule: "0 2 * * *"  # 5 fields, 6 with seconds, or @daily, @every 30s
//	          timezone: Europe/Rome
//	          missed: one          # one|all|skip
//	          overlap: skip        # skip|allow|queue
//	      - fs:
//	          path: ./inbox        # relative to this file
//	          pattern: "*"
//	          recursive: false
//	          events: [created]    # created|modified|deleted
//	          settle: 500ms
//	          existing: false
//	          rescan: 30s
//	      - s3:
//	          endpoint: http://127.0.0.1:9000   # required for mode: listen
//	          region: us-east-1
//	          bucket: uploads      # required
//	          prefix: images/
//	          suffix: .jpg
//	          events: [created]    # created|removed|s3:ObjectCreated:*...
//	          access_key: ${AK}
//	          secret_key: ${SK}
//	          token: ${TOKEN}
//	          mode: webhook        # webhook|listen|poll|sqs
//	          interval: 1s         # poll only
//	          queue_url: https://sqs...   # sqs only, and required for it
//	          path_style: false
//	          insecure: false
//	          download: false
//	          profile: ""          # a profile of the shared AWS config files
//	          ca_file: ""          # PEM bundle to trust for endpoint
//	          reconcile: 5m        # push modes: list the bucket this often (and at start)
//	          target: ""           # webhook: MinIO target ID to add to the bucket's notifications
//	      - queue: {name: orders}  # [a-zA-Z0-9][a-zA-Z0-9._-]{0,127}
package manifest
