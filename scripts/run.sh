#!/usr/bin/env bash
# Sets up, builds and starts the service: `summarizer serve` on port 8080 (SUMMARIZER_PORT),
# talking to the Ollama at OLLAMA_HOST (default 127.0.0.1:11434). Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
SUMMARIZER_DEPS=runtime scripts/install-deps.sh
scripts/build.sh -DSUMMARIZER_BUILD_TESTS=OFF -DSUMMARIZER_BUILD_BENCH=OFF
exec build/summarizer serve "$@"
