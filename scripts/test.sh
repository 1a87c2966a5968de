#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, and runs every test: unit and integration tests
# (ctest, against the project's fake Ollama), then the checks of what ships beside the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DSUMMARIZER_BUILD_TESTS=ON -DSUMMARIZER_BUILD_BENCH=ON
# A private PostgreSQL server for the store tests, unless the caller names one: started before
# ctest, stopped on exit whatever happens (check-sanitize.sh runs ctest again, so it stays up
# for the checks too).
# shellcheck source=scripts/lib/postgres.sh disable=SC1091  # followed with shellcheck -x
source scripts/lib/postgres.sh
if [[ -z ${SUMMARIZER_TEST_PG_URL:-} ]]; then
  trap pg_stop EXIT
  # shellcheck disable=SC2119 # no DIR: a new temporary one
  pg_start
fi
echo "== ctest"
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 300 -j "$(nproc)")
for check in scripts/check-*.sh; do
  [[ -x "$check" ]] || continue
  echo "== $check"
  "$check"
done
