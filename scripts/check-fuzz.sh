#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (-DSUMMARIZER_FUZZ=ON: libFuzzer,
# AddressSanitizer, UndefinedBehaviorSanitizer) into build-fuzz/ (or $FUZZ_BUILD_DIR) and runs
# each for a bounded time ($FUZZ_TIME seconds, default 10), nproc targets at a time, starting
# from a copy of its seed corpus tests/fuzz/corpus/<target>/ (the repository is not modified).
# A crash, an invariant violation (the targets abort), a leak, a slow input (> $FUZZ_TIMEOUT s)
# or running out of memory is a finding: the script prints the log, keeps the input in
# build-fuzz/findings/<target>/ and exits non-zero. Reproduce with
#   build-fuzz/tests/fuzz/<target> build-fuzz/findings/<target>/crash-...
# Usage: scripts/check-fuzz.sh [target...]   (default: every tests/fuzz/fuzz_*.cpp)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
fuzz_time=${FUZZ_TIME:-10}
fuzz_timeout=${FUZZ_TIMEOUT:-10}
rss_limit_mb=${FUZZ_RSS_LIMIT_MB:-2048}

cc=clang
cxx=clang++
if command -v clang++-14 >/dev/null; then
  cc=clang-14
  cxx=clang++-14
fi
command -v "$cxx" >/dev/null || { echo "check-fuzz: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  CC=$cc CXX=$cxx cmake -S . -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" \
    -DSUMMARIZER_FUZZ=ON -DSUMMARIZER_BUILD_TESTS=OFF -DSUMMARIZER_BUILD_BENCH=OFF
fi

if (($#)); then
  targets=("$@")
else
  targets=()
  for source in tests/fuzz/fuzz_*.cpp; do
    targets+=("$(basename "$source" .cpp)")
  done
fi
echo "check-fuzz: building ${targets[*]}"
cmake --build "$build_dir" -j "${BUILD_JOBS:-$(nproc)}" --target "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/check-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Runs one target; its log goes to $work/<target>.log, its findings to $work/<target>/.
run_target() {
  local target=$1
  local binary=$build_dir/tests/fuzz/$target
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
  if [[ -d tests/fuzz/corpus/$target ]]; then
    cp -R "tests/fuzz/corpus/$target/." "$work/$target/corpus/"
  fi
  local args=(-max_total_time="$fuzz_time" -timeout="$fuzz_timeout" -rss_limit_mb="$rss_limit_mb" -max_len=4096
              -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/")
  [[ -f tests/fuzz/$target.dict ]] && args+=(-dict="tests/fuzz/$target.dict")
  "$binary" "${args[@]}" "$work/$target/corpus" >"$work/$target.log" 2>&1
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
declare -A pids=()
for target in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= $(nproc))); do
    wait -n || true
  done
  echo "check-fuzz: running $target for ${fuzz_time}s"
  run_target "$target" &
  pids[$target]=$!
done

failed=()
for target in "${targets[@]}"; do
  if wait "${pids[$target]}"; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/$target.log" | grep -oE '[0-9]+$' || echo '?')
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$work/$target.log" | grep -oE '[0-9]+$' || echo '?')
    cov=$(grep -oE 'cov: [0-9]+' "$work/$target.log" | tail -1 || true)
    echo "check-fuzz: ok: $target: $runs runs, $rate exec/s, ${cov:-cov: ?}, no finding"
  else
    failed+=("$target")
    echo "check-fuzz: FAIL: $target found a problem; its log:" >&2
    tail -n 60 "$work/$target.log" >&2
    mkdir -p "$build_dir/findings/$target"
    cp -R "$work/$target/artifacts/." "$build_dir/findings/$target/"
    echo "check-fuzz: inputs kept in $build_dir/findings/$target/" >&2
  fi
done

if ((${#failed[@]})); then
  echo "check-fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
echo "check-fuzz: ${#targets[@]} targets ran ${fuzz_time}s each with no finding"
