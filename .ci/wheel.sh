#!/usr/bin/env bash
# Install handoff the way MCP users do — the built wheel into a clean venv, `uvx`, `pipx run` — and
# check that the default install is lean, serves over stdio, and names the extra a setting needs.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"ci","version":"1"}}}'

python3 -m venv "$work/tools"
"$work/tools/bin/pip" install -q build uv pipx
"$work/tools/bin/python" -m build --wheel --outdir "$work/dist" . >/dev/null
wheel=$(ls "$work"/dist/handoff-*.whl)
echo "built $(basename "$wheel")"

python3 -m venv "$work/clean"
"$work/clean/bin/pip" install -q "$wheel"
for optional in asyncpg redis opentelemetry-sdk opentelemetry-exporter-otlp-proto-http pytest; do
  if "$work/clean/bin/pip" show -q "$optional" >/dev/null 2>&1; then
    echo "the default install pulled $optional, which the embedded default does not use" >&2
    exit 1
  fi
done
echo "default install: $("$work/clean/bin/pip" list --format=freeze | wc -l) packages, no optional ones"

reply=$(echo "$INIT" | HANDOFF_DATABASE_URL="sqlite:///$work/stdio.db" HANDOFF_LOG_LEVEL=WARNING \
  timeout 60 "$work/clean/bin/handoff" stdio)
echo "$reply" | grep -q '"serverInfo"' || { echo "stdio server did not answer initialize: $reply" >&2; exit 1; }
echo "stdio: initialize answered"

set +e
message=$(HANDOFF_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres timeout 20 \
  "$work/clean/bin/handoff" stdio </dev/null 2>&1)
status=$?
set -e
if [ "$status" -eq 0 ] || ! grep -q "handoff\[postgres\]" <<<"$message"; then
  echo "PostgreSQL without the extra should name handoff[postgres]; got ($status): $message" >&2
  exit 1
fi
echo "without the postgres extra: $message"

"$work/tools/bin/uvx" --no-cache --from "$wheel" handoff --version
"$work/tools/bin/pipx" run --no-cache --spec "$wheel" handoff --version
echo "$INIT" | HANDOFF_DATABASE_URL="sqlite:///$work/uvx.db" HANDOFF_LOG_LEVEL=WARNING \
  timeout 120 "$work/tools/bin/uvx" --no-cache --from "$wheel" handoff stdio | grep -q '"serverInfo"'
echo "uvx: stdio initialize answered"
