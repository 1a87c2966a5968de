#!/usr/bin/env bash
# User-space instructions per short JSON /summarize, counted by valgrind's callgrind: the measure
# of the service's own work that this machine does not move (CPU time moves 2x from run to run on
# the VMs, and a context switch costs an exit to the hypervisor; docs/PERFORMANCE.md, "Instructions
# per request"). `summarizer serve` runs under callgrind, set up as summarizer-overhead-bench sets
# it up, against the fake Ollama (the bench's reply, 16-byte pieces); one keep-alive client sends
# the bench's request: WARMUP requests, counters zeroed, REQUESTS requests, counters dumped. With
# --nginx PATH the same for nginx proxying the direct /api/generate request (the bench's
# --vs-nginx set-up), as the yardstick. Counts repeat to within a fraction of a percent.
# Usage: bench/count-instructions.sh [--binary PATH] [--nginx PATH] [--requests N] [--warmup N]
#   (defaults: ${BUILD_DIR:-build}/summarizer, no nginx, 1000, 100). Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
binary="$build_dir/summarizer"
fake="$build_dir/tests/fake-ollama"
nginx=""
requests=1000
warmup=100
while (($#)); do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --nginx) nginx=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    *) echo "count-instructions: unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in valgrind callgrind_control callgrind_annotate python3; do
  command -v "$tool" >/dev/null || { echo "count-instructions: $tool not found (apt-get install valgrind python3)" >&2; exit 1; }
done
[[ -x "$binary" && -x "$fake" ]] || { echo "count-instructions: build $binary and $fake first" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The bench's text and the two requests made of it (bench/overhead_bench.cpp).
cat >"$work/client.py" <<'EOF'
import http.client, json, sys
port, count, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
text = ("The city council met on Tuesday to discuss the new tram line. After three hours of debate, the members "
        "voted to fund the first section, from the central station to the university, and asked the transport "
        "office to publish a timetable before the summer. Residents along the route raised concerns about noise "
        "during construction; the council promised that night work would be limited to two weeks and that "
        "affected households would be told a month in advance. The first trams are expected to run in three years.")
if kind == "service":
    path, body = "/summarize", json.dumps({"text": text})
else:
    path, body = "/api/generate", json.dumps({
        "model": "gemma3-4b-16k", "prompt": "Summarize the document below.\n<document>\n" + text + "\n</document>",
        "stream": True, "keep_alive": "24h", "truncate": False,
        "options": {"num_ctx": 16384, "num_predict": 1200, "temperature": 0.15}})
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(count):
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"HTTP {response.status} from {path}")
EOF

wait_up() {  # PORT PATH: until it answers (callgrind starts a program ~50x slower)
  for _ in $(seq 300); do
    python3 - "$1" "$2" <<'EOF' 2>/dev/null && return 0
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
c.request("GET", sys.argv[2])
c.getresponse()
EOF
    sleep 0.2
  done
  echo "count-instructions: nothing answered on port $1" >&2
  return 1
}

# PID PORT KIND NAME: warm up, zero, measure, dump; prints the instructions per request.
measure() {
  local pid=$1 port=$2 kind=$3 name=$4
  python3 "$work/client.py" "$port" "$warmup" "$kind"
  callgrind_control --zero "$pid" >/dev/null 2>&1
  python3 "$work/client.py" "$port" "$requests" "$kind"
  callgrind_control --dump=measured "$pid" >/dev/null 2>&1
  local dump
  for _ in $(seq 50); do
    dump=$(find "$work" -name "$name.out.*" -size +0 | head -1)
    [[ -n "$dump" ]] && break
    sleep 0.1
  done
  [[ -n "$dump" ]] || { echo "count-instructions: callgrind wrote no dump for $name" >&2; return 1; }
  sleep 0.5  # the dump is written whole before the next one could start
  local total
  total=$(callgrind_annotate --auto=no "$dump" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  echo $((total / requests))
}

fake_port=$(free_port)
"$fake" --port "$fake_port" --reply "The council funded the first tram section; a timetable follows before summer." \
  --piece-chars 16 >"$work/fake.log" 2>&1 &
pids+=($!)
wait_up "$fake_port" /api/version

service_port=$(free_port)
(cd "$work" && exec env -i PATH=/usr/bin:/bin SUMMARIZER_MAX_INFLIGHT=64 OLLAMA_NUM_PARALLEL=64 \
  SUMMARIZER_PREFILL_GATE=false SUMMARIZER_PRELOAD_HOT_BUCKET=false SUMMARIZER_JOBS_CACHE=false \
  SUMMARIZER_JOBS_DB="$work/jobs.db" \
  valgrind --tool=callgrind --callgrind-out-file="$work/service.out" "$(realpath "$binary")" serve \
  --port "$service_port" --ollama-url "http://127.0.0.1:$fake_port" >"$work/service.log" 2>&1) &
service_pid=$!
pids+=("$service_pid")
wait_up "$service_port" /healthz
service=$(measure "$service_pid" "$service_port" service service)

echo "| path | user-space instructions per request |"
echo "|---|---|"
echo "| summarizer serve, POST /summarize (JSON) | $service |"

if [[ -n "$nginx" ]]; then
  nginx_port=$(free_port)
  mkdir -p "$work/nginx/logs"
  cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $work/nginx/logs/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log $work/nginx/logs/access.log;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  upstream fake { server 127.0.0.1:$fake_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  (cd "$work" && exec valgrind --tool=callgrind --callgrind-out-file="$work/nginx.out" "$nginx" \
    -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx.log" 2>&1) &
  nginx_pid=$!
  pids+=("$nginx_pid")
  wait_up "$nginx_port" /api/version
  proxied=$(measure "$nginx_pid" "$nginx_port" direct nginx)
  echo "| nginx proxy_pass, POST /api/generate (stream) | $proxied |"
  echo
  echo "service / nginx: $(python3 -c "print(f'{$service / $proxied:.2f}')")"
fi
