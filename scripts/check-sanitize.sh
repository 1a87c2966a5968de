#!/usr/bin/env bash
# Builds the whole project (service, fake Ollama, every test; no benchmarks) with AddressSanitizer
# (-DSUMMARIZER_SANITIZE=ON; SANITIZERS=address,undefined adds UndefinedBehaviorSanitizer) into
# build-asan/ (or $SANITIZE_BUILD_DIR) and runs the whole ctest suite under it. The integration
# tests start the sanitized `summarizer` and `fake-ollama` binaries, which inherit the options below.
# Any report (leak, overflow, use-after-free, undefined behaviour) aborts the process and fails
# its test, so this script exits non-zero. Kept within CI's 30 minutes: -O1 without debug info (-g1
# costs a half more compile time; reports still name every frame's function; set
# SANITIZE_DEBUG_FLAGS=-g1 for file:line when chasing one), and ASan alone by default: UBSan doubles
# the compile time of every file here (41 s against 22 s for one test file) and runs where untrusted
# input is parsed, in the fuzz targets (check-fuzz.sh). -Wno-maybe-uninitialized silences GCC 12's
# false positives inside libstdc++'s <regex> that only this flag mix produces.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${SANITIZE_BUILD_DIR:-build-asan}

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 ${SANITIZE_DEBUG_FLAGS:-} -Wno-maybe-uninitialized" \
    -DSUMMARIZER_SANITIZE=ON -DSUMMARIZER_SANITIZERS="${SANITIZERS:-address}" -DSUMMARIZER_BUILD_TESTS=ON \
    -DSUMMARIZER_BUILD_BENCH=OFF
fi
echo "check-sanitize: building $build_dir"
cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}"

# halt_on_error/abort_on_error: a finding fails the test at once rather than scrolling past.
# detect_stack_use_after_return stays off: it multiplies stack use of the server's threads.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1:detect_invalid_pointer_pairs=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "check-sanitize: ctest under ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS"
log=$build_dir/check-sanitize.log
status=0
(cd "$build_dir" && ctest --output-on-failure --timeout 300 -j "$(nproc)") 2>&1 | tee "$log" || status=$?
# Timing assertions of some tests (deadlines in ms) can miss under the sanitizers' 2-3x slowdown
# on a busy machine: failed tests get up to three more, serial, runs. A sanitizer report fails the check
# whatever the rerun says.
if ((status != 0)); then
  echo "check-sanitize: rerunning the failed tests one at a time"
  status=0
  (cd "$build_dir" && ctest --output-on-failure --timeout 300 --rerun-failed --repeat until-pass:3 -j 1) 2>&1 | tee -a "$log" || status=$?
fi
if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' "$log"; then
  echo "check-sanitize: FAIL: sanitizer reports in $log:" >&2
  grep -E -A3 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -n 60 >&2
  exit 1
fi
if ((status != 0)); then
  echo "check-sanitize: FAIL: tests failed under the sanitizers (see above)" >&2
  exit 1
fi
echo "check-sanitize: the whole suite passed under -fsanitize=${SANITIZERS:-address}"
