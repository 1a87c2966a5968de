#!/bin/sh
# One-shot set-up of the Ollama server at $OLLAMA_HOST (run by the ollama-init service of
# docker/compose.yaml, inside the ollama/ollama image): waits for the server, pulls the base
# model, and creates the bucket models from the Modelfiles in $CONFIG_DIR.
# Idempotent: a base model already present is not pulled again (set OLLAMA_PULL_ALWAYS=1 to
# refresh it), and `ollama create` only rewrites the small manifest of a bucket model.
set -eu

: "${OLLAMA_HOST:=ollama:11434}"
export OLLAMA_HOST
base_model=${OLLAMA_BASE_MODEL:-gemma3:4b}
config_dir=${CONFIG_DIR:-/config}
wait_seconds=${OLLAMA_WAIT_SECONDS:-120}
# "model-name Modelfile" pairs, one per bucket; names must match config/summarizer.json.
buckets="gemma3-4b-16k:Modelfile.16k gemma3-4b-60k:Modelfile.60k"

log() { printf 'ollama-init: %s\n' "$*"; }
die() { printf 'ollama-init: error: %s\n' "$*" >&2; exit 1; }

command -v ollama >/dev/null 2>&1 || die "the ollama CLI is not on PATH (run this in the ollama/ollama image)"

# Fail before downloading gigabytes if a Modelfile is missing.
for bucket in $buckets; do
    modelfile=$config_dir/${bucket#*:}
    [ -r "$modelfile" ] || die "$modelfile not found: mount the repository's config/ at $config_dir"
done

log "waiting for the Ollama server at $OLLAMA_HOST (up to ${wait_seconds}s)"
waited=0
until ollama list >/dev/null 2>&1; do
    [ "$waited" -lt "$wait_seconds" ] || die "no answer from $OLLAMA_HOST after ${wait_seconds}s"
    sleep 2
    waited=$((waited + 2))
done

if [ "${OLLAMA_PULL_ALWAYS:-0}" != "1" ] && ollama show "$base_model" >/dev/null 2>&1; then
    log "$base_model already present, not pulling (OLLAMA_PULL_ALWAYS=1 to refresh)"
else
    log "pulling $base_model"
    ollama pull "$base_model" || die "ollama pull $base_model failed (network? disk space in the ollama-models volume?)"
fi

for bucket in $buckets; do
    name=${bucket%%:*}
    modelfile=$config_dir/${bucket#*:}
    log "creating $name from $modelfile"
    ollama create "$name" -f "$modelfile" || die "ollama create $name -f $modelfile failed"
done

log "done; models on the server:"
ollama list
