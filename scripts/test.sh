#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and runs every test: unit and integration tests
# (ctest, against the project's fake Ollama), then the checks of what ships beside the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DSUMMARIZER_BUILD_TESTS=ON -DSUMMARIZER_BUILD_BENCH=ON
echo "== ctest"
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 300 -j "$(nproc)")
for check in scripts/check-*.sh; do
  [[ -x "$check" ]] || continue
  echo "== $check"
  "$check"
done
