// What summarizer-bench runs against and how: the target (a real Ollama or the service), the
// record's request settings, the run counts and the targets a case is judged by.
#pragma once

#include <cstdint>
#include <string>

namespace summarizer::bench {

enum class TargetKind {
    kOllama,   // POST /api/generate on an Ollama server, streaming NDJSON
    kService,  // POST /summarize on the summarizer service, streaming SSE
};

// The record's goals. A case passes when its TTFT P50 is below ttft_s and its decode and prefill
// P50 are above their floors; a rate the target does not report is not held against it.
struct Targets {
    double ttft_s = 2.0;         // perceived-latency threshold
    double decode_tps = 40.0;    // RTX 4060 expectation
    double prefill_tps = 500.0;  // lower bound with GPU acceleration
};

struct BenchConfig {
    TargetKind kind = TargetKind::kOllama;
    // Ollama mode: the target. Service mode: optional, only asked for /api/ps (VRAM); empty = skip.
    std::string ollama_url;
    std::string service_url;  // service mode: its base URL
    std::string api_key;      // service mode: sent as "Authorization: Bearer <key>" when set
    std::string model;        // Ollama mode: the model to run (e.g. "gemma3-4b-16k")

    // Ollama mode request: the record's settings. num_ctx must match the model's Modelfile or
    // Ollama reloads the runner (the warm-up absorbs that reload).
    int64_t num_ctx = 16384;
    std::string keep_alive = "24h";  // the record's 16K bucket: stays loaded between runs
    int num_batch = 1024;
    double temperature = 0.15;
    double repeat_penalty = 1.15;
    int num_predict = 1200;

    int warmup_runs = 2;     // per case, not counted: loads the model, warms caches
    int measured_runs = 10;  // per case: the P50/P95 sample
    double timeout_s = 600;  // longest silence tolerated mid-request (a cold xl prefill is long)
    // Start each request's text with a run-unique line, so Ollama's prompt cache cannot reuse the
    // previous identical document and TTFT measures a real prefill, as a new user's text would.
    bool bust_prompt_cache = true;
    Targets targets;
};

}  // namespace summarizer::bench
