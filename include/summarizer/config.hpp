// Every knob of the service, with its default, its unit and when to change it.
// Loading order (later wins): built-in defaults < config file < environment < flags.
// LoadConfig() validates everything and reports the first bad value naming the key and
// where it came from (file path, environment variable or flag); callers exit with code 2.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/error.hpp"

namespace summarizer {

// One model with a fixed context window: a "bucket" of the design record. The config lists any
// number of them, smallest context first; the router picks the smallest that fits a text.
struct BucketConfig {
    std::string name;        // route name in the API ("16k", "60k"); not "map_reduce", "extractive", "none"
    std::string model;       // model name on the engine (Ollama: created from config/Modelfile.<name>)
    int num_ctx = 16384;     // context window in tokens; sent with every request (and set in the Modelfile)
    std::string keep_alive;  // Ollama duration ("24h", "15m", "-1", "0"); sent with every request
    bool hot = false;        // kept loaded: preloaded at start-up, restored after another bucket ran, and the
                             // bucket map-reduce chunks are sized for; at most one bucket is hot
};

// One inference server of the pool (docs/UPSTREAMS.md). The config lists any number of them; with
// none, the single Ollama at ollama.url (OLLAMA_HOST) is the pool, as before.
struct UpstreamConfig {
    std::string name;                  // in /status, metrics (label `upstream`) and logs; letters, digits, '_', '-'
    std::string kind = "ollama";       // "ollama" (/api/generate) or "openai" (vLLM, llama.cpp llama-server,
                                       // SGLang: /v1/chat/completions)
    std::string url;                   // ollama: as OLLAMA_HOST; openai: http(s)://host:port[/prefix] (a trailing
                                       // /v1 is dropped)
    int slots = 0;                     // calls at once; 0 = ollama.num_parallel (ollama), what the engine reports
                                       // (llama.cpp /props total_slots), else kDefaultOpenAiSlots (openai)
    std::string api_key;               // sent as `Authorization: Bearer <key>`; empty: none
    std::vector<std::string> buckets;  // names of the buckets it serves; empty: every bucket
    std::string model;                 // openai: the model it serves for every bucket; "" = the first of GET /v1/models
};

// Calls at once on an OpenAI-compatible upstream that neither reports its batch size nor has `slots`
// set (vLLM does not report max_num_seqs).
inline constexpr int kDefaultOpenAiSlots = 16;

// Sampling options sent to Ollama (the design record's values).
struct GenerationOptions {
    int num_batch = 1024;         // prompt tokens per batch; 1024 suits an RTX 4060
    double temperature = 0.15;    // low: stable, factual summaries
    double repeat_penalty = 1.15; // discourages loops in long outputs
    int num_predict = 1200;       // default cap on generated tokens of a final summary
    int max_num_predict = 4096;   // largest `max_tokens` a client may ask for
};

struct ServerConfig {
    std::string host = "127.0.0.1";   // bind address; 0.0.0.0 only behind a firewall/proxy
    int port = 8080;
    int64_t max_body_bytes = 16 * 1024 * 1024;  // 413 above this
    // The transport (docs/ARCHITECTURE.md, threads): waiting connections cost no thread; a
    // complete request runs its handler on one of `threads`, which may block for a whole summary
    // (JSON) or its wait in the admission queue. 0: max_inflight + max_queue + 16 (room for
    // /healthz and friends).
    int threads = 0;
    int io_threads = 1;               // threads running every socket; one handles thousands of connections
    int header_timeout_s = 10;        // the request line and headers must arrive within this, as a whole
    int body_timeout_s = 10;          // the body: this long plus the time its bytes take at the rate below
    int body_min_bytes_per_s = 16384; // slowest body upload not cut (16 KiB/s = 128 kbit/s); a trickle is
    int keep_alive_timeout_s = 5;     // an idle kept-alive connection is closed after this
    int write_timeout_s = 30;         // a client that reads nothing of its response for this long is cut
    int max_header_bytes = 16384;     // request line and headers; 431 above
    int max_connections = 10000;      // open connections; above, the oldest not yet answered is closed
    int max_connections_per_address = 1000;  // per client address (0 = no cap); raise behind a proxy
    int sse_heartbeat_s = 15;         // SSE comment after this long with nothing sent; 0 = none
    std::string api_key;              // empty: no auth; else `Authorization: Bearer <key>`
    std::vector<std::string> cors_origins;  // allowed browser origins; "*" for any
    int max_inflight = 0;             // requests summarizing at once; 0 = 2 x Ollama slots
    int max_queue = 64;               // requests waiting beyond max_inflight; 429 above
    int queue_timeout_s = 120;        // longest wait in the queue for a slot; then 429 with Retry-After
    bool log_json = false;            // access log as JSON lines
    bool log_text = false;            // debug only: log request texts
    int shutdown_grace_s = 30;        // in-flight requests get this long on SIGTERM
    // Long work (map-reduce requests and jobs) is admitted in a lane of its own, so a short request
    // never waits behind it for admission (the scheduler already puts its calls first).
    int max_batch_inflight = 0;  // map-reduce requests and jobs running at once; 0 = Ollama's slots
    int max_batch_queue = 16;    // map-reduce requests waiting beyond that (jobs wait in the store); 429 above
};

struct OllamaConfig {
    std::string url = "http://127.0.0.1:11434";  // from OLLAMA_HOST, as Ollama reads it
    int num_parallel = 1;               // OLLAMA_NUM_PARALLEL of the Ollama server
    int connect_timeout_ms = 3000;      // TCP connect
    int first_token_timeout_s = 300;    // request sent -> first byte (covers load + prefill)
    int idle_timeout_s = 60;            // silence between two streamed lines
    int total_timeout_s = 1800;         // one upstream call, all included
    int max_retries = 2;                // extra attempts on transient failures
    int retry_backoff_ms = 250;         // first backoff; doubles, with jitter
    int retry_budget_s = 60;            // no retry starts (backoff included) this long after the first attempt
    int circuit_failure_threshold = 3;  // consecutive "cannot connect" failures that open the circuit; 0 = off
    int circuit_open_ms = 10000;        // an open circuit fails fast this long, then lets one probe through
};

struct RoutingConfig {
    int64_t hierarchical_threshold_chars = 150000;  // above: never a single pass
    int64_t hierarchical_chunk_max_chars = 30000;   // map chunk cap in chars (tokens cap too)
    int safety_margin_tokens = 512;     // head-room kept free in num_ctx for estimate error
    int chunk_overlap_chars = 0;        // context repeated at the start of each next chunk
    std::string policy = "static";      // "static" (the record's rule) or "cost"
    // Priors of the "cost" policy, used until the ModelManager has measured the real values.
    double cost_reload_ms = 4000;            // ms to (re)load a runner; then learned from load_duration
    double cost_prefill_tokens_per_s = 3000; // RTX 4060 prefill (design record); then learned per bucket
    double cost_decode_tokens_per_s = 60;    // RTX 4060 decode (design record); then learned per bucket
    double cost_spill_slowdown = 5;          // a bucket partly on the CPU runs this many times slower
    double cost_max_slowdown = 0.10;         // a request's own expected time may exceed its fastest route's by this
};

struct MapReduceConfig {
    int map_num_predict = 400;     // cap on each chunk summary (keeps reduce input small)
    int reduce_num_predict = 600;  // cap on intermediate reduce outputs
    int concurrency = 0;           // parallel map calls; 0 = Ollama's num_parallel
    int max_levels = 8;            // reduce levels before giving up
};

// The upstream scheduler (include/summarizer/scheduler.hpp). Its slots are ollama.num_parallel;
// its bucket affinity is on when routing.policy is "cost".
struct SchedulerConfig {
    bool prefill_gate = true;         // one prompt prefill at a time: the next call starts at the previous one's
                                      // first token; prefills share the GPU, so this loses no throughput and
                                      // lets them overlap with other calls' decoding
    int prefill_gate_max_ms = 20000;  // ms; a call silent this long (loading, stalled) stops holding the gate
    int batch_max_wait_ms = 20000;    // ms; a map/intermediate-reduce call waiting this long stops yielding to
                                      // interactive calls (no starvation)
    int switch_max_wait_ms = 15000;   // ms; several hosts: the longest a call waits for a busy host that has
                                      // its bucket loaded instead of making another one reload; "cost"
                                      // policy: the longest a call for the other bucket waits while the
                                      // loaded bucket's calls run (a swap costs a model reload)
    bool ride_loaded_bucket = true;   // a call may run on a larger bucket an Ollama host has loaded (its prompt
                                      // fits it) instead of making the host swap back; not onto a bucket
                                      // estimated over the VRAM budget
};

// The pool of upstreams (include/summarizer/upstream_pool.hpp).
struct PoolConfig {
    int probe_interval_ms = 5000;        // health probe of every upstream (GET /api/tags or /health); a host
                                         // that failed a call is probed at once and every 250 ms until it answers
    bool exact_tokens = true;            // count prompt tokens with the engine's tokenizer (POST /tokenize) where an
                                         // upstream can, for routing and chunk sizes; else the estimator
    int tokenize_timeout_ms = 2000;      // ms; the longest one plan spends counting (then it estimates the rest)
    int tokenize_cache_entries = 4096;   // exact counts kept, by hash of the text
    bool openai_prefill_gate = false;    // the prefill gate on OpenAI-compatible upstreams (continuous batching
                                         // engines schedule prefills themselves; measured in bench/pool_bench.cpp)
};

struct VramConfig {
    int budget_mb = 8188;            // the GPU's memory (RTX 4060: 8188 MiB)
    int reserve_mb = 400;            // kept free for the desktop / CUDA context
    int weights_mb = 3300;           // gemma3:4b Q4_K_M incl. vision projector
    int fixed_mb = 600;              // compute buffers, independent of context
    std::string kv_cache_type = "f16";  // OLLAMA_KV_CACHE_TYPE: f16, q8_0, q4_0
    double kv_mb_per_1k_tokens = 24.0;  // f16 KV per 1K tokens per slot (sliding-window Gemma 3)
    bool preload_hot_bucket = true;  // load the 16K bucket at start-up and after 60K use
    int restore_idle_ms = 1000;      // the other bucket idle this long before the hot one is loaded back
};

// What the service does when Ollama cannot be reached (or the circuit is open).
struct DegradedConfig {
    bool extractive_fallback = true;  // answer with an in-process extractive summary, marked degraded
    int extractive_max_chars = 1200;  // length budget of that summary, in characters (code points)
};

// Durable jobs (POST /jobs) and the result cache: the job store and the runner (include/summarizer/jobs.hpp).
struct JobsConfig {
    // A file path (SQLite, one process or several on one host) or a postgresql:// URL (replicas
    // sharing one job table). Relative paths are from the working directory; its directory is
    // created. "off": no jobs and no cache (POST /jobs answers 503).
    std::string database = "data/jobs.db";
    bool cache = true;                // POST /summarize answers a repeated text from the store ("cached": true)
    int max_running = 2;              // jobs this process runs at once (each also needs a batch admission slot)
    int lease_ms = 15000;             // a running job's lease; renewed every lease/3; another replica takes
                                      // a job over this long after its owner died
    int poll_ms = 500;                // how often idle runners look for work and event streams for news
                                      // from other replicas
    int retention_hours = 168;        // finished jobs older than this are deleted; 0 = keep
    int64_t retention_max_mb = 1024;  // then the oldest finished ones until the store holds less; 0 = no limit
    int retention_interval_s = 600;   // how often retention runs
    int busy_timeout_ms = 5000;       // SQLite: wait this long for a lock (PostgreSQL: lock_timeout), then 503
};

struct Config {
    ServerConfig server;
    OllamaConfig ollama;
    std::vector<BucketConfig> buckets = {
        {"16k", "gemma3-4b-16k", 16384, "24h", true},
        {"60k", "gemma3-4b-60k", 61440, "15m", false},
    };
    std::vector<UpstreamConfig> upstreams;  // empty: one Ollama at ollama.url (Upstreams())
    PoolConfig pool;
    GenerationOptions generation;
    RoutingConfig routing;
    MapReduceConfig map_reduce;
    SchedulerConfig scheduler;
    VramConfig vram;
    DegradedConfig degraded;
    JobsConfig jobs;

    const BucketConfig* FindBucket(std::string_view name) const;
    const BucketConfig* HotBucket() const;       // the bucket marked hot, if any
    // The bucket map chunks and merges run on: the hot one (no reload), else the smallest.
    const BucketConfig& MapBucket() const;
    size_t BucketIndex(const BucketConfig& bucket) const;  // its position in `buckets`
    // The pool: `upstreams`, or the one Ollama at ollama.url named "ollama". Slots resolved: 0 becomes
    // ollama.num_parallel (ollama) or kDefaultOpenAiSlots (openai).
    std::vector<UpstreamConfig> Upstreams() const;
    static bool Serves(const UpstreamConfig& upstream, std::string_view bucket);
    int PoolSlots(std::string_view bucket) const;  // slots of the upstreams serving `bucket`
    int MapConcurrency() const;  // map_reduce.concurrency, or the slots of the upstreams serving the map bucket
    int MaxInflight() const;     // server.max_inflight, or 2 x the slots of every upstream
    int MaxBatchInflight() const;  // server.max_batch_inflight, or the slots of the upstreams serving the map bucket
    bool JobsEnabled() const;      // jobs.database is not "off"
};

// Where a value came from, for messages: "config/summarizer.json", "env OLLAMA_HOST", ...
struct ConfigSources {
    std::optional<std::string> file;                 // --config; else config/summarizer.json if present
    std::map<std::string, std::string> env;          // the process environment (or a test's)
    std::map<std::string, std::string> flags;        // knob path -> value given on the command line
    std::map<std::string, std::string> flag_names;   // knob path -> its flag ("--port"); default "--set <path>"
    // `--upstream NAME=KIND@URL`, in order (repeatable). Given, they are the pool (over the environment's
    // SUMMARIZER_UPSTREAMS, over the file's "upstreams"); details of a name (slots, api_key, ...) are kept.
    std::vector<std::string> upstream_flags;
};

// One documented knob: its dotted path in the file, its environment variable, its meaning.
struct KnobInfo {
    std::string path;         // "routing.hierarchical_threshold_chars"
    std::string env;          // "HIERARCHICAL_THRESHOLD_CHARS"
    std::string default_value;
    std::string help;
};
const std::vector<KnobInfo>& Knobs();

// Loads defaults < file < env < flags, then validates. The error message names the key and
// its source, e.g. "routing.safety_margin_tokens = -1 (env SUMMARIZER_SAFETY_MARGIN_TOKENS):
// must be >= 0".
Result<Config> LoadConfig(const ConfigSources& sources);

// Checks ranges and cross-field rules (bucket order, keep_alive syntax...).
Status ValidateConfig(const Config& config);

// A bucket's keep_alive setting: "24h", "15m", "1h30m", "300ms", "90" (seconds), "-1", "0".
// Returns seconds (negative = forever) or nullopt when malformed (ParseDurationSeconds, duration.hpp).
std::optional<double> ParseKeepAlive(std::string_view text);

// OLLAMA_HOST as Ollama reads it ("host", "host:port", "http://host:port") -> base URL.
std::optional<std::string> NormalizeOllamaHost(std::string_view value);

// An OpenAI-compatible base URL: "http(s)://host[:port][/prefix]" -> "scheme://host:port[/prefix]" without a
// trailing "/" or "/v1" (OpenAI SDKs' base_url ends in /v1; the paths here add it). nullopt: not http(s).
std::optional<std::string> NormalizeOpenAiUrl(std::string_view value);

// One item of the short form (SUMMARIZER_UPSTREAMS, --upstream): "NAME=KIND@URL". Errors name the item.
Result<UpstreamConfig> ParseUpstreamItem(std::string_view item);

// Estimated VRAM of a bucket in MiB: weights + fixed + KV(num_ctx x slots, KV type).
double EstimateBucketVramMb(const Config& config, const BucketConfig& bucket);

// A connection URL with its password (if any) replaced by "<set>", for logs and /status.
std::string RedactPassword(const std::string& url);

// The effective config as JSON text (no secrets), for /status and `summarizer config`.
std::string ConfigToJson(const Config& config);

}  // namespace summarizer
