#!/usr/bin/env bash
# Rewrites the configuration table of docs/CONFIGURATION.md (between <!-- knobs:begin --> and
# <!-- knobs:end -->) from `summarizer config --markdown`, the knobs as the code defines them. Run
# after adding a knob. (The name is historical: the table lived in README.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${SUMMARIZER_BIN:-${BUILD_DIR:-build}/summarizer}
table=$("$binary" config --markdown)
python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1].rstrip("\n")
path = "docs/CONFIGURATION.md"
with open(path, encoding="utf-8") as f:
    text = f.read()
new, n = re.subn(r"(<!-- knobs:begin -->\n).*?(<!-- knobs:end -->)",
                 lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
if n != 1:
    sys.exit(path + ": the <!-- knobs:begin --> ... <!-- knobs:end --> markers are missing")
with open(path, "w", encoding="utf-8") as f:
    f.write(new)
PY
echo "docs/CONFIGURATION.md: configuration table updated"
