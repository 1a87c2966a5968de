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

# The shipped config/summarizer.json names every knob, each at its built-in default.
python3 - "$binary" <<'PY' || exit 1
import json, subprocess, sys
binary = sys.argv[1]
with open("config/summarizer.json", encoding="utf-8") as f:
    shipped = json.load(f)
table = subprocess.run([binary, "config", "--markdown"], check=True, capture_output=True, text=True).stdout
paths = [line.split("`")[1] for line in table.splitlines()[2:]]
missing = []
for path in paths:
    node = shipped
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            missing.append(path)
            break
        node = node[part]
if missing:
    sys.exit("check-docs: FAIL: config/summarizer.json lacks " + ", ".join(missing))
# Run where there is no config/ (and no SUMMARIZER_CONFIG): the built-in defaults.
env = {k: v for k, v in __import__("os").environ.items() if k == "PATH"}
binary_abs = __import__("os").path.abspath(binary)
defaults = subprocess.run([binary_abs, "config"], check=True, capture_output=True, text=True, cwd="/", env=env).stdout
with_file = subprocess.run([binary_abs, "config", "--config", "config/summarizer.json"], check=True,
                           capture_output=True, text=True, env=env).stdout
if defaults != with_file:
    sys.exit("check-docs: FAIL: config/summarizer.json differs from the built-in defaults:\n" + with_file +
             "\nversus\n" + defaults)
print(f"check-docs: ok: config/summarizer.json names all {len(paths)} knobs")
PY
