# shellcheck shell=bash
# Sourced by scripts/check-*.sh: starts the fake Ollama and the summarizer on free ports and stops
# them (and anything else registered) on exit. Needs a build in ${BUILD_DIR:-build} with tests on.
#
#   services_init NAME          work dir in $SERVICES_DIR, EXIT trap that stops everything
#   start_fake_ollama ARGS...   sets FAKE_URL (fake-ollama flags, e.g. --reply TEXT)
#   start_summarizer ARGS...    sets SUMMARIZER_URL and SUMMARIZER_LOG ($SERVICES_DIR/summarizer-N.log); its
#                               job store is $SERVICES_DIR/jobs-N.db unless SUMMARIZER_JOBS_DB names one
# Each call starts one more process; the variables name the latest.
# Both listen on port 0 (any free port) and report the port they got in their first log line, so
# two checks never race for a port.

BUILD_DIR=${BUILD_DIR:-build}
SERVICES_PIDS=()
# Set by the functions below, read by the scripts that source this file.
export FAKE_URL="" SUMMARIZER_URL="" SUMMARIZER_LOG="" SERVICES_DIR=""

services_init() {
  SERVICES_NAME=$1
  SERVICES_DIR=$(mktemp -d "/tmp/${SERVICES_NAME}.XXXXXX")
  trap services_stop EXIT
  for binary in "$BUILD_DIR/summarizer" "$BUILD_DIR/tests/fake-ollama"; do
    [[ -x $binary ]] || { echo "$SERVICES_NAME: $binary is missing: build with tests on (scripts/build.sh)" >&2; exit 1; }
  done
}

services_stop() {
  local code=$? pid log
  for pid in "${SERVICES_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVICES_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if ((code != 0)); then
    for log in "$SERVICES_DIR"/summarizer-*.log; do
      [[ -f $log ]] || continue
      echo "$SERVICES_NAME: last lines of $log:" >&2
      tail -n 20 "$log" >&2
    done
  fi
  [[ -n ${KEEP_SERVICES_DIR:-} ]] || rm -rf "$SERVICES_DIR"
  exit "$code"
}

# Waits (up to 20 s) for "listening on http://HOST:PORT" in log $1; prints the URL.
wait_for_url() {
  local log=$1 pid=$2 url
  for _ in $(seq 200); do
    url=$(grep -oE 'listening on http://[^ ]+' "$log" 2>/dev/null | head -n 1 | sed 's/^listening on //')
    if [[ -n $url ]]; then
      echo "$url"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$SERVICES_NAME: no 'listening on' line in $log:" >&2
  cat "$log" >&2
  return 1
}

start_fake_ollama() {
  local log=$SERVICES_DIR/fake-ollama-$((${#SERVICES_PIDS[@]} + 1)).log
  "$BUILD_DIR/tests/fake-ollama" --port 0 "$@" >"$log" 2>&1 &
  SERVICES_PIDS+=($!)
  FAKE_URL=$(wait_for_url "$log" $!)
}

start_summarizer() {
  local n=$((${#SERVICES_PIDS[@]} + 1))
  SUMMARIZER_LOG=$SERVICES_DIR/summarizer-$n.log
  SUMMARIZER_JOBS_DB=${SUMMARIZER_JOBS_DB:-$SERVICES_DIR/jobs-$n.db} \
    "$BUILD_DIR/summarizer" serve --config config/summarizer.json --host 127.0.0.1 --port 0 "$@" \
    >"$SUMMARIZER_LOG" 2>&1 &
  SERVICES_PIDS+=($!)
  SUMMARIZER_URL=$(wait_for_url "$SUMMARIZER_LOG" $!)
}
