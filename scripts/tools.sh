#!/usr/bin/env bash
# Installs the tools the tests and linters need when they are missing. Go tools are
# cached under .cache/bin so that a second run costs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.cache/bin"
mkdir -p "$BIN"

STATICCHECK_VERSION=v0.8.2   # honnef.co/go/tools (staticcheck 2026.1 line)

if [ ! -x "$BIN/staticcheck" ] || ! "$BIN/staticcheck" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  echo "tools: installing staticcheck $STATICCHECK_VERSION into .cache/bin"
  GOBIN="$BIN" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
