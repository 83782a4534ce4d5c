#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document with schemathesis (PyPI), as CI does:
#
#   bash scripts/fuzz-api.sh            # after `cargo build --release`; installs schemathesis if missing
#
# Starts a server of target/release/kiln (under $CARGO_TARGET_DIR when set, or $KILN_BIN) on a throw-away data directory with an
# administrator's token, lets schemathesis generate requests for every operation of
# /v1/openapi.json (valid and invalid bodies, parameters and paths, then sequences that follow
# created resources), and fails on any 5xx answer, an answer that breaks its schema, or a wrong
# content type. It runs twice: once with generated path variables (which mostly name nothing),
# then with the path variables fixed to resources it created first (a model, a study and its
# trial, a token), so that bodies reach the code behind the lookups. $FUZZ_EXAMPLES sets the
# cases per operation and phase (default 30); the JUnit report of each run is left in
# $FUZZ_REPORT_DIR (default target/fuzz-api). One worker: hypothesis, under CPython 3.11, fails
# now and then when two threads build its strategies at once ("AST constructor recursion depth
# mismatch"), which is the tool's fault, not the API's. The watches (`:watch`) are left out: a
# stream answers until its timeoutSeconds, which schemathesis would wait out case after case;
# tests/it/watch.rs and the gate's tests cover them.
set -euo pipefail
cd "$(dirname "$0")/.."

kiln="${KILN_BIN:-${CARGO_TARGET_DIR:-target}/release/kiln}"
examples="${FUZZ_EXAMPLES:-30}"
reports="${FUZZ_REPORT_DIR:-target/fuzz-api}"
schemathesis_version="4.32.5"

if ! command -v schemathesis > /dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==${schemathesis_version}"
fi

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2> /dev/null || true
    wait "$server" 2> /dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
RUST_LOG="warn" "$kiln" server --data-dir "$work/data" --bind "127.0.0.1:${port}" \
  > "$work/stdout" 2> "$work/stderr" &
server=$!
token=""
for _ in $(seq 300); do
  token="$(sed -n 's/^Administrator token[^:]*: //p' "$work/stdout")"
  [ -n "$token" ] && break
  if ! kill -0 "$server" 2> /dev/null; then
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$token" ]; then
  echo "the server printed no administrator token" >&2
  exit 1
fi
base="http://127.0.0.1:${port}"

# The resources the second run's path variables name.
call() {
  curl --silent --show-error --fail-with-body -X POST "${base}$1" \
    -H "Authorization: Bearer ${token}" -H "Content-Type: application/json" --data "$2"
}
call /v1/projects/fuzz/models '{"name": "fuzz"}' > /dev/null
call "/v1/projects/fuzz/locations/us-central1/studies?studyId=fuzz" \
  '{"studyConfig": {"metrics": [{"metric": "loss", "goal": "MINIMIZE"}],
    "parameters": [{"parameter": "x", "type": "DOUBLE",
                    "doubleValueSpec": {"minValue": -5, "maxValue": 5}}]}}' > /dev/null
call /v1/projects/fuzz/locations/us-central1/studies/fuzz/trials:suggest \
  '{"suggestionCount": 1, "clientId": "fuzz"}' > /dev/null
fuzz_token="$(call /v1/tokens '{"serviceAccount": "fuzz", "description": "fuzzed"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["name"].rsplit("/", 1)[-1])')"
{
  echo '[parameters]'
  echo '"path.project" = "fuzz"'
  echo '"path.location" = "us-central1"'
  echo '"path.model" = "fuzz"'
  echo '"path.version" = "v1"'
  echo '"path.study" = "fuzz"'
  echo '"path.trial" = "1"'
  echo '"path.job" = "fuzz"'
  echo '"path.operation" = "fuzz"'
  echo "\"path.token\" = \"${fuzz_token}\""
} > "$work/fixed.toml"

mkdir -p "$reports"
status=0
run() {
  schemathesis "$@" run "${base}/v1/openapi.json" \
    --header "Authorization: Bearer ${token}" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples "$examples" \
    --phases examples,coverage,fuzzing,stateful \
    --workers 1 \
    --seed 1 \
    --generation-database none \
    --exclude-path-regex ':watch$' \
    --report junit --report-dir "$reports" \
    --no-color || status=$?
}
echo "== generated path variables"
run
echo "== path variables naming existing resources"
run --config-file "$work/fixed.toml"
if grep -q "panicked" "$work/stderr"; then
  echo "the server panicked:" >&2
  grep -A5 "panicked" "$work/stderr" >&2
  status=1
fi
exit "$status"
