#!/usr/bin/env bash
# Checks GET /metrics after real traffic: `promtool check metrics` (Debian's prometheus package)
# must accept the exposition, and the families ops dashboards rely on must be there with the
# values the traffic implies: requests by route and status, latency and TTFT histograms,
# upstream calls by outcome, tokens, in-flight and queued requests, model loads and reloads.
# Traffic: against a fake Ollama with a simulated GPU (so loads are reported), a JSON summary,
# a streamed one, a plan, a bad request, a long text (the 60K bucket: a reload) and a short one
# again (it rides the loaded 60K bucket: scheduler.ride_loaded_bucket); against a fake that always
# fails, one summary (502). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/services.sh disable=SC1091  # followed with shellcheck -x
source scripts/lib/services.sh

scripts/install-deps.sh >/dev/null
command -v promtool >/dev/null || { echo "check-metrics: promtool is missing (Debian: prometheus)" >&2; exit 1; }
services_init check-metrics
failures=0
fail() { printf 'check-metrics: FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }

start_fake_ollama --gpu --time-scale 200 --reply "A summary from the fake Ollama."
# No start-up preload (nor its restore after the 60K bucket): the loads counted below are the traffic's own.
start_summarizer --ollama-url "$FAKE_URL" --set vram.preload_hot_bucket=false
good=$SUMMARIZER_URL
start_fake_ollama --fail-status 500
start_summarizer --ollama-url "$FAKE_URL" --set ollama.max_retries=0
failing=$SUMMARIZER_URL
dir=$SERVICES_DIR

post() {  # URL PATH BODY [curl args...] -> prints the status code
  local url=$1 path=$2 body=$3
  shift 3
  curl -sS -o /dev/null -w '%{http_code}' "$url$path" -H 'Content-Type: application/json' --data-binary "$body" "$@"
}
expect() {  # WHAT WANT GOT
  [[ $3 == "$2" ]] || fail "$1: HTTP $3, expected $2"
}
short='{"text": "The harbour authority announced a new ferry timetable from May onwards."}'
long_text=$(cat bench/cases/xl.en.txt bench/cases/xl.en.txt bench/cases/xl.en.txt)
long=$(python3 -c 'import json, sys; print(json.dumps({"text": sys.stdin.read()}))' <<<"$long_text")

expect "summary" 200 "$(post "$good" /summarize "$short")"
expect "stream" 200 "$(post "$good" /summarize '{"text": "Streams are summaries too.", "stream": true}' -N)"
expect "plan" 200 "$(post "$good" /summarize/plan "$short")"
expect "bad request" 400 "$(post "$good" /summarize '{"text": "x", "colour": 1}')"
route=$(curl -sS "$good/summarize/plan" -H 'Content-Type: application/json' --data-binary "$long" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["route"])')
[[ $route == 60k ]] || fail "the long text routes to $route, not 60k (the reload check needs the 60K bucket)"
expect "long summary" 200 "$(post "$good" /summarize "$long")"
# no-cache: the same text again must reach Ollama (riding the loaded 60K bucket), not the result cache.
expect "summary after the long one" 200 "$(post "$good" /summarize "$short" -H 'Cache-Control: no-cache')"
expect "the same summary, cached" 200 "$(post "$good" /summarize "$short")"
expect "failing upstream" 502 "$(post "$failing" /summarize "$short")"

curl -fsS "$good/metrics" -o "$dir/metrics.txt"
curl -fsS "$failing/metrics" -o "$dir/metrics-failing.txt"
for f in "$dir/metrics.txt" "$dir/metrics-failing.txt"; do
  if out=$(promtool check metrics <"$f" 2>&1); then
    echo "check-metrics: ok: promtool check metrics accepts $(grep -vc '^#' "$f") samples of $(basename "$f")"
  else
    fail "promtool check metrics rejects $(basename "$f"): $out"
  fi
done

# value FILE SERIES: the value of the sample whose name{labels} is exactly SERIES (empty if none).
value() { awk -v s="$2" '$1 == s { print $2 }' "$1"; }
at_least() {  # FILE SERIES MIN
  local v
  v=$(value "$1" "$2")
  if [[ -z $v ]]; then
    fail "$(basename "$1") has no sample $2"
  elif ! awk -v v="$v" -v m="$3" 'BEGIN { exit !(v >= m) }'; then
    fail "$(basename "$1"): $2 is $v, expected at least $3"
  else
    echo "check-metrics: ok: $2 = $v"
  fi
}
m=$dir/metrics.txt
at_least "$m" 'summarizer_requests_total{endpoint="/summarize",route="16k",status="200"}' 3
at_least "$m" 'summarizer_requests_total{endpoint="/summarize",route="60k",status="200"}' 1
at_least "$m" 'summarizer_requests_total{endpoint="/summarize",route="none",status="400"}' 1
at_least "$m" 'summarizer_requests_total{endpoint="/summarize/plan",route="16k",status="200"}' 1
at_least "$m" 'summarizer_request_duration_seconds_count{route="16k"}' 3
at_least "$m" 'summarizer_request_duration_seconds_bucket{route="16k",le="+Inf"}' 3
at_least "$m" 'summarizer_ttft_seconds_count{route="16k"}' 3
at_least "$m" 'summarizer_ttft_seconds_count{route="60k"}' 1
at_least "$m" 'summarizer_upstream_requests_total{outcome="ok"}' 4
at_least "$m" 'summarizer_upstream_duration_seconds_count' 4
at_least "$m" 'summarizer_prompt_tokens_total' 10000
at_least "$m" 'summarizer_completion_tokens_total' 4
at_least "$m" 'summarizer_model_loads_total{model="gemma3-4b-16k"}' 1
at_least "$m" 'summarizer_model_loads_total{model="gemma3-4b-60k"}' 1
at_least "$m" 'summarizer_model_reloads_total' 1
at_least "$m" 'summarizer_jobs_store_up' 1
at_least "$m" 'summarizer_jobs_cache_hits_total' 1
at_least "$m" 'summarizer_jobs{state="done"}' 3
# Per upstream (one Ollama and no list: the pool's one upstream is named ollama).
at_least "$m" 'summarizer_upstream_calls_total{upstream="ollama",outcome="ok"}' 4
at_least "$m" 'summarizer_upstream_call_seconds_total{upstream="ollama"}' 0
at_least "$m" 'summarizer_upstream_failovers_total{upstream="ollama"}' 0
at_least "$m" 'summarizer_upstream_rides_total{upstream="ollama"}' 1
at_least "$m" 'summarizer_upstream_slots{upstream="ollama"}' 1
at_least "$m" 'summarizer_upstream_up{upstream="ollama"}' 1
at_least "$m" 'summarizer_upstream_circuit_state{upstream="ollama"}' 0
for gauge in summarizer_inflight_requests summarizer_queued_requests 'summarizer_upstream_inflight{upstream="ollama"}'; do
  [[ $(value "$m" "$gauge") == 0 ]] || fail "$gauge is '$(value "$m" "$gauge")' when idle, expected 0"
done
f=$dir/metrics-failing.txt
at_least "$f" 'summarizer_upstream_requests_total{outcome="error"}' 1
at_least "$f" 'summarizer_requests_total{endpoint="/summarize",route="none",status="502"}' 1

if ((failures)); then
  echo "check-metrics: $failures failure(s); /metrics was:" >&2
  cat "$m" >&2
  exit 1
fi
echo "check-metrics: ok"
