#!/usr/bin/env bash
# Checks the OpenAPI document the service serves at GET /openapi.json:
#   - Redocly CLI (tools/openapi-lint, pinned, `npm ci`) lints it with the strict recommended rules;
#   - tools/openapi-lint/contract.mjs checks it against the HTTP contract, API.md (every endpoint,
#     request field, response field, error code and SSE event), when API.md is found
#     ($SUMMARIZER_API_MD, else docs/API.md, else shared/design/API.md beside or above the repository);
#   - real answers of the service (summary, plan, error, health, an SSE stream from the fake
#     Ollama, a job, its events) are validated against the document's schemas.
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
start_summarizer --ollama-url "$FAKE_URL"
dir=$SERVICES_DIR

curl -fsS "$SUMMARIZER_URL/openapi.json" -o "$dir/openapi.json"
text='{"text": "The city council met on Tuesday to discuss the new tram line and voted to fund it."}'
curl -fsS "$SUMMARIZER_URL/summarize" -H 'Content-Type: application/json' -d "$text" -o "$dir/summary.json"
curl -fsS "$SUMMARIZER_URL/summarize/plan" -H 'Content-Type: application/json' -d "$text" -o "$dir/plan.json"
curl -fsS -N "$SUMMARIZER_URL/summarize?stream=true" -H 'Content-Type: text/plain' \
  --data-binary 'A short text to stream a summary of.' -o "$dir/stream.sse"
status=$(curl -sS "$SUMMARIZER_URL/summarize" -H 'Content-Type: application/json' -d '{"text": 3}' \
  -o "$dir/error.json" -w '%{http_code}')
[[ $status == 400 ]] || { echo "check-openapi: a bad request got HTTP $status, not 400" >&2; exit 1; }
curl -fsS "$SUMMARIZER_URL/healthz" -o "$dir/healthz.json"
curl -fsS "$SUMMARIZER_URL/readyz" -o "$dir/readyz.json"
# A job: submitted, followed to its end, read back; an unknown one.
curl -fsS "$SUMMARIZER_URL/jobs" -H 'Content-Type: application/json' -H 'Cache-Control: no-cache' -d "$text" \
  -o "$dir/job-submitted.json"
job_id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$dir/job-submitted.json")
curl -fsS -N "$SUMMARIZER_URL/jobs/$job_id/events" -o "$dir/job-events.sse"
curl -fsS "$SUMMARIZER_URL/jobs/$job_id" -o "$dir/job.json"
status=$(curl -sS "$SUMMARIZER_URL/jobs/0123456789abcdef0123456789abcdef" -o "$dir/job-missing.json" -w '%{http_code}')
[[ $status == 404 ]] || { echo "check-openapi: an unknown job got HTTP $status, not 404" >&2; exit 1; }

echo "== redocly lint (tools/openapi-lint/redocly.yaml)"
(cd tools/openapi-lint && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  node node_modules/@redocly/cli/bin/cli.js lint --config redocly.yaml "$dir/openapi.json")

api_md=${SUMMARIZER_API_MD:-}
if [[ -z $api_md ]]; then
  for candidate in docs/API.md ../shared/design/API.md ../../shared/design/API.md /work/shared/design/API.md; do
    [[ -f $candidate ]] && { api_md=$candidate; break; }
  done
fi
if [[ -z $api_md ]]; then
  echo "check-openapi: note: API.md not found (set SUMMARIZER_API_MD); checking real answers only"
fi
echo "== contract check${api_md:+ against $api_md}"
node tools/openapi-lint/contract.mjs "$dir/openapi.json" ${api_md:+"$api_md"} \
  --sample "json:SummarizeResponse=$dir/summary.json" --sample "json:Plan=$dir/plan.json" \
  --sample "json:Error=$dir/error.json" --sample "json:Health=$dir/healthz.json" \
  --sample "json:Health=$dir/readyz.json" --sample "sse=$dir/stream.sse" \
  --sample "json:JobSubmitted=$dir/job-submitted.json" --sample "json:Job=$dir/job.json" \
  --sample "json:Error=$dir/job-missing.json" --sample "sse:JobEventStream=$dir/job-events.sse"
echo "check-openapi: ok"
