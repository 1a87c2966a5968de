#!/usr/bin/env bash
# Installs the Debian 12 packages summarizer builds and tests with. Idempotent; needs root
# (uses sudo when not root). Set SUMMARIZER_DEPS=runtime for the build packages only.
set -euo pipefail

build_packages=(build-essential cmake ninja-build pkg-config git ca-certificates curl
                libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
                libsqlite3-dev libpq-dev              # the job store: SQLite, PostgreSQL's client
                libboost-dev                          # Boost.Asio and Boost.Beast, header-only: src/event_server.cpp
                libsimdjson-dev)                      # Ollama's NDJSON lines: src/ollama_line.cpp
test_packages=(googletest libgtest-dev libgmock-dev libbenchmark-dev python3-yaml shellcheck
               postgresql                           # the store tests' server: scripts/lib/postgres.sh
               clang-14 libclang-rt-14-dev llvm-14  # libFuzzer and llvm-symbolizer: scripts/check-fuzz.sh
               chromium prometheus                  # scripts/check-web.sh, scripts/check-metrics.sh
               valgrind)                            # bench/count-instructions.sh (callgrind)
# Node (18 on Debian 12) for tools/web-test and tools/openapi-lint, unless a node with npm is already
# installed: Debian's npm conflicts with other nodejs packages (e.g. NodeSource's, which bundles npm).
command -v npm >/dev/null 2>&1 || test_packages+=(nodejs npm)

packages=("${build_packages[@]}")
if [[ "${SUMMARIZER_DEPS:-all}" != "runtime" ]]; then
  packages+=("${test_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root (or install sudo): ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
