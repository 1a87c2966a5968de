#!/usr/bin/env bash
# Checks docker/ without a Docker engine (CI has none):
#   - docker/compose.yaml (one GPU), docker/compose.pool.yaml (two Ollama on two GPUs) and
#     docker/compose.vllm.yaml (vLLM) parse as YAML (python3 + PyYAML, else `docker compose config`),
#     each has its services, the pool pins each Ollama to its own GPU (device_ids), the vLLM one runs
#     vllm/vllm-openai with --max-model-len, and the summarizer's SUMMARIZER_UPSTREAMS of each is a
#     configuration `summarizer config` accepts (when build/summarizer exists);
#   - every path the Dockerfile COPYs, compose mounts or builds from, and the Modelfiles that
#     docker/ollama-init.sh creates models from, exist in the repository;
#   - the Dockerfile's build stage runs the README's set-up scripts (scripts/install-deps.sh,
#     scripts/build.sh), and the README names them;
#   - shellcheck on docker/*.sh and scripts/*.sh, when shellcheck is installed.
# PyYAML comes from Debian's python3-yaml, which .ci/run installs; this script installs nothing.
# Exits non-zero, naming every failure, if anything is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

failures=0
fail() { printf 'check-docker: FAIL: %s\n' "$*" >&2; failures=$((failures + 1)); }
ok() { printf 'check-docker: ok: %s\n' "$*"; }

compose_files=(docker/compose.yaml docker/compose.pool.yaml docker/compose.vllm.yaml)
for f in docker/Dockerfile "${compose_files[@]}" docker/ollama-init.sh .dockerignore; do
  [[ -f $f ]] || fail "$f is missing"
done
if ((failures)); then
  echo "check-docker: $failures failure(s)" >&2
  exit 1
fi

# ---- compose.yaml: parse, then list every host path it refers to -----------------------------
# The Python part reads the compose model as JSON on stdin (from PyYAML or from
# `docker compose config --format json`) and prints "kind<TAB>path" lines, paths relative to
# docker/ unless absolute.
compose_paths_py='
import json, sys
model = json.load(sys.stdin)
services = model.get("services") or {}
if not services:
    sys.exit("compose file has no services")
for name, svc in services.items():
    build = svc.get("build")
    if isinstance(build, str):
        build = {"context": build}
    if build:
        ctx = build.get("context", ".")
        print(f"build context of {name}\t{ctx}")
        df = build.get("dockerfile", "Dockerfile")
        print(f"dockerfile of {name}\t{ctx}/{df}" if not df.startswith("/") else f"dockerfile of {name}\t{df}")
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            if vol.get("type") == "bind":
                src = vol.get("source")
                print(f"bind mount of {name}\t{src}")
            continue
        src = vol.split(":", 1)[0]
        if src.startswith((".", "/", "~")):
            print(f"bind mount of {name}\t{src}")
    for ef in svc.get("env_file") or []:
        path = ef if isinstance(ef, str) else ef.get("path")
        print(f"env_file of {name}\t{path}")
'

python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
    python=$candidate
    break
  fi
done

# Prints the compose model of $1 as JSON, or fails with the parser's message.
compose_model() {
  local file=$1
  if [[ -n $python ]]; then
    "$python" -c '
import json, sys, yaml
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        json.dump(yaml.safe_load(f), sys.stdout)
except yaml.YAMLError as e:
    sys.exit(str(e))
' "$file" 2>&1
  elif docker compose version >/dev/null 2>&1; then
    # Resolves relative paths to absolute ones; needs no engine.
    docker compose -f "$file" config --format json 2>&1
  else
    echo "neither python3 with PyYAML (Debian: apt-get install python3-yaml) nor the docker compose plugin is available"
    return 1
  fi
}

# What each file must hold beyond parsing: its services, and facts about them (a Python check over
# the model on stdin; sys.exit(message) on failure).
declare -A required_services=(
  [docker/compose.yaml]="ollama ollama-init summarizer"
  [docker/compose.pool.yaml]="ollama-0 ollama-1 ollama-init-0 ollama-init-1 summarizer"
  [docker/compose.vllm.yaml]="vllm summarizer"
)
pool_facts_py='
import json, sys
s = json.load(sys.stdin)["services"]
ids = []
for name in ("ollama-0", "ollama-1"):
    devices = (((s[name].get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    got = [d for dev in devices for d in (dev.get("device_ids") or [])]
    if not got:
        sys.exit(f"{name} has no device_ids: each Ollama needs its own GPU")
    ids += got
if len(set(ids)) != len(ids):
    sys.exit(f"the Ollama services share a GPU: device_ids {ids}")
'
vllm_facts_py='
import json, sys
v = json.load(sys.stdin)["services"]["vllm"]
if not str(v.get("image", "")).startswith("vllm/vllm-openai"):
    sys.exit("the vllm service does not run the vllm/vllm-openai image")
args = " ".join(v.get("command") or []) if isinstance(v.get("command"), list) else str(v.get("command", ""))
for flag in ("--max-model-len", "--model"):
    if flag not in args:
        sys.exit(f"the vllm service is started without {flag}")
'
# The summarizer service's environment as KEY=VALUE lines.
summarizer_env_py='
import json, sys
env = json.load(sys.stdin)["services"]["summarizer"].get("environment") or {}
if isinstance(env, list):
    env = dict(item.split("=", 1) for item in env)
for key, value in env.items():
    print(f"{key}={value}")
'

for compose in "${compose_files[@]}"; do
  if ! compose_json=$(compose_model "$compose"); then
    fail "$compose is not a valid compose file: $compose_json"
    continue
  fi
  ok "$compose parses as YAML"
  py=${python:-python3}
  if ! compose_paths=$(printf '%s' "$compose_json" | "$py" -c "$compose_paths_py" 2>&1); then
    fail "$compose: $compose_paths"
  else
    while IFS=$'\t' read -r kind path; do
      [[ -n $kind ]] || continue
      [[ $path == /* ]] || path=docker/$path
      if [[ -e $path ]]; then
        ok "$compose: $kind exists: $path"
      else
        fail "$compose: $kind does not exist in the repository: $path"
      fi
    done <<<"$compose_paths"
  fi
  for svc in ${required_services[$compose]}; do
    grep -Eq "^  ${svc}:" "$compose" || fail "$compose has no service '$svc'"
  done
  facts=""
  [[ $compose == docker/compose.pool.yaml ]] && facts=$pool_facts_py
  [[ $compose == docker/compose.vllm.yaml ]] && facts=$vllm_facts_py
  if [[ -n $facts ]]; then
    if out=$(printf '%s' "$compose_json" | "$py" -c "$facts" 2>&1); then
      ok "$compose: its services are set up as documented"
    else
      fail "$compose: $out"
    fi
  fi
  # The summarizer's environment must be a configuration the service accepts (bad config stops
  # start-up naming the key): checked with the built binary when there is one. ${VAR:-default}
  # takes its default, as compose does with nothing set.
  binary=${SUMMARIZER_BIN:-${BUILD_DIR:-build}/summarizer}
  if [[ -x $binary ]]; then
    mapfile -t env_lines < <(printf '%s' "$compose_json" | "$py" -c "$summarizer_env_py" \
      | sed -E 's/\$\{[A-Za-z_]+:-([^}]*)\}/\1/g')
    if out=$(env -i PATH="$PATH" "${env_lines[@]}" "$binary" config --config config/summarizer.json 2>&1 >/dev/null); then
      ok "$compose: the summarizer's environment is a valid configuration"
    else
      fail "$compose: summarizer config rejects the summarizer's environment: $out"
    fi
  else
    echo "check-docker: note: $binary not built, $compose's summarizer environment not checked"
  fi
done

# ---- Dockerfile: COPY sources and the set-up scripts -----------------------------------------
# Joins continuation lines, drops comments; one instruction per line.
dockerfile_instructions() {
  sed -e '/^[[:space:]]*#/d' docker/Dockerfile | sed -e ':a' -e '/\\$/N; s/\\\n//; ta'
}

copies=0
while read -r instr rest; do
  [[ ${instr^^} == COPY || ${instr^^} == ADD ]] || continue
  if [[ $rest == *'--from='* ]]; then
    continue  # from another stage, not the build context
  fi
  # Drop flags (--chown=..., --chmod=..., --link).
  read -r -a words <<<"$rest"
  args=()
  for w in "${words[@]}"; do
    [[ $w == --* ]] || args+=("$w")
  done
  if [[ ${args[0]:-} == \[* ]]; then
    fail "Dockerfile: JSON-form $instr not understood by this check: $instr $rest"
    continue
  fi
  ((${#args[@]} >= 2)) || { fail "Dockerfile: $instr without source and destination: $rest"; continue; }
  for src in "${args[@]:0:${#args[@]}-1}"; do
    copies=$((copies + 1))
    if [[ -e $src ]]; then
      ok "Dockerfile $instr source exists: $src"
    else
      fail "Dockerfile $instr source does not exist in the repository: $src"
    fi
  done
done < <(dockerfile_instructions)
((copies > 0)) || fail "Dockerfile copies nothing from the build context"

# True when README.md names $1, or names a scripts/*.sh that runs $1 (e.g. scripts/test.sh).
readme_runs() {
  local wanted=$1 named
  grep -q "$wanted" README.md && return 0
  while read -r named; do
    [[ -f $named ]] && grep -q "$wanted" "$named" && return 0
  done < <(grep -oE 'scripts/[A-Za-z0-9_.-]+\.sh' README.md | sort -u)
  return 1
}

# The build stage is everything before the second FROM.
build_stage=$(dockerfile_instructions | awk 'toupper($1) == "FROM" { n++ } n == 1')
for script in scripts/install-deps.sh scripts/build.sh; do
  [[ -f $script ]] || fail "$script is missing"
  if grep -Eq "^[[:space:]]*RUN .*${script//./\\.}" <<<"$build_stage"; then
    ok "Dockerfile build stage runs $script"
  else
    fail "Dockerfile build stage does not RUN $script (it must build the way the README does)"
  fi
  if [[ -f README.md ]] && ! readme_runs "$script"; then
    fail "README.md names neither $script nor a scripts/*.sh that runs it, yet the Dockerfile runs it"
  fi
done
[[ -f README.md ]] || echo "check-docker: note: no README.md yet, its set-up scripts not cross-checked"

runtime_stage=$(dockerfile_instructions | awk 'toupper($1) == "FROM" { n++ } n >= 2')
grep -q 'curl' <<<"$(grep -E '^RUN ' <<<"$runtime_stage")" \
  || fail "Dockerfile runtime stage does not install curl, which its HEALTHCHECK uses"
grep -Eq '^USER ' <<<"$runtime_stage" || fail "Dockerfile runtime stage runs as root (no USER)"

# ---- the Modelfiles ollama-init.sh creates the bucket models from ----------------------------
mapfile -t modelfiles < <(grep -oE 'Modelfile\.[A-Za-z0-9_]+' docker/ollama-init.sh | sort -u)
((${#modelfiles[@]} > 0)) || fail "docker/ollama-init.sh names no Modelfile"
for m in "${modelfiles[@]}"; do
  if [[ -f config/$m ]]; then
    ok "Modelfile used by ollama-init.sh exists: config/$m"
  else
    fail "docker/ollama-init.sh creates a model from config/$m, which does not exist"
  fi
done

grep -Eq '^\.git$' .dockerignore || fail ".dockerignore does not exclude .git"
grep -Eq '^build$' .dockerignore || fail ".dockerignore does not exclude build (scripts/build.sh would reuse a host CMakeCache.txt)"

# ---- shellcheck ------------------------------------------------------------------------------
if command -v shellcheck >/dev/null 2>&1; then
  shopt -s nullglob
  scripts=(docker/*.sh scripts/*.sh bench/*.sh)
  if shellcheck "${scripts[@]}"; then
    ok "shellcheck: ${scripts[*]}"
  else
    fail "shellcheck reports problems in ${scripts[*]}"
  fi
else
  echo "check-docker: note: shellcheck not installed, shell scripts not linted"
fi

if ((failures)); then
  echo "check-docker: $failures failure(s)" >&2
  exit 1
fi
echo "check-docker: all checks passed"
