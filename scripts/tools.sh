#!/usr/bin/env bash
# Installs the tools the tests and linters need when they are missing, into .cache/bin.
#
#   scripts/tools.sh              staticcheck, minio, versitygw (what `make test` needs)
#   scripts/tools.sh chromium     only the named tools (staticcheck minio versitygw chromium)
#
# minio and versitygw are built once per user into a shared cache,
# ${XDG_CACHE_HOME:-$HOME/.cache}/fnhost/bin, and copied (hard-linked when possible)
# from there, so another clone on the same machine gets them at no cost. Put binaries
# there to pre-seed it. Debian packages (chromium) are installed with apt-get when
# running as root.
#
# FNHOST_SKIP_TOOLS=1 (or "all") installs nothing; a list such as "minio versitygw"
# skips those tools. Without CI=true a server that cannot be installed is only a warning
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

# deb_tool NAME PACKAGE...: makes sure command NAME exists, installing the Debian
# packages with apt-get when running as root.
deb_tool() {
  local name=$1; shift
  command -v "$name" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "$name is missing: install the Debian package(s) $* (as root: apt-get install $*)"
    return 0
  fi
  echo "tools: apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@"; then
    apt-get update -q && apt-get install -y --no-install-recommends "$@" || fail "apt-get install $* failed"
  fi
}

install_tool() {
  skipped "$1" && return 0
  case "$1" in
    staticcheck) install_staticcheck ;;
    minio)       go_server minio "$MINIO_PKG" ;;
    versitygw)   go_server versitygw "$VERSITYGW_PKG" ;;
    chromium)    deb_tool chromium chromium ;;
    *) echo "tools: unknown tool $1 (want staticcheck, minio, versitygw or chromium)" >&2; exit 2 ;;
  esac
}

if [ $# -eq 0 ]; then
  set -- staticcheck minio versitygw
fi
for tool in "$@"; do
  install_tool "$tool"
done
have=()
for tool in "$@"; do
  if [ -x "$BIN/$tool" ] || { [ "$tool" = chromium ] && command -v chromium >/dev/null; }; then
    have+=("$tool")
  fi
done
echo "tools: ready: ${have[*]:-nothing}"
