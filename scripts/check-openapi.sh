#!/usr/bin/env bash
# Checks the OpenAPI document the service serves at GET /openapi.json:
#   - Redocly CLI (tools/openapi-lint, pinned, `npm ci`) lints it with the strict recommended rules;
#   - tools/openapi-lint/contract.mjs checks it against the HTTP contract in words, docs/API.md, both
#     ways: every endpoint, its statuses and error codes, every field of every document (request,
#     response, plan, stream events, health, readiness, status, error), every error code with its
#     status and headers; a difference either way fails;
#   - real answers of the service (summary, plan, a map-reduce SSE stream with progress events, the
#     errors 400/404/405, health, readiness, status, from the fake Ollama) are validated against the
#     document's schemas, and the 405's Allow, the CORS preflight's and refusal's headers checked.
# Needs a build with tests on (build/summarizer, build/tests/fake-ollama). Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/services.sh disable=SC1091  # followed with shellcheck -x
source scripts/lib/services.sh
# shellcheck source=scripts/lib/node.sh disable=SC1091  # followed with shellcheck -x
source scripts/lib/node.sh

scripts/install-deps.sh >/dev/null
npm_ci_once tools/openapi-lint
services_init check-openapi
start_fake_ollama --reply "The council funded the first tram section and promised limited night work."
start_summarizer --ollama-url "$FAKE_URL" --set server.cors_origins=https://app.example
dir=$SERVICES_DIR
fail() { echo "check-openapi: FAIL: $*" >&2; exit 1; }

curl -fsS "$SUMMARIZER_URL/openapi.json" -o "$dir/openapi.json"
text='{"text": "The city council met on Tuesday to discuss the new tram line and voted to fund it."}'
curl -fsS "$SUMMARIZER_URL/summarize" -H 'Content-Type: application/json' -d "$text" -o "$dir/summary.json"
curl -fsS "$SUMMARIZER_URL/summarize/plan" -H 'Content-Type: application/json' -d "$text" -o "$dir/plan.json"
curl -fsS -N "$SUMMARIZER_URL/summarize?stream=true" -H 'Content-Type: text/plain' \
  --data-binary 'A short text to stream a summary of.' -o "$dir/stream.sse"
# map-reduce: meta, progress, delta, done
curl -fsS -N "$SUMMARIZER_URL/summarize?stream=true&strategy=map_reduce" -H 'Content-Type: text/plain' \
  --data-binary @bench/cases/xl.en.txt -o "$dir/mapreduce.sse"
grep -q '^event: progress$' "$dir/mapreduce.sse" || fail "a map-reduce stream sent no progress event"
status=$(curl -sS "$SUMMARIZER_URL/summarize" -H 'Content-Type: application/json' -d '{"text": 3}' \
  -o "$dir/error.json" -w '%{http_code}')
[[ $status == 400 ]] || fail "a bad request got HTTP $status, not 400"
status=$(curl -sS "$SUMMARIZER_URL/nope" -o "$dir/not-found.json" -w '%{http_code}')
[[ $status == 404 ]] || fail "an unknown path got HTTP $status, not 404"
status=$(curl -sS "$SUMMARIZER_URL/summarize" -D "$dir/405.headers" -o "$dir/405.json" -w '%{http_code}')
[[ $status == 405 ]] || fail "GET /summarize got HTTP $status, not 405"
grep -qi '^Allow: POST' "$dir/405.headers" || fail "GET /summarize's 405 has no 'Allow: POST'"
status=$(curl -sS -X OPTIONS "$SUMMARIZER_URL/summarize" -H 'Origin: https://app.example' -D "$dir/204.headers" \
  -o /dev/null -w '%{http_code}')
[[ $status == 204 ]] || fail "an allowed CORS preflight got HTTP $status, not 204"
for h in Access-Control-Allow-Origin Access-Control-Allow-Methods Access-Control-Allow-Headers Access-Control-Max-Age; do
  grep -qi "^$h: " "$dir/204.headers" || fail "the CORS preflight's answer has no $h"
done
status=$(curl -sS -X OPTIONS "$SUMMARIZER_URL/summarize" -H 'Origin: https://other.example' -o "$dir/403.json" \
  -w '%{http_code}')
[[ $status == 403 ]] || fail "a refused CORS preflight got HTTP $status, not 403"
curl -fsS "$SUMMARIZER_URL/healthz" -o "$dir/healthz.json"
curl -fsS "$SUMMARIZER_URL/readyz" -o "$dir/readyz.json"
curl -fsS "$SUMMARIZER_URL/status" -o "$dir/status.json"

echo "== redocly lint (tools/openapi-lint/redocly.yaml)"
(cd tools/openapi-lint && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  node node_modules/@redocly/cli/bin/cli.js lint --config redocly.yaml "$dir/openapi.json")

echo "== contract check against docs/API.md"
node tools/openapi-lint/contract.mjs "$dir/openapi.json" docs/API.md \
  --sample "json:SummarizeResponse=$dir/summary.json" --sample "json:Plan=$dir/plan.json" \
  --sample "json:Error=$dir/error.json" --sample "json:Error=$dir/not-found.json" \
  --sample "json:Error=$dir/405.json" --sample "json:Error=$dir/403.json" \
  --sample "json:Health=$dir/healthz.json" --sample "json:Readiness=$dir/readyz.json" \
  --sample "json:Status=$dir/status.json" \
  --sample "sse=$dir/stream.sse" --sample "sse=$dir/mapreduce.sse"
echo "check-openapi: ok"
