#!/usr/bin/env bash
# Smoke test of the executable, as an operator and a CI pipeline use it:
#
#   packaging/smoke.sh dist/qahub
#
# init in a temporary folder, serve on a free port, wait for /readyz, ingest seed 000's
# example, read it back, upload an attachment, back up while serving, refuse a restore over
# the live server, SIGTERM (exit 0 within 10 s), restore the backup into a fresh folder, serve
# that, and find the same rows and the same attachment there. Needs only curl, jq and python3.
# Any failing step stops the script with a non-zero exit and the server's last log lines.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: packaging/smoke.sh PATH-TO-QAHUB-EXECUTABLE" >&2
  exit 2
fi
EXE=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qahub-smoke.XXXXXX")
SERVER_PID=""
LOG=""

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { echo "smoke: $*"; }
fail() {
  echo "smoke: FAILED: $*" >&2
  if [ -n "$LOG" ] && [ -f "$LOG" ]; then
    echo "--- last lines of the server's log ---" >&2
    tail -n 40 "$LOG" >&2
  fi
  exit 1
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# serve CONFIG LOGFILE: start the server in the background on a free port, wait for /readyz.
serve() {
  PORT=$(free_port)
  URL="http://127.0.0.1:$PORT"
  LOG=$2
  QAHUB_PORT=$PORT "$EXE" serve --config "$1" >"$LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited during start-up"
    if curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  fail "/readyz did not answer within 30 s"
}

# stop: SIGTERM, then the server must exit 0 within 10 s.
stop() {
  kill -TERM "$SERVER_PID"
  for _ in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$SERVER_PID" 2>/dev/null && fail "still running 10 s after SIGTERM"
  local status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=""
  [ "$status" -eq 0 ] || fail "the server exited with status $status after SIGTERM"
}

# api METHOD PATH [curl options...]: prints the body; fails on a status other than $EXPECT.
api() {
  local method=$1 path=$2
  shift 2
  local out status
  out=$(curl -sS -X "$method" -H "Authorization: Bearer $KEY" -w '\n%{http_code}' "$@" "$URL$path") ||
    fail "$method $path: no answer"
  status=${out##*$'\n'}
  [ "$status" = "${EXPECT:-200}" ] || fail "$method $path answered $status, expected ${EXPECT:-200}: ${out%$'\n'*}"
  printf '%s' "${out%$'\n'*}"
}

step "$("$EXE" --version) at $EXE"
step "init in $WORK/site"
"$EXE" init --dir "$WORK/site" --json >"$WORK/init.json" || fail "qahub init"
KEY=$(jq -r .admin_key "$WORK/init.json")
CONFIG=$WORK/site/qahub.toml
[ -f "$WORK/site/data/qahub.db" ] || fail "init created no database"

serve "$CONFIG" "$WORK/server.log"
step "serving on $URL"

step "the files inside the executable: dashboard templates, static files, API docs"
curl -fsS "$URL/login" | grep -q "<form" || fail "the dashboard's login page did not render"
curl -fsS -o /dev/null "$URL/static/dashboard.css" || fail "the dashboard's static files are missing"
curl -fsS "$URL/api/docs" | grep -q "qahub-lite API" || fail "the API docs page is missing"
for asset in swagger-ui/swagger-ui-bundle.js swagger-ui/swagger-ui.css swagger-ui/LICENSE api-reference.js; do
  curl -fsS -o /dev/null "$URL/static/$asset" || fail "the API reference's vendored file $asset is missing"
done
curl -fsS -o /dev/null -I "$URL/healthz" || fail "HEAD /healthz did not answer as GET does"
api GET /api/v1/openapi.json | jq -e '.paths["/api/v1/ingest"]' >/dev/null || fail "the OpenAPI document lacks /api/v1/ingest"

PROJECT=$(EXPECT=201 api POST /api/v1/projects -H 'content-type: application/json' -d '{"name": "Smoke"}' | jq -r .id)
for code in TC-001 TC-002; do
  EXPECT=201 api POST "/api/v1/projects/$PROJECT/test-cases" -H 'content-type: application/json' \
    -d "{\"code\": \"$code\", \"title\": \"$code\"}" >/dev/null
done

step "ingest seed 000's example"
# Seed 000's request body, verbatim but for the project id.
jq --arg project "$PROJECT" '.project_id = $project' >"$WORK/ingest.json" <<'JSON'
{
"project_id": "clxyz123",
"run_name": "CI build #442 — main branch",
"environment": "staging",
"framework": "playwright",
"results": [
{
"test_case_code": "TC-001",
"status": "PASSED",
"duration_ms": 1240
},
{
"test_case_code": "TC-002",
"status": "FAILED",
"error_message": "Assertion failed: expected 200 but got 500",
"error_stack": "Error: ...",
"duration_ms": 3800
},
{
"title": "Should load the homepage in < 2s",
"status": "PASSED",
"duration_ms": 890
}
]
}
JSON
INGESTED=$(EXPECT=201 api POST /api/v1/ingest -H 'content-type: application/json' --data-binary "@$WORK/ingest.json")
RUN=$(jq -r .run_id <<<"$INGESTED")
[ "$(jq .accepted <<<"$INGESTED")" = 3 ] || fail "ingest accepted $(jq .accepted <<<"$INGESTED") of 3 results"

step "read it back"
api GET "/api/v1/runs/$RUN/results" | jq -S '[.data[] | del(.updated_at)] | sort_by(.id)' >"$WORK/results.json"
[ "$(jq -c '[.[].status] | sort' "$WORK/results.json")" = '["FAILED","PASSED","PASSED"]' ] ||
  fail "read back: $(cat "$WORK/results.json")"

step "upload an attachment"
RESULT=$(jq -r '.[0].id' "$WORK/results.json")
printf 'smoke evidence %s\n' "$RUN" >"$WORK/evidence.txt"
ATTACHMENT=$(EXPECT=201 api POST "/api/v1/results/$RESULT/attachments" -F "file=@$WORK/evidence.txt;type=text/plain" |
  jq -r '.data[0].id')

step "back up while serving"
"$EXE" backup --config "$CONFIG" --to "$WORK/backup.tar" --json >"$WORK/backup.json" || fail "qahub backup"
[ "$(jq .attachments "$WORK/backup.json")" = 1 ] || fail "the backup holds $(jq .attachments "$WORK/backup.json") attachments"
api GET /readyz >/dev/null
LATER=$(EXPECT=201 api POST /api/v1/ingest -H 'content-type: application/json' \
  -d "{\"project_id\": \"$PROJECT\", \"results\": [{\"title\": \"after the backup\", \"status\": \"PASSED\"}]}" |
  jq -r .run_id)

step "restore refuses to run over the live server"
if "$EXE" restore "$WORK/backup.tar" --config "$CONFIG" 2>"$WORK/refused.txt"; then
  fail "restore ran over a live server"
fi
# (It names the Python process, the child of the executable's bootloader: $SERVER_PID's child.)
grep -q "kill -TERM [0-9]" "$WORK/refused.txt" || fail "restore's refusal does not say how to stop: $(cat "$WORK/refused.txt")"

step "SIGTERM"
stop

step "restore into a fresh folder"
mkdir "$WORK/restored"
python3 - "$CONFIG" "$WORK/restored/qahub.toml" <<'PY'
import sys
# The same configuration; its relative data folder now lies in the fresh folder.
open(sys.argv[2], "w").write(open(sys.argv[1]).read())
PY
"$EXE" restore "$WORK/backup.tar" --config "$WORK/restored/qahub.toml" || fail "qahub restore"
"$EXE" check --config "$WORK/restored/qahub.toml" || fail "qahub check of the restored data"

serve "$WORK/restored/qahub.toml" "$WORK/restored.log"
step "the restored server ($URL) holds the same rows"
api GET "/api/v1/runs/$RUN/results" | jq -S '[.data[] | del(.updated_at)] | sort_by(.id)' >"$WORK/restored.json"
python3 - "$WORK/results.json" "$WORK/restored.json" <<'PY' || fail "the restored results differ"
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:])
sys.exit(before != after)
PY
api GET "/api/v1/attachments/$ATTACHMENT" -o "$WORK/downloaded.txt" >/dev/null
python3 -c 'import sys; sys.exit(open(sys.argv[1], "rb").read() != open(sys.argv[2], "rb").read())' \
  "$WORK/evidence.txt" "$WORK/downloaded.txt" || fail "the restored attachment differs"
EXPECT=404 api GET "/api/v1/runs/$LATER" >/dev/null  # ingested after the snapshot: not in it
stop

step "OK"
