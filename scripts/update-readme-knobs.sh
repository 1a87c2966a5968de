#!/usr/bin/env bash
# Rewrites README.md's configuration table (between <!-- knobs:begin --> and <!-- knobs:end -->)
# from `summarizer config --markdown`, the knobs as the code defines them. Run after adding a knob.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${SUMMARIZER_BIN:-${BUILD_DIR:-build}/summarizer}
table=$("$binary" config --markdown)
python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1].rstrip("\n")
with open("README.md", encoding="utf-8") as f:
    readme = f.read()
new, n = re.subn(r"(<!-- knobs:begin -->\n).*?(<!-- knobs:end -->)",
                 lambda m: m.group(1) + table + "\n" + m.group(2), readme, flags=re.S)
if n != 1:
    sys.exit("README.md: the <!-- knobs:begin --> ... <!-- knobs:end --> markers are missing")
with open("README.md", "w", encoding="utf-8") as f:
    f.write(new)
PY
echo "README.md: configuration table updated"
