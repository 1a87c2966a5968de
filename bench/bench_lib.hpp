// summarizer-bench's logic: the design record's benchmark method (cases small/medium/large/xl,
// warm-up runs, measured runs, P50/P95) run against a real Ollama or against the summarizer
// service, and the report it produces (Markdown table, JSON with every sample, SVG chart).
//
// Deliberately independent of the service's code: it speaks the two wire formats itself
// (Ollama's NDJSON /api/generate, the service's SSE /summarize), so it measures the service
// from the outside exactly as a client sees it. Nothing here is thread-safe; one benchmark
// runs its requests one after another, as the record did.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace summarizer::bench {

// ---- Statistics -------------------------------------------------------------------------------

// The p-th percentile (0 <= p <= 100) with linear interpolation between closest ranks (numpy's
// default): P50 of {1, 2, 3, 4} is 2.5, P95 of {1..10} is 9.55. nullopt for no values.
std::optional<double> Percentile(std::vector<double> values, double p);

// ---- Cases ------------------------------------------------------------------------------------

// One input text: the file `<name>.<lang>.txt` of the cases directory.
struct BenchCase {
    std::string name;  // "small", "medium", "large", "xl"
    std::string lang;  // "en", "ja": also the language the raw-Ollama prompt asks for
    std::string text;
    int64_t chars = 0;  // Unicode code points, as the API counts them
};

int64_t CountCodePoints(std::string_view utf8);

struct CaseLoadResult {
    std::vector<BenchCase> cases;  // names x langs, in the order given (name-major)
    std::string error;             // empty on success; else names every missing or unreadable file
    bool ok() const { return error.empty(); }
};

// Reads `dir/<name>.<lang>.txt` for every name and lang. A missing, unreadable or blank file is
// an error (the caller asked for that case), not a skipped case.
CaseLoadResult LoadCases(const std::filesystem::path& dir, const std::vector<std::string>& names,
                         const std::vector<std::string>& langs);

// "a,b,,c " -> {"a", "b", "c"}: the --cases / --lang flag syntax.
std::vector<std::string> SplitCommaList(std::string_view list);

// ---- Configuration ----------------------------------------------------------------------------

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

// ---- Summary ----------------------------------------------------------------------------------

struct Verdict {
    bool pass = false;
    std::vector<std::string> reasons;  // why not: "TTFT", "decode", "prefill", "all runs failed"
};

struct CaseSummary {
    int runs_ok = 0;  // measured runs only
    int runs_failed = 0;
    int warmup_failed = 0;
    std::optional<double> ttft_p50_s, ttft_p95_s;
    std::optional<double> latency_p50_s, latency_p95_s;
    std::optional<double> prefill_tps_p50, decode_tps_p50;
    std::optional<int64_t> prompt_tokens, output_tokens;  // P50, rounded
    std::string route = "-";                              // as chosen by the service; "a/b" if it varied
    std::string first_error;                              // the first failed measured run's message
    Verdict verdict;
};

// Statistics over the successful measured samples (warm-ups and failures are excluded).
CaseSummary SummarizeCase(const std::vector<RunSample>& samples, const Targets& targets);
Verdict Judge(const CaseSummary& summary, const Targets& targets);

struct CaseResult {
    std::string name;
    std::string lang;
    int64_t chars = 0;
    std::vector<RunSample> samples;  // warm-ups first, then measured runs
    CaseSummary summary;
    std::optional<VramSnapshot> vram;  // after the case's runs; nullopt when not asked
};

struct BenchReport {
    BenchConfig config;
    std::string started_at;  // UTC, RFC 3339
    double wall_s = 0;
    std::string ollama_version;  // empty when unknown
    std::vector<CaseResult> cases;

    int MeasuredRunsOk() const;
    int MeasuredRunsFailed() const;
};

// Re-judges every case against other targets (the samples stay as they are).
void ApplyTargets(BenchReport& report, const Targets& targets);

// ---- Running ----------------------------------------------------------------------------------

struct ProgressEvent {
    enum class Stage { kRunStarting, kRunFinished, kCaseFinished };
    Stage stage = Stage::kRunStarting;
    size_t case_index = 0;  // 0-based
    size_t case_count = 0;
    std::string case_name;
    std::string lang;
    bool warmup = false;
    int run = 0;  // 1-based within the phase
    int runs = 0;
    const RunSample* sample = nullptr;     // kRunFinished
    const CaseSummary* summary = nullptr;  // kCaseFinished
};
using ProgressCallback = std::function<void(const ProgressEvent&)>;

// Runs every case: warm-ups, measured runs, then /api/ps when an Ollama URL is known. Failed
// runs are recorded, never fatal.
BenchReport RunBenchmark(const BenchConfig& config, const std::vector<BenchCase>& cases,
                         const ProgressCallback& progress = {});

// Renders progress for a human: on a TTY one line rewritten with '\r' per case, otherwise one
// plain line per finished run (logs and CI stay readable).
class ProgressPrinter {
public:
    ProgressPrinter(std::ostream& out, bool is_tty) : out_(out), is_tty_(is_tty) {}
    void operator()(const ProgressEvent& event);

private:
    void Rewrite(const std::string& line);
    std::ostream& out_;
    bool is_tty_;
    size_t last_width_ = 0;
};

// ---- Report -----------------------------------------------------------------------------------

std::string RenderMarkdown(const BenchReport& report);
// Every sample (warm-ups flagged) and the summary per case; never the API key.
nlohmann::ordered_json RenderJson(const BenchReport& report);
// TTFT P50 and latency P50 per case as grouped bars (one <rect class="bar ttft"> and one
// <rect class="bar latency"> per case with data), with a y axis in seconds and the TTFT target.
std::string RenderSvg(const BenchReport& report);

// Writes report.md, report.json and report.svg into dir (created if needed). Returns an error
// message, empty on success.
std::string WriteReportFiles(const BenchReport& report, const std::filesystem::path& dir);

// ---- Stream framing (pure; exposed for tests) -------------------------------------------------

// Cuts a byte stream into lines ('\n', an optional '\r' before it dropped), whatever the chunking.
class LineBuffer {
public:
    void Append(std::string_view bytes) { pending_.append(bytes); }
    std::optional<std::string> NextLine();
    std::string TakeRest();  // an unterminated last line

private:
    std::string pending_;
};

struct SseEvent {
    std::string event = "message";
    std::string data;  // "data:" lines joined with '\n'
};

// Server-Sent Events framing: fields per line, an event per blank line, ':' comments ignored.
class SseParser {
public:
    std::vector<SseEvent> Feed(std::string_view bytes);

private:
    LineBuffer lines_;
    SseEvent current_;
    bool has_data_ = false;
};

}  // namespace summarizer::bench
