#!/usr/bin/env bash
# Checks that the docs match the code: README.md's configuration table is exactly what
# `summarizer config --markdown` prints (fix: scripts/update-readme-knobs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${SUMMARIZER_BIN:-${BUILD_DIR:-build}/summarizer}
expected=$("$binary" config --markdown)
actual=$(sed -n '/<!-- knobs:begin -->/,/<!-- knobs:end -->/p' README.md | sed '1d;$d')
if [[ "$expected" != "$actual" ]]; then
  echo "check-docs: FAIL: README.md's configuration table differs from the code's knobs:" >&2
  diff <(printf '%s\n' "$actual") <(printf '%s\n' "$expected") >&2 || true
  echo "check-docs: run scripts/update-readme-knobs.sh" >&2
  exit 1
fi
echo "check-docs: ok: README.md lists all $(printf '%s\n' "$expected" | tail -n +3 | wc -l) knobs as the code defines them"
