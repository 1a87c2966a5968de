#!/usr/bin/env bash
# Checks that the docs match the code:
#   - docs/CONFIGURATION.md's knob table is exactly what `summarizer config --markdown` prints
#     (fix: scripts/update-readme-knobs.sh), and it is the only copy of that table;
#   - config/summarizer.json names every knob, each at its built-in default;
#   - every knob key (`server.max_queue`, `buckets.60k.num_ctx`, `upstreams.gpu1.slots`) and every SUMMARIZER_* variable that
#     README.md and docs/*.md name exists: a knob of the code, or a variable the scripts, the code or
#     the tests read;
#   - every relative link in README.md and docs/*.md points to a file of the repository (nothing
#     outside it, such as ../shared/...).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${SUMMARIZER_BIN:-${BUILD_DIR:-build}/summarizer}
table_file=docs/CONFIGURATION.md
expected=$("$binary" config --markdown)
actual=$(sed -n '/<!-- knobs:begin -->/,/<!-- knobs:end -->/p' "$table_file" | sed '1d;$d')
if [[ "$expected" != "$actual" ]]; then
  echo "check-docs: FAIL: $table_file's configuration table differs from the code's knobs:" >&2
  diff <(printf '%s\n' "$actual") <(printf '%s\n' "$expected") >&2 || true
  echo "check-docs: run scripts/update-readme-knobs.sh" >&2
  exit 1
fi
copies=$(grep -l -e '<!-- knobs:begin -->' README.md docs/*.md || true)
if [[ "$copies" != "$table_file" ]]; then
  echo "check-docs: FAIL: the knob table must be in $table_file only, found in: $copies" >&2
  exit 1
fi
echo "check-docs: ok: $table_file lists all $(printf '%s\n' "$expected" | tail -n +3 | wc -l) knobs as the code defines them"

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

# The names and links the docs use exist.
python3 - "$binary" <<'PY' || exit 1
import glob, os, re, subprocess, sys
binary = sys.argv[1]
table = subprocess.run([binary, "config", "--markdown"], check=True, capture_output=True, text=True).stdout
knobs, envs = set(), set()
for line in table.splitlines()[2:]:
    parts = line.split("`")
    knobs.add(parts[1])
    envs.add(parts[3])
sections = {k.split(".")[0] for k in knobs}
bucket_fields = {k.split(".")[-1] for k in knobs if k.startswith("buckets.")}
upstream_fields = {"kind", "url", "slots", "api_key", "buckets", "model", "*"}
# Variables read outside the knob table (SUMMARIZER_CONFIG, the scripts' and tests' own).
read_elsewhere = set()
for pattern in ("scripts/**/*.sh", "src/**/*.cpp", "tests/**/*.cpp", "tests/**/*.hpp", "bench/**/*.cpp",
                "docker/*", ".ci/*", "CMakeLists.txt", "tests/CMakeLists.txt"):
    for path in glob.glob(pattern, recursive=True):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                read_elsewhere |= set(re.findall(r"\bSUMMARIZER_[A-Z0-9_]+\b", f.read()))
docs = ["README.md"] + sorted(glob.glob("docs/*.md"))
# Field paths of the API's documents (docs/API.md's schema tables: `vram.warnings` of /status) are
# not knobs.
api_fields = set()
with open("docs/API.md", encoding="utf-8") as f:
    in_table = False
    for line in f:
        if line.startswith("<!-- schema: "):
            in_table = True
        elif in_table and line.startswith("| `"):
            api_fields.add(line.split("`")[1])
        elif in_table and not line.startswith("|") and line.strip():
            in_table = False
failures = []
for doc in docs:
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    for name in sorted(set(re.findall(r"\bSUMMARIZER_[A-Z0-9_]+\b", text))):
        # Any bucket's variables: SUMMARIZER_BUCKET_<NAME>_MODEL, ..._NUM_CTX, ..._KEEP_ALIVE, ..._HOT.
        if re.fullmatch(r"SUMMARIZER_BUCKET_[A-Z0-9_]+?_(MODEL|NUM_CTX|KEEP_ALIVE|HOT)", name):
            continue
        # Any upstream's: SUMMARIZER_UPSTREAM_<NAME>_KIND, ..._URL, ..._SLOTS, ..._API_KEY, ..._BUCKETS, ..._MODEL.
        if re.fullmatch(r"SUMMARIZER_UPSTREAM_[A-Z0-9_]+?_(KIND|URL|SLOTS|API_KEY|BUCKETS|MODEL)", name):
            continue
        if name not in envs and name not in read_elsewhere:
            failures.append(f"{doc}: {name} is neither a knob's variable nor read by the code or the scripts")
    for key in sorted(set(re.findall(r"`([a-z_]+\.[a-z0-9_.<>-]+)(?:[ =`])", text))):
        if key.split(".")[0] not in sections or key in api_fields:
            continue
        if key.startswith("buckets."):
            ok = key.split(".")[-1] in bucket_fields and len(key.split(".")) == 3
        elif key.startswith("upstreams."):  # upstreams.<name>.<field> (config.cpp UpstreamKnobs)
            ok = key.split(".")[-1] in upstream_fields and len(key.split(".")) == 3
        else:
            ok = key in knobs
        if not ok:
            failures.append(f"{doc}: `{key}` is not a knob (see summarizer config --list)")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(doc), target))
        if path.startswith("..") or not os.path.exists(path):
            failures.append(f"{doc}: link to {target}, which is not a file of the repository")
if failures:
    sys.exit("\n".join("check-docs: FAIL: " + f for f in failures))
print(f"check-docs: ok: the knob keys, variables and links of {len(docs)} documents exist")
PY
