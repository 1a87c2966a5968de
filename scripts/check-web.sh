#!/usr/bin/env bash
# Browser test of the page at GET /: headless Chromium (Debian's, driven by playwright-core from
# tools/web-test; no browser is ever downloaded) pastes a text, and also loads one from a file,
# watches the summary stream in from the fake Ollama, and checks the route and the timings.
# Leaves a screenshot in ${BUILD_DIR:-build}/web-test/. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/services.sh disable=SC1091  # followed with shellcheck -x
source scripts/lib/services.sh
# shellcheck source=scripts/lib/node.sh disable=SC1091  # followed with shellcheck -x
source scripts/lib/node.sh

scripts/install-deps.sh >/dev/null
chromium=${CHROMIUM:-$(command -v chromium || true)}
[[ -x $chromium ]] || { echo "check-web: chromium is missing (Debian: chromium)" >&2; exit 1; }
npm_ci_once tools/web-test
services_init check-web

# The fake streams its reply in small pieces with a pause between them, so the page is seen
# filling in piece by piece.
reply="The council voted to fund the first tram section, from the central station to the university. A timetable comes before summer; night work will be limited."
start_fake_ollama --reply "$reply" --piece-chars 12 --piece-delay-ms 30
start_summarizer --ollama-url "$FAKE_URL"

out_dir=$BUILD_DIR/web-test
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
(cd tools/web-test && SUMMARIZER_URL=$SUMMARIZER_URL EXPECTED_REPLY=$reply OUT_DIR=$out_dir CHROMIUM=$chromium \
  node --test page.test.mjs)
echo "check-web: ok (screenshots in $out_dir)"
