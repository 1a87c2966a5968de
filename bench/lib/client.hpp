// The two-protocol client: one streaming request to a real Ollama (POST /api/generate, NDJSON) or to
// the summarizer service (POST /summarize, Server-Sent Events), measured as a client sees it, and
// Ollama's state (/api/ps, /api/version). It speaks both wire formats itself, so it measures the
// service from the outside; only the pure framing (NDJSON lines, SSE events) is shared with the
// service's code (summarizer_base). Never throws for network or protocol trouble; each call makes
// its own connection, as a fresh user would.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/config.hpp"

namespace summarizer::bench {

// A base URL split for httplib: "http://h:11434/x/" -> {"http://h:11434", "/x"}.
struct BaseUrl {
    std::string scheme_host_port;
    std::string path_prefix;  // no trailing '/', possibly empty
};
std::optional<BaseUrl> ParseBaseUrl(std::string_view url);

// ---- One request ------------------------------------------------------------------------------

// What one request measured. Rates and token counts come from the target's own report (Ollama's
// final object, the service's done event); times are the client's wall clock.
struct RunSample {
    bool warmup = false;
    int index = 0;  // 1-based within its phase (warm-up or measured)
    bool ok = false;
    std::string error;                // when !ok: what went wrong (HTTP status and message, transport error)
    std::optional<double> ttft_s;     // request sent -> first non-empty text piece
    std::optional<double> latency_s;  // request sent -> end of the stream (set on failures too)
    std::optional<double> prefill_tps;
    std::optional<double> decode_tps;
    std::optional<int64_t> prompt_tokens;
    std::optional<int64_t> output_tokens;
    std::string route = "-";  // service mode: "16k", "60k", "map_reduce"
    std::string model;        // the model that answered
    std::string done_reason;  // Ollama mode: "stop", "length"
    int64_t output_chars = 0;
    std::string output_preview;  // the first ~200 code points of the summary, to eyeball quality
    std::string nonce;           // the cache-busting line's token, if any
};

// The prompt sent to Ollama in raw mode: a plain summarization instruction in the case's
// language, the text between <document> tags, and the instruction restated after it.
std::string BuildOllamaPrompt(const std::string& lang, const std::string& text);

// Runs one streaming request. Never throws for network or protocol trouble: it becomes !ok.
RunSample RunOllamaOnce(const BenchConfig& config, const std::string& lang, const std::string& text);
RunSample RunServiceOnce(const BenchConfig& config, const std::string& text);

// ---- Ollama state -----------------------------------------------------------------------------

struct LoadedModel {
    std::string name;
    int64_t size_bytes = 0;
    int64_t size_vram_bytes = 0;  // < size_bytes: part of it runs on the CPU
    int64_t context_length = 0;
};

// What GET /api/ps reported.
struct VramSnapshot {
    bool ok = false;
    std::string error;
    int64_t size_vram_bytes = 0;  // summed over loaded models
    int64_t size_bytes = 0;
    std::vector<LoadedModel> models;
};
VramSnapshot QueryVram(const std::string& ollama_url, double timeout_s = 10);

// GET /api/version; empty when unavailable.
std::string QueryOllamaVersion(const std::string& ollama_url, double timeout_s = 10);

}  // namespace summarizer::bench
