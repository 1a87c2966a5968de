#include "summarizer/config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <variant>

#include <nlohmann/json.hpp>

#include "summarizer/duration.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using Ref = std::variant<int*, int64_t*, double*, bool*, std::string*, std::vector<std::string>*>;

// One knob: where it lives in the file, its environment variable, its bounds and meaning.
struct Knob {
    std::string path;
    std::string env;
    std::function<Ref(Config&)> ref;
    double min = 0;
    double max = 0;  // min == max == 0: no numeric bounds
    std::string help;
};

// Appends one knob to the registry being built.
struct KnobAdder {
    std::vector<Knob>& knobs;
    void operator()(std::string path, std::string env, std::function<Ref(Config&)> ref, double min, double max,
                    std::string help) const {
        knobs.push_back(Knob{std::move(path), std::move(env), std::move(ref), min, max, std::move(help)});
    }
};

constexpr double kBig = 1e15;  // "no upper bound"

void ServerKnobs(const KnobAdder& add) {
    add("server.host", "SUMMARIZER_HOST", [](Config& c) { return Ref{&c.server.host}; }, 0, 0,
        "bind address; 127.0.0.1 behind a reverse proxy, 0.0.0.0 in a container");
    add("server.port", "SUMMARIZER_PORT", [](Config& c) { return Ref{&c.server.port}; }, 0, 65535,
        "TCP port; 0 = any free port (the log line \"listening on\" names it)");
    add("server.max_body_bytes", "SUMMARIZER_MAX_BODY_BYTES",
        [](Config& c) { return Ref{&c.server.max_body_bytes}; }, 1024, kBig, "request body limit (413 above)");
    add("server.threads", "SUMMARIZER_THREADS", [](Config& c) { return Ref{&c.server.threads}; }, 0, 4096,
        "threads running request handlers (a JSON summary holds one while it runs or queues; waiting "
        "connections hold none); 0 = max_inflight + max_queue + 16");
    add("server.io_threads", "SUMMARIZER_IO_THREADS", [](Config& c) { return Ref{&c.server.io_threads}; }, 1,
        64, "threads running every socket (accept, read, write, deadlines); one serves thousands of connections");
    add("server.header_timeout_s", "SUMMARIZER_HEADER_TIMEOUT_S",
        [](Config& c) { return Ref{&c.server.header_timeout_s}; }, 1, 3600,
        "a request's line and headers must all arrive within this many seconds (however steadily they trickle)");
    add("server.body_timeout_s", "SUMMARIZER_BODY_TIMEOUT_S",
        [](Config& c) { return Ref{&c.server.body_timeout_s}; }, 1, 3600,
        "a body must arrive within this many seconds plus its size at server.body_min_bytes_per_s");
    add("server.body_min_bytes_per_s", "SUMMARIZER_BODY_MIN_BYTES_PER_S",
        [](Config& c) { return Ref{&c.server.body_min_bytes_per_s}; }, 0, 1 << 30,
        "slowest average body upload that is not cut, in bytes/s (0: only server.body_timeout_s)");
    add("server.keep_alive_timeout_s", "SUMMARIZER_KEEP_ALIVE_TIMEOUT_S",
        [](Config& c) { return Ref{&c.server.keep_alive_timeout_s}; }, 1, 3600,
        "an idle keep-alive connection is closed after this many seconds");
    add("server.write_timeout_s", "SUMMARIZER_WRITE_TIMEOUT_S",
        [](Config& c) { return Ref{&c.server.write_timeout_s}; }, 1, 3600,
        "a client that takes no byte of its response for this many seconds is cut (a reading one never is)");
    add("server.max_header_bytes", "SUMMARIZER_MAX_HEADER_BYTES",
        [](Config& c) { return Ref{&c.server.max_header_bytes}; }, 1024, 1 << 20,
        "request line and headers at most (431 above)");
    add("server.max_connections", "SUMMARIZER_MAX_CONNECTIONS",
        [](Config& c) { return Ref{&c.server.max_connections}; }, 1, 1000000,
        "open connections at most; above, the oldest that has not completed a request is closed first "
        "(then the longest idle); kept below the open-file limit");
    add("server.max_connections_per_address", "SUMMARIZER_MAX_CONNECTIONS_PER_ADDRESS",
        [](Config& c) { return Ref{&c.server.max_connections_per_address}; }, 0, 1000000,
        "open connections from one client address at most (0 = no cap); behind a reverse proxy every "
        "connection is the proxy's: raise it or set 0");
    add("server.sse_heartbeat_s", "SUMMARIZER_SSE_HEARTBEAT_S",
        [](Config& c) { return Ref{&c.server.sse_heartbeat_s}; }, 0, 3600,
        "a stream with nothing sent for this many seconds gets an SSE comment line (proxies cut idle "
        "connections); 0 = none");
    add("server.api_key", "SUMMARIZER_API_KEY", [](Config& c) { return Ref{&c.server.api_key}; }, 0, 0,
        "if set, requests need `Authorization: Bearer <key>` (health endpoints exempt)");
    add("server.cors_origins", "SUMMARIZER_CORS_ORIGINS", [](Config& c) { return Ref{&c.server.cors_origins}; },
        0, 0, "browser origins allowed (comma-separated in the environment; * for any)");
    add("server.max_inflight", "SUMMARIZER_MAX_INFLIGHT", [](Config& c) { return Ref{&c.server.max_inflight}; },
        0, 4096, "requests summarizing at once; 0 = 2 x the slots of every upstream (2 x OLLAMA_NUM_PARALLEL with one Ollama)");
    add("server.max_queue", "SUMMARIZER_MAX_QUEUE", [](Config& c) { return Ref{&c.server.max_queue}; }, 0,
        100000, "requests waiting for a slot; beyond it 429");
    add("server.queue_timeout_s", "SUMMARIZER_QUEUE_TIMEOUT_S",
        [](Config& c) { return Ref{&c.server.queue_timeout_s}; }, 1, 86400,
        "longest wait in the queue for a slot, in seconds; then 429 with Retry-After");
    add("server.log_json", "SUMMARIZER_LOG_JSON", [](Config& c) { return Ref{&c.server.log_json}; }, 0, 0,
        "access log as JSON lines");
    add("server.log_text", "SUMMARIZER_LOG_TEXT", [](Config& c) { return Ref{&c.server.log_text}; }, 0, 0,
        "debug only: log the texts themselves");
    add("server.shutdown_grace_s", "SUMMARIZER_SHUTDOWN_GRACE_S",
        [](Config& c) { return Ref{&c.server.shutdown_grace_s}; }, 0, 3600,
        "on SIGTERM, in-flight requests get this long before they are cancelled");
    add(
        "server.max_batch_inflight", "SUMMARIZER_MAX_BATCH_INFLIGHT",
        [](Config& c) { return Ref{&c.server.max_batch_inflight}; }, 0, 4096,
        "map-reduce requests and jobs running at once, in a lane of their own (short requests never wait "
        "behind them); 0 = Ollama's parallel slots");
    add(
        "server.max_batch_queue", "SUMMARIZER_MAX_BATCH_QUEUE",
        [](Config& c) { return Ref{&c.server.max_batch_queue}; }, 0, 100000,
        "map-reduce requests waiting for a batch slot; beyond it 429 (jobs wait in the job store instead)");
}

void OllamaKnobs(const KnobAdder& add) {
    add("ollama.url", "OLLAMA_HOST", [](Config& c) { return Ref{&c.ollama.url}; }, 0, 0,
        "Ollama server: host, host:port or URL (as Ollama reads OLLAMA_HOST)");
    add("ollama.num_parallel", "OLLAMA_NUM_PARALLEL", [](Config& c) { return Ref{&c.ollama.num_parallel}; }, 1,
        64, "the Ollama server's parallel slots (set it to the server's OLLAMA_NUM_PARALLEL)");
    add("ollama.connect_timeout_ms", "SUMMARIZER_OLLAMA_CONNECT_TIMEOUT_MS",
        [](Config& c) { return Ref{&c.ollama.connect_timeout_ms}; }, 10, 600000, "TCP connect time-out");
    add("ollama.first_token_timeout_s", "SUMMARIZER_OLLAMA_FIRST_TOKEN_TIMEOUT_S",
        [](Config& c) { return Ref{&c.ollama.first_token_timeout_s}; }, 1, 86400,
        "request sent -> first streamed line (covers model load and prefill)");
    add("ollama.idle_timeout_s", "SUMMARIZER_OLLAMA_IDLE_TIMEOUT_S",
        [](Config& c) { return Ref{&c.ollama.idle_timeout_s}; }, 1, 86400, "silence allowed between two lines");
    add("ollama.total_timeout_s", "SUMMARIZER_OLLAMA_TOTAL_TIMEOUT_S",
        [](Config& c) { return Ref{&c.ollama.total_timeout_s}; }, 1, 86400, "one upstream call, all included");
    add("ollama.max_retries", "SUMMARIZER_OLLAMA_MAX_RETRIES", [](Config& c) { return Ref{&c.ollama.max_retries}; },
        0, 20, "extra attempts on connection errors, 500, 503 and dropped streams");
    add("ollama.retry_backoff_ms", "SUMMARIZER_OLLAMA_RETRY_BACKOFF_MS",
        [](Config& c) { return Ref{&c.ollama.retry_backoff_ms}; }, 0, 600000,
        "first retry delay; doubles each attempt, with jitter");
    add("ollama.retry_budget_s", "SUMMARIZER_OLLAMA_RETRY_BUDGET_S",
        [](Config& c) { return Ref{&c.ollama.retry_budget_s}; }, 0, 86400,
        "no retry starts (its backoff included) later than this many seconds after the first attempt");
    add("ollama.circuit_failure_threshold", "SUMMARIZER_CIRCUIT_FAILURE_THRESHOLD",
        [](Config& c) { return Ref{&c.ollama.circuit_failure_threshold}; }, 0, 1000,
        "consecutive calls that cannot connect to Ollama before the circuit opens (fail fast); 0 = never");
    add("ollama.circuit_open_ms", "SUMMARIZER_CIRCUIT_OPEN_MS",
        [](Config& c) { return Ref{&c.ollama.circuit_open_ms}; }, 10, 3600000,
        "how long an open circuit fails fast before one probe call is let through");
}

void GenerationKnobs(const KnobAdder& add) {
    add("generation.num_batch", "SUMMARIZER_NUM_BATCH", [](Config& c) { return Ref{&c.generation.num_batch}; }, 1,
        65536, "prompt tokens per batch");
    add("generation.temperature", "SUMMARIZER_TEMPERATURE",
        [](Config& c) { return Ref{&c.generation.temperature}; }, 0, 2, "sampling temperature");
    add("generation.repeat_penalty", "SUMMARIZER_REPEAT_PENALTY",
        [](Config& c) { return Ref{&c.generation.repeat_penalty}; }, 0.5, 2, "penalty on repeated tokens");
    add("generation.num_predict", "SUMMARIZER_NUM_PREDICT",
        [](Config& c) { return Ref{&c.generation.num_predict}; }, 1, 1000000,
        "default cap on the tokens of a summary (max_tokens)");
    add("generation.max_num_predict", "SUMMARIZER_MAX_NUM_PREDICT",
        [](Config& c) { return Ref{&c.generation.max_num_predict}; }, 1, 1000000,
        "largest max_tokens a client may ask for");
}

void RoutingKnobs(const KnobAdder& add) {
    add("routing.hierarchical_threshold_chars", "HIERARCHICAL_THRESHOLD_CHARS",
        [](Config& c) { return Ref{&c.routing.hierarchical_threshold_chars}; }, 1, kBig,
        "texts over this many characters always go through map-reduce");
    add("routing.hierarchical_chunk_max_chars", "HIERARCHICAL_CHUNK_MAX_CHARS",
        [](Config& c) { return Ref{&c.routing.hierarchical_chunk_max_chars}; }, 100, kBig,
        "most characters in one map chunk (the 16K token budget also applies)");
    add("routing.safety_margin_tokens", "SUMMARIZER_SAFETY_MARGIN_TOKENS",
        [](Config& c) { return Ref{&c.routing.safety_margin_tokens}; }, 0, 1000000,
        "tokens of num_ctx kept free for the estimate's error");
    add("routing.chunk_overlap_chars", "SUMMARIZER_CHUNK_OVERLAP_CHARS",
        [](Config& c) { return Ref{&c.routing.chunk_overlap_chars}; }, 0, 100000,
        "characters of the previous chunk repeated at the start of the next");
    add("routing.policy", "SUMMARIZER_ROUTING_POLICY", [](Config& c) { return Ref{&c.routing.policy}; }, 0, 0,
        "static (the design record's rule) or cost (weighs reloads and learned rates)");
    add("routing.cost_reload_ms", "SUMMARIZER_COST_RELOAD_MS",
        [](Config& c) { return Ref{&c.routing.cost_reload_ms}; }, 0, 3600000,
        "cost policy: ms to load a runner until Ollama's load_duration has been measured");
    add("routing.cost_prefill_tokens_per_s", "SUMMARIZER_COST_PREFILL_TOKENS_PER_S",
        [](Config& c) { return Ref{&c.routing.cost_prefill_tokens_per_s}; }, 1, 1e7,
        "cost policy: prefill rate until measured (then learned per bucket)");
    add("routing.cost_decode_tokens_per_s", "SUMMARIZER_COST_DECODE_TOKENS_PER_S",
        [](Config& c) { return Ref{&c.routing.cost_decode_tokens_per_s}; }, 0.1, 1e6,
        "cost policy: decode rate until measured (then learned per bucket)");
    add("routing.cost_spill_slowdown", "SUMMARIZER_COST_SPILL_SLOWDOWN",
        [](Config& c) { return Ref{&c.routing.cost_spill_slowdown}; }, 1, 1000,
        "cost policy: how many times slower a bucket that spills to the CPU runs");
    add("routing.cost_max_slowdown", "SUMMARIZER_COST_MAX_SLOWDOWN",
        [](Config& c) { return Ref{&c.routing.cost_max_slowdown}; }, 0, 100,
        "cost policy: the time others save (no reload) is weighed only among routes whose own expected time "
        "is within this fraction of the request's fastest route (0.10: a long text is never planned more "
        "than 10% slower to spare a reload)");
}

void MapReduceKnobs(const KnobAdder& add) {
    add("map_reduce.map_num_predict", "SUMMARIZER_MAP_NUM_PREDICT",
        [](Config& c) { return Ref{&c.map_reduce.map_num_predict}; }, 16, 100000,
        "cap on each chunk's summary tokens");
    add("map_reduce.reduce_num_predict", "SUMMARIZER_REDUCE_NUM_PREDICT",
        [](Config& c) { return Ref{&c.map_reduce.reduce_num_predict}; }, 16, 100000,
        "cap on intermediate merge outputs");
    add("map_reduce.concurrency", "SUMMARIZER_MAP_CONCURRENCY",
        [](Config& c) { return Ref{&c.map_reduce.concurrency}; }, 0, 256,
        "parallel map calls; 0 = the slots of the upstreams serving the map bucket (OLLAMA_NUM_PARALLEL with one Ollama)");
    add("map_reduce.max_levels", "SUMMARIZER_MAX_REDUCE_LEVELS",
        [](Config& c) { return Ref{&c.map_reduce.max_levels}; }, 1, 64, "reduce levels before giving up");
}

void SchedulerKnobs(const KnobAdder& add) {
    add("scheduler.prefill_gate", "SUMMARIZER_PREFILL_GATE", [](Config& c) { return Ref{&c.scheduler.prefill_gate}; },
        0, 0, "start an upstream call only when the previous one produced its first token (one prefill at a time)");
    add("scheduler.prefill_gate_max_ms", "SUMMARIZER_PREFILL_GATE_MAX_MS",
        [](Config& c) { return Ref{&c.scheduler.prefill_gate_max_ms}; }, 0, 3600000,
        "a call silent this long (model load, stall) no longer holds the prefill gate");
    add("scheduler.batch_max_wait_ms", "SUMMARIZER_BATCH_MAX_WAIT_MS",
        [](Config& c) { return Ref{&c.scheduler.batch_max_wait_ms}; }, 0, 3600000,
        "a map or intermediate reduce call waiting this long no longer yields to interactive calls");
    add("scheduler.switch_max_wait_ms", "SUMMARIZER_SWITCH_MAX_WAIT_MS",
        [](Config& c) { return Ref{&c.scheduler.switch_max_wait_ms}; }, 0, 3600000,
        "the longest a call waits for a host that has its bucket loaded instead of making another host reload "
        "(and, cost policy, for the other bucket while the loaded bucket's calls run)");
    add("scheduler.ride_loaded_bucket", "SUMMARIZER_RIDE_LOADED_BUCKET",
        [](Config& c) { return Ref{&c.scheduler.ride_loaded_bucket}; }, 0, 0,
        "a call may run on a larger bucket an Ollama host has loaded (its prompt fits it) instead of making the "
        "host reload its own; never onto a bucket estimated over the VRAM budget");
}

void PoolKnobs(const KnobAdder& add) {
    add("pool.probe_interval_ms", "SUMMARIZER_PROBE_INTERVAL_MS",
        [](Config& c) { return Ref{&c.pool.probe_interval_ms}; }, 100, 3600000,
        "health probe of every upstream, in ms; a host that failed a call is probed at once and every 250 ms");
    add("pool.exact_tokens", "SUMMARIZER_EXACT_TOKENS", [](Config& c) { return Ref{&c.pool.exact_tokens}; }, 0, 0,
        "count tokens with an OpenAI-compatible upstream's tokenizer (POST /tokenize) for routing and chunking");
    add("pool.tokenize_timeout_ms", "SUMMARIZER_TOKENIZE_TIMEOUT_MS",
        [](Config& c) { return Ref{&c.pool.tokenize_timeout_ms}; }, 10, 600000,
        "the longest one plan spends on exact counts, in ms; the rest is estimated");
    add("pool.tokenize_cache_entries", "SUMMARIZER_TOKENIZE_CACHE_ENTRIES",
        [](Config& c) { return Ref{&c.pool.tokenize_cache_entries}; }, 0, 10000000,
        "exact token counts kept in memory, by hash of the text (0: none)");
    add("pool.openai_prefill_gate", "SUMMARIZER_OPENAI_PREFILL_GATE",
        [](Config& c) { return Ref{&c.pool.openai_prefill_gate}; }, 0, 0,
        "the prefill gate on OpenAI-compatible upstreams too (they batch prefills themselves)");
}

void VramKnobs(const KnobAdder& add) {
    add("vram.budget_mb", "SUMMARIZER_VRAM_BUDGET_MB", [](Config& c) { return Ref{&c.vram.budget_mb}; }, 256,
        1 << 20, "GPU memory in MiB (RTX 4060: 8188)");
    add("vram.reserve_mb", "SUMMARIZER_VRAM_RESERVE_MB", [](Config& c) { return Ref{&c.vram.reserve_mb}; }, 0,
        1 << 20, "MiB kept free for the display and CUDA context");
    add("vram.weights_mb", "SUMMARIZER_VRAM_WEIGHTS_MB", [](Config& c) { return Ref{&c.vram.weights_mb}; }, 0,
        1 << 20, "model weights in MiB (gemma3:4b Q4_K_M with projector)");
    add("vram.fixed_mb", "SUMMARIZER_VRAM_FIXED_MB", [](Config& c) { return Ref{&c.vram.fixed_mb}; }, 0, 1 << 20,
        "compute buffers in MiB");
    add("vram.kv_cache_type", "OLLAMA_KV_CACHE_TYPE", [](Config& c) { return Ref{&c.vram.kv_cache_type}; }, 0, 0,
        "the Ollama server's KV cache type: f16, q8_0 or q4_0");
    add("vram.kv_mb_per_1k_tokens", "SUMMARIZER_VRAM_KV_MB_PER_1K",
        [](Config& c) { return Ref{&c.vram.kv_mb_per_1k_tokens}; }, 0, 100000,
        "f16 KV cache MiB per 1K tokens of context per slot");
    add("vram.preload_hot_bucket", "SUMMARIZER_PRELOAD_HOT_BUCKET",
        [](Config& c) { return Ref{&c.vram.preload_hot_bucket}; }, 0, 0,
        "load the 16K bucket at start-up and again after the 60K bucket was used");
    add("vram.restore_idle_ms", "SUMMARIZER_RESTORE_IDLE_MS",
        [](Config& c) { return Ref{&c.vram.restore_idle_ms}; }, 0, 3600000,
        "ms the 60K bucket must stay idle before the 16K bucket is loaded back (no reload ping-pong)");
}

void DegradedModeKnobs(const KnobAdder& add) {
    add("degraded.extractive_fallback", "SUMMARIZER_EXTRACTIVE_FALLBACK",
        [](Config& c) { return Ref{&c.degraded.extractive_fallback}; }, 0, 0,
        "when Ollama cannot be reached, answer with an in-process extractive summary (route \"extractive\", "
        "degraded: true) instead of 503");
    add("degraded.extractive_max_chars", "SUMMARIZER_EXTRACTIVE_MAX_CHARS",
        [](Config& c) { return Ref{&c.degraded.extractive_max_chars}; }, 50, 1000000,
        "length budget of an extractive summary, in characters");
}

void JobsKnobs(const KnobAdder& add) {
    add(
        "jobs.database", "SUMMARIZER_JOBS_DB", [](Config& c) { return Ref{&c.jobs.database}; }, 0, 0,
        "job store: a SQLite file (relative to the working directory; created with its directory) or a "
        "postgresql:// URL shared by replicas; off = no jobs and no cache");
    add(
        "jobs.cache", "SUMMARIZER_JOBS_CACHE", [](Config& c) { return Ref{&c.jobs.cache}; }, 0, 0,
        "POST /summarize goes through the job store: a repeated text is answered from it (\"cached\": true), "
        "identical requests at once share one run");
    add(
        "jobs.max_running", "SUMMARIZER_JOBS_MAX_RUNNING", [](Config& c) { return Ref{&c.jobs.max_running}; }, 1,
        256, "jobs this process runs at once (each also takes a batch admission slot)");
    add(
        "jobs.lease_ms", "SUMMARIZER_JOBS_LEASE_MS", [](Config& c) { return Ref{&c.jobs.lease_ms}; }, 300, 3600000,
        "a running job's lease, renewed every third of it; another replica takes the job over this "
        "long after its owner died");
    add(
        "jobs.poll_ms", "SUMMARIZER_JOBS_POLL_MS", [](Config& c) { return Ref{&c.jobs.poll_ms}; }, 10, 60000,
        "how often idle runners look for jobs and event streams look for other replicas' events");
    add(
        "jobs.retention_hours", "SUMMARIZER_JOBS_RETENTION_HOURS",
        [](Config& c) { return Ref{&c.jobs.retention_hours}; }, 0, 1000000,
        "finished jobs older than this are deleted (0 = kept)");
    add(
        "jobs.retention_max_mb", "SUMMARIZER_JOBS_RETENTION_MAX_MB",
        [](Config& c) { return Ref{&c.jobs.retention_max_mb}; }, 0, kBig,
        "then the oldest finished jobs until the stored texts and results take less (0 = no limit)");
    add(
        "jobs.retention_interval_s", "SUMMARIZER_JOBS_RETENTION_INTERVAL_S",
        [](Config& c) { return Ref{&c.jobs.retention_interval_s}; }, 1, 86400, "how often retention runs");
    add(
        "jobs.busy_timeout_ms", "SUMMARIZER_JOBS_BUSY_TIMEOUT_MS",
        [](Config& c) { return Ref{&c.jobs.busy_timeout_ms}; }, 0, 600000,
        "SQLite: how long a write waits for a lock (PostgreSQL: lock_timeout) before the request gets 503");
}

const std::vector<Knob>& Registry() {
    static const std::vector<Knob> knobs = [] {
        std::vector<Knob> k;
        const KnobAdder add{k};
        ServerKnobs(add);
        OllamaKnobs(add);
        GenerationKnobs(add);
        RoutingKnobs(add);
        MapReduceKnobs(add);
        SchedulerKnobs(add);
        PoolKnobs(add);
        VramKnobs(add);
        DegradedModeKnobs(add);
        JobsKnobs(add);
        return k;
    }();
    return knobs;
}

// The bucket named `name` in `config`, appended (with no model yet) if the config has none.
BucketConfig& BucketNamed(Config& config, const std::string& name) {
    for (auto& b : config.buckets) {
        if (b.name == name) return b;
    }
    config.buckets.push_back(BucketConfig{name, "", 16384, "", false});
    return config.buckets.back();
}

std::string Upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
        return std::isalnum(c) ? static_cast<char>(std::toupper(c)) : '_';
    });
    return s;
}

// The knobs of one bucket: buckets.<name>.{model,num_ctx,keep_alive,hot}, environment
// SUMMARIZER_BUCKET_<NAME>_<FIELD>.
std::vector<Knob> BucketKnobs(const std::string& name) {
    const std::string path = "buckets." + name + ".";
    const std::string env = "SUMMARIZER_BUCKET_" + Upper(name) + "_";
    return {
        Knob{path + "model", env + "MODEL", [name](Config& c) { return Ref{&BucketNamed(c, name).model}; }, 0, 0,
             "model of the " + name + " bucket (Ollama: ollama create ... -f config/Modelfile." + name + ")"},
        Knob{path + "num_ctx", env + "NUM_CTX", [name](Config& c) { return Ref{&BucketNamed(c, name).num_ctx}; }, 1024,
             1048576, "context window in tokens, sent with every request; buckets are listed smallest first"},
        Knob{path + "keep_alive", env + "KEEP_ALIVE",
             [name](Config& c) { return Ref{&BucketNamed(c, name).keep_alive}; }, 0, 0,
             "how long Ollama keeps the bucket loaded after use"},
        Knob{path + "hot", env + "HOT", [name](Config& c) { return Ref{&BucketNamed(c, name).hot}; }, 0, 0,
             "kept loaded (preloaded, restored after another bucket ran) and used for map-reduce; at most one"},
    };
}

// The upstream named `name` in `config`, appended (kind ollama, no URL yet) if the config has none.
UpstreamConfig& UpstreamNamed(Config& config, const std::string& name) {
    for (auto& u : config.upstreams) {
        if (u.name == name) return u;
    }
    config.upstreams.push_back(UpstreamConfig{name});
    return config.upstreams.back();
}

// The knobs of one upstream: upstreams.<name>.{kind,url,slots,api_key,buckets,model}, environment
// SUMMARIZER_UPSTREAM_<NAME>_<FIELD>.
std::vector<Knob> UpstreamKnobs(const std::string& name) {
    const std::string path = "upstreams." + name + ".";
    const std::string env = "SUMMARIZER_UPSTREAM_" + Upper(name) + "_";
    return {
        Knob{path + "kind", env + "KIND", [name](Config& c) { return Ref{&UpstreamNamed(c, name).kind}; }, 0, 0,
             "ollama or openai (vLLM, llama.cpp llama-server, SGLang)"},
        Knob{path + "url", env + "URL", [name](Config& c) { return Ref{&UpstreamNamed(c, name).url}; }, 0, 0,
             "the server's base URL"},
        Knob{path + "slots", env + "SLOTS", [name](Config& c) { return Ref{&UpstreamNamed(c, name).slots}; }, 0, 4096,
             "calls at once; 0 = ollama.num_parallel (ollama), what the engine reports or 16 (openai)"},
        Knob{path + "api_key", env + "API_KEY", [name](Config& c) { return Ref{&UpstreamNamed(c, name).api_key}; }, 0,
             0, "sent as Authorization: Bearer <key>"},
        Knob{path + "buckets", env + "BUCKETS", [name](Config& c) { return Ref{&UpstreamNamed(c, name).buckets}; },
             0, 0, "bucket names it serves (comma-separated in the environment); empty: all"},
        Knob{path + "model", env + "MODEL", [name](Config& c) { return Ref{&UpstreamNamed(c, name).model}; }, 0, 0,
             "openai: the model it serves; empty: the first of GET /v1/models"},
    };
}

// Every knob of `config`: the fixed ones and those of each of its buckets and upstreams.
std::vector<Knob> KnobsOf(const Config& config) {
    std::vector<Knob> knobs = Registry();
    for (const auto& b : config.buckets) {
        auto more = BucketKnobs(b.name);
        knobs.insert(knobs.end(), more.begin(), more.end());
    }
    for (const auto& u : config.upstreams) {
        auto more = UpstreamKnobs(u.name);
        knobs.insert(knobs.end(), more.begin(), more.end());
    }
    return knobs;
}

std::optional<Knob> FindKnob(std::string_view path) {
    for (const auto& knob : Registry()) {
        if (knob.path == path) return knob;
    }
    // buckets.<name>.<field>, upstreams.<name>.<field>: any name (a new one adds a bucket or an upstream).
    for (const std::string_view group : {std::string_view("buckets."), std::string_view("upstreams.")}) {
        if (path.rfind(group, 0) != 0) continue;
        const std::string_view rest = path.substr(group.size());
        const size_t dot = rest.rfind('.');
        if (dot == std::string_view::npos || dot == 0) continue;
        const std::string name(rest.substr(0, dot));
        for (auto& knob : group == "buckets." ? BucketKnobs(name) : UpstreamKnobs(name)) {
            if (knob.path == path) return knob;
        }
    }
    return std::nullopt;
}

json RefToJson(const Ref& ref) {
    return std::visit([](auto* p) { return json(*p); }, ref);
}

std::string Describe(const json& value) {
    return value.is_string() ? value.get<std::string>() : value.dump();
}

Error Bad(const Knob& knob, const std::string& value, const std::string& source, const std::string& why) {
    return MakeError(ErrorCode::kInvalidRequest, knob.path + " = " + value + " (" + source + "): " + why);
}

// Sets a knob from a JSON value (the file) with type checks.
Status SetFromJson(Config& config, const Knob& knob, const json& value, const std::string& source) {
    Ref ref = knob.ref(config);
    const std::string shown = Describe(value);
    if (auto* p = std::get_if<int*>(&ref)) {
        if (!value.is_number_integer()) return Bad(knob, shown, source, "must be an integer");
        auto v = value.get<int64_t>();
        if (v < INT32_MIN || v > INT32_MAX) return Bad(knob, shown, source, "out of range");
        **p = static_cast<int>(v);
    } else if (auto* p64 = std::get_if<int64_t*>(&ref)) {
        if (!value.is_number_integer()) return Bad(knob, shown, source, "must be an integer");
        **p64 = value.get<int64_t>();
    } else if (auto* pd = std::get_if<double*>(&ref)) {
        if (!value.is_number()) return Bad(knob, shown, source, "must be a number");
        **pd = value.get<double>();
    } else if (auto* pb = std::get_if<bool*>(&ref)) {
        if (!value.is_boolean()) return Bad(knob, shown, source, "must be true or false");
        **pb = value.get<bool>();
    } else if (auto* ps = std::get_if<std::string*>(&ref)) {
        if (!value.is_string()) return Bad(knob, shown, source, "must be a string");
        **ps = value.get<std::string>();
    } else if (auto* pl = std::get_if<std::vector<std::string>*>(&ref)) {
        if (!value.is_array()) return Bad(knob, shown, source, "must be an array of strings");
        std::vector<std::string> list;
        for (const auto& item : value) {
            if (!item.is_string()) return Bad(knob, shown, source, "must be an array of strings");
            list.push_back(item.get<std::string>());
        }
        **pl = std::move(list);
    }
    return OkStatus();
}

std::string Trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return "";
    size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

// Sets a knob from a string (environment or flag), parsed by the knob's type.
Status SetFromString(Config& config, const Knob& knob, const std::string& raw, const std::string& source) {
    Ref ref = knob.ref(config);
    const std::string text = Trim(raw);
    if (std::holds_alternative<int*>(ref) || std::holds_alternative<int64_t*>(ref)) {
        int64_t v = 0;
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
            return Bad(knob, raw, source, "must be an integer");
        }
        return SetFromJson(config, knob, json(v), source);
    }
    if (std::holds_alternative<double*>(ref)) {
        try {
            size_t used = 0;
            double v = std::stod(text, &used);
            if (used != text.size() || !std::isfinite(v)) throw std::invalid_argument("trailing");
            return SetFromJson(config, knob, json(v), source);
        } catch (const std::exception&) {
            return Bad(knob, raw, source, "must be a number");
        }
    }
    if (std::holds_alternative<bool*>(ref)) {
        std::string lower = text;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (lower == "1" || lower == "true" || lower == "yes" || lower == "on") return SetFromJson(config, knob, true, source);
        if (lower == "0" || lower == "false" || lower == "no" || lower == "off") return SetFromJson(config, knob, false, source);
        return Bad(knob, raw, source, "must be true or false");
    }
    if (std::holds_alternative<std::vector<std::string>*>(ref)) {
        json list = json::array();
        std::stringstream ss(text);
        std::string item;
        while (std::getline(ss, item, ',')) {
            item = Trim(item);
            if (!item.empty()) list.push_back(item);
        }
        return SetFromJson(config, knob, list, source);
    }
    return SetFromJson(config, knob, json(raw), source);
}

// Flattens nested objects to dotted paths; arrays and scalars are leaves.
void Flatten(const json& node, const std::string& prefix, std::vector<std::pair<std::string, json>>& out) {
    for (auto it = node.begin(); it != node.end(); ++it) {
        std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
        if (it->is_object()) {
            Flatten(*it, path, out);
        } else {
            out.emplace_back(path, *it);
        }
    }
}

// Knobs that no longer exist, with what replaced them (named in the error a file or flag gets).
std::string RetiredKnobNote(std::string_view path) {
    if (path == "server.read_timeout_s") {
        return "; it was replaced by server.header_timeout_s (the headers as a whole) and server.body_timeout_s "
               "with server.body_min_bytes_per_s (the body)";
    }
    return "";
}

Status SetFromFile(Config& config, const std::string& key, const json& value, const std::string& path,
                   std::map<std::string, std::string>& origin) {
    auto knob = FindKnob(key);
    if (!knob) {
        return MakeError(ErrorCode::kInvalidRequest, "unknown key '" + key + "' in " + path +
                                                         " (see `summarizer config --list`)" + RetiredKnobNote(key));
    }
    std::string source = "file " + path;
    if (auto st = SetFromJson(config, *knob, value, source); !st.ok()) return st.error();
    origin[knob->path] = source;
    return OkStatus();
}

// A file's "buckets": {"<name>": {"model", "num_ctx", "keep_alive", "hot"} or null (removes it)}. A
// name the defaults lack adds a bucket. The names the file lists, in its order, go to `listed`.
Status ApplyFileBuckets(Config& config, const nlohmann::ordered_json& buckets, const std::string& path,
                        std::map<std::string, std::string>& origin, std::vector<std::string>& listed) {
    if (!buckets.is_object()) {
        return MakeError(ErrorCode::kInvalidRequest, path + ": buckets must be an object of bucket name -> "
                                                            "{\"model\", \"num_ctx\", \"keep_alive\", \"hot\"}");
    }
    std::vector<std::string> order;
    for (const auto& [name, spec] : buckets.items()) {
        if (!name.empty() && name[0] == '_') continue;
        if (spec.is_null()) {
            // By name, not the binding: clang 14 cannot capture a structured binding.
            std::erase_if(config.buckets, [&removed = name](const BucketConfig& b) { return b.name == removed; });
            continue;
        }
        if (!spec.is_object()) {
            return MakeError(ErrorCode::kInvalidRequest, "buckets." + name + " in " + path +
                                                             ": must be an object with model, num_ctx, keep_alive, hot");
        }
        order.push_back(name);
        for (const auto& [field, value] : spec.items()) {
            if (!field.empty() && field[0] == '_') continue;
            if (auto st = SetFromFile(config, "buckets." + name + "." + field, json(value), path, origin); !st.ok()) {
                return st;
            }
        }
    }
    listed.insert(listed.end(), order.begin(), order.end());
    return OkStatus();
}

// A file's "upstreams": {"<name>": {"kind", "url", "slots", "api_key", "buckets", "model"} or null}, in the
// file's order.
Status ApplyFileUpstreams(Config& config, const nlohmann::ordered_json& upstreams, const std::string& path,
                          std::map<std::string, std::string>& origin) {
    if (!upstreams.is_object()) {
        return MakeError(ErrorCode::kInvalidRequest,
                         path + ": upstreams must be an object of upstream name -> {\"kind\", \"url\", \"slots\", ...}");
    }
    for (const auto& item : upstreams.items()) {
        const std::string& name = item.key();  // (clang 14 cannot capture a structured binding)
        const auto& spec = item.value();
        if (!name.empty() && name[0] == '_') continue;
        if (spec.is_null()) {
            std::erase_if(config.upstreams, [&](const UpstreamConfig& u) { return u.name == name; });
            continue;
        }
        if (!spec.is_object()) {
            return MakeError(ErrorCode::kInvalidRequest, "upstreams." + name + " in " + path +
                                                             ": must be an object with kind, url, slots, api_key, "
                                                             "buckets, model");
        }
        (void)UpstreamNamed(config, name);  // listed without fields: still an upstream (its URL is then missing)
        for (const auto& [field, value] : spec.items()) {
            if (!field.empty() && field[0] == '_') continue;
            if (auto st = SetFromFile(config, "upstreams." + name + "." + field, json(value), path, origin); !st.ok()) {
                return st;
            }
        }
    }
    return OkStatus();
}

// The short form (SUMMARIZER_UPSTREAMS, --upstream): `items` are the pool, in order. An upstream the
// config had already under a name keeps its other fields (slots, api_key, buckets, model).
Status ApplyUpstreamList(Config& config, const std::vector<std::string>& items, const std::string& source,
                         std::map<std::string, std::string>& origin) {
    std::vector<UpstreamConfig> pool;
    for (const auto& item : items) {
        auto parsed = ParseUpstreamItem(item);
        if (!parsed.ok()) return MakeError(ErrorCode::kInvalidRequest, parsed.error().message + " (" + source + ")");
        UpstreamConfig u = *parsed;
        for (const auto& seen : pool) {
            if (seen.name == u.name) {
                return MakeError(ErrorCode::kInvalidRequest, "upstreams: the name " + u.name + " is given twice (" +
                                                                 source + "); each upstream needs its own name");
            }
        }
        for (const auto& old : config.upstreams) {
            if (old.name != u.name) continue;
            u.slots = old.slots;
            u.api_key = old.api_key;
            u.buckets = old.buckets;
            u.model = old.model;
        }
        origin["upstreams." + u.name + ".kind"] = source;
        origin["upstreams." + u.name + ".url"] = source;
        pool.push_back(std::move(u));
    }
    config.upstreams = std::move(pool);
    return OkStatus();
}

std::vector<std::string> SplitWords(std::string_view text) {
    std::vector<std::string> words;
    std::stringstream ss{std::string(text)};
    std::string word;
    while (ss >> word) words.push_back(word);
    return words;
}

Status ApplyFile(Config& config, const std::string& path, std::map<std::string, std::string>& origin,
                 std::vector<std::string>& listed) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return MakeError(ErrorCode::kInvalidRequest, "cannot read config file " + path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    nlohmann::ordered_json doc;  // ordered: the buckets' order is the file's
    try {
        doc = nlohmann::ordered_json::parse(buffer.str(), nullptr, true, /*ignore_comments=*/true);
    } catch (const nlohmann::ordered_json::exception& e) {  // parse_error, and out_of_range for 1e999
        return MakeError(ErrorCode::kInvalidRequest, path + ": malformed JSON: " + e.what());
    }
    if (!doc.is_object()) return MakeError(ErrorCode::kInvalidRequest, path + ": the top level must be an object");
    if (auto it = doc.find("buckets"); it != doc.end()) {
        if (auto st = ApplyFileBuckets(config, *it, path, origin, listed); !st.ok()) return st;
        doc.erase(it);
    }
    if (auto it = doc.find("upstreams"); it != doc.end()) {
        if (auto st = ApplyFileUpstreams(config, *it, path, origin); !st.ok()) return st;
        doc.erase(it);
    }
    std::vector<std::pair<std::string, json>> leaves;
    Flatten(json(doc), "", leaves);
    for (const auto& [key, value] : leaves) {
        if (!key.empty() && key[0] == '_') continue;  // "_comment" keys document the file
        if (auto st = SetFromFile(config, key, value, path, origin); !st.ok()) return st;
    }
    return OkStatus();
}

}  // namespace

const BucketConfig* Config::FindBucket(std::string_view name) const {
    for (const auto& b : buckets) {
        if (b.name == name) return &b;
    }
    return nullptr;
}

const BucketConfig* Config::HotBucket() const {
    for (const auto& b : buckets) {
        if (b.hot) return &b;
    }
    return nullptr;
}

const BucketConfig& Config::MapBucket() const {
    const BucketConfig* hot = HotBucket();
    return hot ? *hot : buckets.at(0);
}

size_t Config::BucketIndex(const BucketConfig& bucket) const {
    return static_cast<size_t>(&bucket - buckets.data());
}

std::vector<UpstreamConfig> Config::Upstreams() const {
    if (upstreams.empty()) return {UpstreamConfig{"ollama", "ollama", ollama.url, std::max(1, ollama.num_parallel)}};
    std::vector<UpstreamConfig> out = upstreams;
    for (auto& u : out) {
        if (u.slots <= 0) u.slots = u.kind == "openai" ? kDefaultOpenAiSlots : std::max(1, ollama.num_parallel);
    }
    return out;
}

bool Config::Serves(const UpstreamConfig& upstream, std::string_view bucket) {
    return upstream.buckets.empty() ||
           std::find(upstream.buckets.begin(), upstream.buckets.end(), bucket) != upstream.buckets.end();
}

int Config::PoolSlots(std::string_view bucket) const {
    int slots = 0;
    for (const auto& u : Upstreams()) {
        if (Serves(u, bucket)) slots += u.slots;
    }
    return std::max(1, slots);
}

int Config::MapConcurrency() const {
    return map_reduce.concurrency > 0 ? map_reduce.concurrency : PoolSlots(MapBucket().name);
}

int Config::MaxInflight() const {
    if (server.max_inflight > 0) return server.max_inflight;
    int slots = 0;
    for (const auto& u : Upstreams()) slots += u.slots;
    return std::max(2, 2 * slots);
}

int Config::MaxBatchInflight() const {
    if (server.max_batch_inflight > 0) return server.max_batch_inflight;
    return std::max(1, PoolSlots(MapBucket().name));
}

bool Config::JobsEnabled() const { return !jobs.database.empty() && jobs.database != "off"; }

std::optional<double> ParseKeepAlive(std::string_view text) {
    auto seconds = ParseDurationSeconds(text);
    if (!seconds || !std::isfinite(*seconds)) return std::nullopt;  // "inf", "nan": not a duration Ollama reads
    return seconds;
}

std::string RedactPassword(const std::string& url) {
    std::string out = url;
    const size_t scheme = out.find("://");
    if (scheme == std::string::npos) return out;
    // user:password@host
    const size_t at = out.find('@', scheme + 3);
    const size_t slash = out.find('/', scheme + 3);
    const size_t colon = out.find(':', scheme + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash) && colon < at) {
        out = out.substr(0, colon + 1) + "<set>" + out.substr(at);
    }
    // ?password=...
    for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
        if (p == 0 || (out[p - 1] != '?' && out[p - 1] != '&')) continue;
        const size_t end = out.find('&', p);
        out = out.substr(0, p + 9) + "<set>" + (end == std::string::npos ? "" : out.substr(end));
    }
    return out;
}

std::optional<std::string> NormalizeOllamaHost(std::string_view value) {
    std::string v = Trim(value);
    if (v.empty()) return std::nullopt;
    std::string scheme = "http";
    if (auto pos = v.find("://"); pos != std::string::npos) {
        scheme = v.substr(0, pos);
        v = v.substr(pos + 3);
        if (scheme != "http" && scheme != "https") return std::nullopt;
    }
    while (!v.empty() && v.back() == '/') v.pop_back();
    if (v.find('/') != std::string::npos || v.find(' ') != std::string::npos) return std::nullopt;
    std::string host = v;
    std::string port = scheme == "https" ? "443" : "11434";
    if (!v.empty() && v[0] == '[') {  // [::1]:port
        auto close = v.find(']');
        if (close == std::string::npos) return std::nullopt;
        host = v.substr(0, close + 1);
        if (close + 1 < v.size()) {
            if (v[close + 1] != ':') return std::nullopt;
            port = v.substr(close + 2);
        }
    } else if (auto colon = v.rfind(':'); colon != std::string::npos) {
        host = v.substr(0, colon);
        port = v.substr(colon + 1);
    }
    if (host.empty()) host = "127.0.0.1";
    if (host == "0.0.0.0") host = "127.0.0.1";  // Ollama's bind-all address means "this host" to a client
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return std::nullopt;
    int p = std::stoi(port);
    if (p < 1 || p > 65535) return std::nullopt;
    return scheme + "://" + host + ":" + port;
}

std::optional<std::string> NormalizeOpenAiUrl(std::string_view value) {
    std::string v = Trim(value);
    const auto scheme_end = v.find("://");
    if (scheme_end == std::string::npos) return std::nullopt;
    const std::string scheme = v.substr(0, scheme_end);
    if (scheme != "http" && scheme != "https") return std::nullopt;
    std::string rest = v.substr(scheme_end + 3);
    const size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    std::string prefix = slash == std::string::npos ? "" : rest.substr(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    if (prefix.size() >= 3 && prefix.ends_with("/v1")) prefix.resize(prefix.size() - 3);
    if (authority.empty() || authority.find(' ') != std::string::npos || authority.find('@') != std::string::npos) {
        return std::nullopt;
    }
    std::string host = authority;
    std::string port = scheme == "https" ? "443" : "80";
    if (authority[0] == '[') {
        const auto close = authority.find(']');
        if (close == std::string::npos) return std::nullopt;
        host = authority.substr(0, close + 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return std::nullopt;
            port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) {
        return std::nullopt;
    }
    const int p = std::stoi(port);
    if (p < 1 || p > 65535) return std::nullopt;
    return scheme + "://" + host + ":" + port + prefix;
}

Result<UpstreamConfig> ParseUpstreamItem(std::string_view item) {
    const std::string text = Trim(item);
    const auto eq = text.find('=');
    const auto at = eq == std::string::npos ? std::string::npos : text.find('@', eq);
    if (eq == std::string::npos || eq == 0 || at == std::string::npos || at == eq + 1 || at + 1 >= text.size()) {
        return MakeError(ErrorCode::kInvalidRequest, "upstreams: '" + text +
                                                         "' is not NAME=KIND@URL (e.g. gpu1=ollama@http://10.0.0.5:11434 "
                                                         "or vllm=openai@http://10.0.0.7:8000)");
    }
    UpstreamConfig u;
    u.name = text.substr(0, eq);
    u.kind = text.substr(eq + 1, at - eq - 1);
    u.url = text.substr(at + 1);
    return u;
}

double EstimateBucketVramMb(const Config& config, const BucketConfig& bucket) {
    double kv_factor = 1.0;
    if (config.vram.kv_cache_type == "q8_0") kv_factor = 0.53;  // 8.5 bits per value with scales
    if (config.vram.kv_cache_type == "q4_0") kv_factor = 0.28;
    double kv = config.vram.kv_mb_per_1k_tokens * kv_factor * (bucket.num_ctx / 1024.0) * config.ollama.num_parallel;
    return config.vram.weights_mb + config.vram.fixed_mb + kv;
}

// Bucket names are route names in the API and parts of knob paths and environment variables.
Status ValidateBuckets(const Config& config) {
    if (config.buckets.empty()) return MakeError(ErrorCode::kInvalidRequest, "buckets: at least one bucket is needed");
    const BucketConfig* hot = nullptr;
    for (size_t i = 0; i < config.buckets.size(); ++i) {
        const BucketConfig& b = config.buckets[i];
        const bool name_ok = !b.name.empty() && b.name.size() <= 32 &&
                             std::all_of(b.name.begin(), b.name.end(), [](unsigned char c) {
                                 return std::isalnum(c) || c == '_' || c == '-';
                             }) &&
                             std::any_of(b.name.begin(), b.name.end(), [](unsigned char c) { return std::isalpha(c); });
        if (!name_ok || b.name == "map_reduce" || b.name == "extractive" || b.name == "none") {
            return MakeError(ErrorCode::kInvalidRequest,
                             "buckets." + b.name + ": a bucket name has letters, digits, '_' or '-' (at least one "
                             "letter, at most 32) and is not map_reduce, extractive or none");
        }
        if (b.model.empty()) return MakeError(ErrorCode::kInvalidRequest, "buckets." + b.name + ".model: must not be empty");
        if (!ParseKeepAlive(b.keep_alive)) {
            return MakeError(ErrorCode::kInvalidRequest,
                             "buckets." + b.name + ".keep_alive = " + b.keep_alive +
                                 ": not a duration Ollama understands (e.g. \"24h\", \"15m\", \"300ms\", \"-1\", \"0\")");
        }
        if (i > 0 && b.num_ctx <= config.buckets[i - 1].num_ctx) {
            const BucketConfig& prev = config.buckets[i - 1];
            return MakeError(ErrorCode::kInvalidRequest,
                             "buckets." + b.name + ".num_ctx = " + std::to_string(b.num_ctx) + ": must be larger than buckets." +
                                 prev.name + ".num_ctx (" + std::to_string(prev.num_ctx) +
                                 "); buckets are listed smallest context first");
        }
        if (b.hot && hot) {
            return MakeError(ErrorCode::kInvalidRequest, "buckets." + b.name + ".hot: only one bucket can be hot (" +
                                                             hot->name + " is)");
        }
        if (b.hot) hot = &b;
    }
    return OkStatus();
}

namespace {

bool ValidName(const std::string& name) {
    return !name.empty() && name.size() <= 32 &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-'; }) &&
           std::any_of(name.begin(), name.end(), [](unsigned char c) { return std::isalpha(c); });
}

std::string JoinNames(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

Status ValidateUpstream(const Config& config, const UpstreamConfig& u) {
    const std::string key = "upstreams." + u.name;
    if (!ValidName(u.name)) {
        return MakeError(ErrorCode::kInvalidRequest, key + ": an upstream name has letters, digits, '_' or '-' (at "
                                                           "least one letter, at most 32)");
    }
    if (u.kind != "ollama" && u.kind != "openai") {
        return MakeError(ErrorCode::kInvalidRequest, key + ".kind = " + u.kind +
                                                         ": must be ollama or openai (vLLM, llama.cpp llama-server, SGLang)");
    }
    if (u.url.empty()) return MakeError(ErrorCode::kInvalidRequest, key + ".url: must be set (NAME=KIND@URL)");
    const bool url_ok = u.kind == "ollama" ? NormalizeOllamaHost(u.url).has_value() : NormalizeOpenAiUrl(u.url).has_value();
    if (!url_ok) {
        return MakeError(ErrorCode::kInvalidRequest,
                         key + ".url = " + u.url + ": the scheme must be http or https and the host a name or address (" +
                             (u.kind == "ollama" ? "e.g. http://10.0.0.5:11434)" : "e.g. http://10.0.0.7:8000)"));
    }
    if (u.kind == "ollama" && !u.model.empty()) {
        return MakeError(ErrorCode::kInvalidRequest, key + ".model = " + u.model +
                                                         ": only for kind openai (an Ollama upstream serves the "
                                                         "buckets' own models)");
    }
    for (const auto& b : u.buckets) {
        if (!config.FindBucket(b)) {
            std::vector<std::string> names;
            for (const auto& known : config.buckets) names.push_back(known.name);
            return MakeError(ErrorCode::kInvalidRequest, key + ".buckets = " + JoinNames(u.buckets) + ": " + b +
                                                             " is not a bucket (buckets: " + JoinNames(names) + ")");
        }
    }
    return OkStatus();
}

Status ValidateUpstreams(const Config& config) {
    std::vector<std::string> seen;
    for (const auto& u : config.upstreams) {
        if (std::find(seen.begin(), seen.end(), u.name) != seen.end()) {
            return MakeError(ErrorCode::kInvalidRequest, "upstreams." + u.name + ": the name is given twice");
        }
        seen.push_back(u.name);
        if (auto st = ValidateUpstream(config, u); !st.ok()) return st;
    }
    if (config.upstreams.empty()) return OkStatus();
    for (const auto& b : config.buckets) {
        const bool served = std::any_of(config.upstreams.begin(), config.upstreams.end(),
                                        [&](const UpstreamConfig& u) { return Config::Serves(u, b.name); });
        if (served) continue;
        std::string listed;
        for (const auto& u : config.upstreams) {
            listed += (listed.empty() ? "" : "; ") + ("upstreams." + u.name + ".buckets = " + JoinNames(u.buckets));
        }
        const std::string lead = config.upstreams.size() == 1
                                     ? "upstreams." + config.upstreams[0].name + ".buckets = " +
                                           JoinNames(config.upstreams[0].buckets) + ": "
                                     : "upstreams: ";
        return MakeError(ErrorCode::kInvalidRequest, lead + "no upstream serves bucket " + b.name + " (" + listed +
                                                         "); add it to an upstream's buckets or remove the bucket");
    }
    return OkStatus();
}

}  // namespace

Status ValidateConfig(const Config& config) {
    Config copy = config;
    for (const auto& knob : KnobsOf(config)) {
        Ref ref = knob.ref(copy);
        if (knob.min == 0 && knob.max == 0) continue;
        double v = std::visit(
            [](auto* p) -> double {
                using T = std::remove_pointer_t<decltype(p)>;
                if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) return static_cast<double>(*p);
                return 0.0;
            },
            ref);
        if (v < knob.min || v > knob.max) {
            std::ostringstream why;
            why << "must be between " << static_cast<int64_t>(knob.min) << " and " << static_cast<int64_t>(knob.max);
            if (knob.max >= 1e15) why.str("must be at least " + std::to_string(static_cast<int64_t>(knob.min)));
            return MakeError(ErrorCode::kInvalidRequest, knob.path + " = " + Describe(RefToJson(ref)) + ": " + why.str());
        }
    }
    if (auto st = ValidateBuckets(config); !st.ok()) return st;
    if (config.generation.num_predict > config.generation.max_num_predict) {
        return MakeError(ErrorCode::kInvalidRequest,
                         "generation.num_predict = " + std::to_string(config.generation.num_predict) +
                             ": must not exceed generation.max_num_predict (" +
                             std::to_string(config.generation.max_num_predict) + ")");
    }
    const BucketConfig& map_bucket = config.MapBucket();
    int64_t map_budget = map_bucket.num_ctx - config.routing.safety_margin_tokens -
                         std::max(config.map_reduce.map_num_predict, config.map_reduce.reduce_num_predict);
    if (map_budget < 1024) {
        return MakeError(ErrorCode::kInvalidRequest,
                         "routing.safety_margin_tokens and map_reduce.*_num_predict leave under 1024 tokens of the " +
                             map_bucket.name + " bucket (map-reduce runs there) for input; lower them");
    }
    if (config.routing.policy != "static" && config.routing.policy != "cost") {
        return MakeError(ErrorCode::kInvalidRequest,
                         "routing.policy = " + config.routing.policy + ": must be \"static\" or \"cost\"");
    }
    const auto& kv = config.vram.kv_cache_type;
    if (kv != "f16" && kv != "q8_0" && kv != "q4_0") {
        return MakeError(ErrorCode::kInvalidRequest, "vram.kv_cache_type = " + kv + ": must be f16, q8_0 or q4_0");
    }
    if (!NormalizeOllamaHost(config.ollama.url)) {
        return MakeError(ErrorCode::kInvalidRequest,
                         "ollama.url = " + config.ollama.url + ": expected host, host:port or http://host:port");
    }
    if (auto st = ValidateUpstreams(config); !st.ok()) return st;
    if (config.server.host.empty()) return MakeError(ErrorCode::kInvalidRequest, "server.host: must not be empty");
    return OkStatus();
}

// The order of the buckets: those a file listed (in its order) and those the defaults lack are
// merged by context size into the default buckets left (in their order). A set-up that only
// changes values keeps the default order, so a 60k bucket made smaller than 16k is an error.
void OrderBuckets(Config& config, const std::vector<std::string>& listed) {
    const Config defaults;
    std::vector<BucketConfig> placed, rest;
    for (const auto& name : listed) {
        if (const BucketConfig* b = config.FindBucket(name)) placed.push_back(*b);
    }
    for (const auto& b : config.buckets) {
        const bool named = std::find(listed.begin(), listed.end(), b.name) != listed.end();
        if (named) continue;
        (defaults.FindBucket(b.name) ? rest : placed).push_back(b);
    }
    std::vector<BucketConfig> merged;
    size_t i = 0, j = 0;
    while (i < placed.size() || j < rest.size()) {
        const bool take_placed = j == rest.size() || (i < placed.size() && placed[i].num_ctx <= rest[j].num_ctx);
        merged.push_back(take_placed ? placed[i++] : rest[j++]);
    }
    config.buckets = std::move(merged);
}

Result<Config> LoadConfig(const ConfigSources& sources) {
    Config config;
    std::map<std::string, std::string> origin;  // knob path -> where its value came from
    std::vector<std::string> listed;            // buckets a file listed, in its order
    if (sources.file) {
        if (auto st = ApplyFile(config, *sources.file, origin, listed); !st.ok()) return st.error();
    }
    if (auto it = sources.env.find("SUMMARIZER_UPSTREAMS"); it != sources.env.end() && !SplitWords(it->second).empty()) {
        if (auto st = ApplyUpstreamList(config, SplitWords(it->second), "env SUMMARIZER_UPSTREAMS", origin); !st.ok()) {
            return st.error();
        }
    }
    for (const auto& knob : KnobsOf(config)) {
        auto it = sources.env.find(knob.env);
        if (it == sources.env.end() || it->second.empty()) continue;
        std::string source = "env " + knob.env;
        if (auto st = SetFromString(config, knob, it->second, source); !st.ok()) return st.error();
        origin[knob.path] = source;
    }
    if (!sources.upstream_flags.empty()) {
        if (auto st = ApplyUpstreamList(config, sources.upstream_flags, "flag --upstream", origin); !st.ok()) {
            return st.error();
        }
    }
    for (const auto& [path, value] : sources.flags) {
        auto knob = FindKnob(path);
        if (!knob) return MakeError(ErrorCode::kInvalidRequest, "unknown setting '" + path + "'" + RetiredKnobNote(path));
        auto spelled = sources.flag_names.find(path);
        std::string source = "flag " + (spelled != sources.flag_names.end() ? spelled->second : "--set " + path);
        if (auto st = SetFromString(config, *knob, value, source); !st.ok()) return st.error();
        origin[knob->path] = source;
    }
    if (auto url = NormalizeOllamaHost(config.ollama.url)) config.ollama.url = *url;
    for (auto& u : config.upstreams) {
        auto url = u.kind == "openai" ? NormalizeOpenAiUrl(u.url) : NormalizeOllamaHost(u.url);
        if (url && !u.url.empty()) u.url = *url;
    }
    OrderBuckets(config, listed);
    if (auto st = ValidateConfig(config); !st.ok()) {
        // Name where the offending value came from: the message starts with its key.
        std::string message = st.error().message;
        for (const auto& [path, source] : origin) {
            bool has_source = message.find("(env ") != std::string::npos ||
                              message.find("(file ") != std::string::npos || message.find("(flag ") != std::string::npos;
            if (message.rfind(path, 0) == 0 && !has_source) {
                auto colon = message.find(": ");
                if (colon != std::string::npos) message.insert(colon, " (" + source + ")");
                break;
            }
        }
        return MakeError(ErrorCode::kInvalidRequest, message);
    }
    return config;
}

const std::vector<KnobInfo>& Knobs() {
    static const std::vector<KnobInfo> infos = [] {
        std::vector<KnobInfo> out;
        Config defaults;
        for (const auto& knob : KnobsOf(defaults)) {
            out.push_back(KnobInfo{knob.path, knob.env, Describe(RefToJson(knob.ref(defaults))), knob.help});
        }
        // The pool's short form; each upstream's own knobs are upstreams.<name>.* (docs/UPSTREAMS.md).
        out.push_back(KnobInfo{"upstreams", "SUMMARIZER_UPSTREAMS", "",
                               "the pool: NAME=KIND@URL items separated by spaces (flag --upstream, repeatable); "
                               "empty: one Ollama at ollama.url. Each upstream's slots, api_key, buckets and model: "
                               "upstreams.<name>.* (docs/UPSTREAMS.md)"});
        return out;
    }();
    return infos;
}

std::string ConfigToJson(const Config& config) {
    Config copy = config;
    json doc = json::object();
    for (const auto& knob : KnobsOf(copy)) {
        json value = RefToJson(knob.ref(copy));
        if (knob.path == "server.api_key" || knob.path.ends_with(".api_key")) {
            value = value.get<std::string>().empty() ? "" : "<set>";
        }
        if (knob.path == "jobs.database") value = RedactPassword(copy.jobs.database);
        doc[json::json_pointer("/" + [&] {
            std::string p = knob.path;
            std::replace(p.begin(), p.end(), '.', '/');
            return p;
        }())] = value;
    }
    return doc.dump(2);
}

}  // namespace summarizer
