#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and builds summarizer into build/.
# Idempotent: re-running only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
