#!/usr/bin/env bash
# Installs the tools the tests and linters need when they are missing: the Go ones into
# .cache/bin, the others from Debian's packages.
#
#   scripts/tools.sh              all of them (what `make test` needs): staticcheck, minio,
#                                 versitygw, chromium, postgresql
#   scripts/tools.sh chromium     only the named tools
#
# minio and versitygw are built once per user into a shared cache,
# ${XDG_CACHE_HOME:-$HOME/.cache}/fnhost/bin, and copied (hard-linked when possible)
# from there, so another clone on the same machine gets them at no cost. Put binaries
# there to pre-seed it. chromium (for internal/browsertest) and postgresql (for
# internal/pgtest) are Debian packages, installed with apt-get when running as root;
# they count as there when those harnesses find them: chromium as $FNHOST_CHROMIUM or a
# chromium, chromium-browser, google-chrome or headless-shell command, postgresql as
# $FNHOST_PG_BIN/initdb or /usr/lib/postgresql/*/bin/initdb.
#
# FNHOST_SKIP_TOOLS=1 (or "all") installs nothing; a list such as "minio versitygw"
# skips those tools. Without CI=true a tool that cannot be installed is only a warning
# (its tests skip); with CI=true it is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.cache/bin"
SHARED="${XDG_CACHE_HOME:-$HOME/.cache}/fnhost/bin"
mkdir -p "$BIN"

STATICCHECK_VERSION=v0.8.2   # honnef.co/go/tools (staticcheck 2026.1 line)
MINIO_PKG="github.com/minio/minio@${FNHOST_MINIO_VERSION:-latest}"
VERSITYGW_PKG="github.com/versity/versitygw/cmd/versitygw@${FNHOST_VERSITYGW_VERSION:-latest}"

skip=" ${FNHOST_SKIP_TOOLS:-} "
skip="${skip//,/ }"
case "$skip" in
  " 1 "|*" all "*) echo "tools: FNHOST_SKIP_TOOLS=$FNHOST_SKIP_TOOLS, installing nothing"; exit 0 ;;
esac
skipped() { [[ "$skip" == *" $1 "* ]] && echo "tools: $1 skipped (FNHOST_SKIP_TOOLS)"; }

# fail MESSAGE: an error under CI=true, a warning otherwise.
fail() {
  if [ "${CI:-}" = "true" ]; then
    echo "tools: error: $1" >&2
    exit 1
  fi
  echo "tools: warning: $1; the tests that need it will skip" >&2
}

install_staticcheck() {
  if [ ! -x "$BIN/staticcheck" ] || ! "$BIN/staticcheck" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
    echo "tools: installing staticcheck $STATICCHECK_VERSION into .cache/bin"
    GOBIN="$BIN" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  fi
}

# go_server NAME PACKAGE: .cache/bin/NAME from the shared cache, which `go install`
# fills first when it has no NAME.
go_server() {
  local name=$1 pkg=$2
  [ -x "$BIN/$name" ] && return 0
  if [ ! -x "$SHARED/$name" ]; then
    echo "tools: building $name ($pkg) into $SHARED; this takes minutes, once per machine"
    mkdir -p "$SHARED"
    if ! GOBIN="$SHARED" go install "$pkg"; then
      fail "could not build $name ($pkg)"
      return 0
    fi
  fi
  if ln -f "$SHARED/$name" "$BIN/$name" 2>/dev/null; then
    echo "tools: $name linked into .cache/bin from $SHARED"
  else
    cp -f "$SHARED/$name" "$BIN/$name.tmp" && mv -f "$BIN/$name.tmp" "$BIN/$name"
    echo "tools: $name copied into .cache/bin from $SHARED"
  fi
}

# have_chromium: a Chromium that internal/browsertest finds.
have_chromium() {
  if [ -n "${FNHOST_CHROMIUM:-}" ]; then
    [ -x "$FNHOST_CHROMIUM" ]
    return
  fi
  local name
  for name in chromium chromium-browser google-chrome headless-shell; do
    command -v "$name" >/dev/null 2>&1 && return 0
  done
  [ -x /usr/bin/chromium ]
}

# have_postgresql: PostgreSQL's initdb and postgres where internal/pgtest looks for
# them: $FNHOST_PG_BIN alone when it is set, else /usr/lib/postgresql/*/bin, else the
# directory of initdb in PATH.
have_postgresql() {
  local d
  pg_bin_ok() { [ -x "$1/initdb" ] && [ -x "$1/postgres" ]; }
  if [ -n "${FNHOST_PG_BIN:-}" ]; then
    pg_bin_ok "$FNHOST_PG_BIN"
    return
  fi
  for d in /usr/lib/postgresql/*/bin; do
    pg_bin_ok "$d" && return 0
  done
  d=$(command -v initdb 2>/dev/null) || return 1
  pg_bin_ok "$(dirname "$(readlink -f "$d")")"
}

# deb_tool NAME PACKAGE...: makes sure tool NAME is there (have_NAME), installing the
# Debian packages with apt-get when running as root.
deb_tool() {
  local name=$1; shift
  "have_$name" && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "$name is missing: install the Debian package(s) $* (as root: apt-get install $*)"
    return 0
  fi
  echo "tools: apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@"; then
    if ! { apt-get update -q && apt-get install -y --no-install-recommends "$@"; }; then
      fail "apt-get install $* failed"
      return 0
    fi
  fi
  "have_$name" || fail "$name is still missing after apt-get install $*"
}

install_tool() {
  skipped "$1" && return 0
  case "$1" in
    staticcheck) install_staticcheck ;;
    minio)       go_server minio "$MINIO_PKG" ;;
    versitygw)   go_server versitygw "$VERSITYGW_PKG" ;;
    chromium)    deb_tool chromium chromium ;;
    postgresql)  deb_tool postgresql postgresql ;;
    *) echo "tools: unknown tool $1 (want staticcheck, minio, versitygw, chromium or postgresql)" >&2; exit 2 ;;
  esac
}

# ready TOOL: whether the tool is there now.
ready() {
  case "$1" in
    chromium|postgresql) "have_$1" ;;
    *) [ -x "$BIN/$1" ] ;;
  esac
}

if [ $# -eq 0 ]; then
  set -- staticcheck minio versitygw chromium postgresql
fi
tools=()
for tool in "$@"; do
  [ "$tool" = postgres ] && tool=postgresql # the name of the server, for short
  tools+=("$tool")
done
for tool in "${tools[@]}"; do
  install_tool "$tool"
done
have=()
for tool in "${tools[@]}"; do
  if ready "$tool"; then
    have+=("$tool")
  fi
done
echo "tools: ready: ${have[*]:-nothing}"
