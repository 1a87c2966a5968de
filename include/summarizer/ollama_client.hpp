// LlmEngine and ModelHost over Ollama's HTTP API: the one place that knows Ollama's wire format.
// Streams /api/generate NDJSON; every call carries num_ctx, keep_alive, the generation options
// and "truncate": false. Time-outs and cancellation live here: a watchdog closes the upstream
// socket when the cancel flag is set or a deadline passes, so a cancelled call ends within
// milliseconds even while Ollama is silent (loading or prefilling).
// Thread-safe; each call uses its own connection.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "summarizer/config.hpp"
#include "summarizer/llm_engine.hpp"

namespace summarizer {

namespace upstream_http {
class Watchdog;
class ConnectionPool;
}  // namespace upstream_http

struct OllamaClientOptions {
    std::string base_url = "http://127.0.0.1:11434";
    int connect_timeout_ms = 3000;
    int first_token_timeout_s = 300;
    int idle_timeout_s = 60;
    int total_timeout_s = 1800;
    int max_retries = 2;         // extra attempts on transient failures, only before any text was delivered
    int retry_backoff_ms = 250;  // doubles each attempt, with +-50% jitter
    int retry_budget_s = 60;     // no retry starts (backoff included) later than this after the first attempt
    std::string api_key;         // `Authorization: Bearer <key>` (an Ollama behind an authenticating proxy)

    static OllamaClientOptions FromConfig(const OllamaConfig& config);
};

class OllamaClient : public LlmEngine, public ModelHost {
public:
    explicit OllamaClient(OllamaClientOptions options);
    ~OllamaClient() override;

    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override;
    // /api/tags: Ollama answers and has these models.
    Result<EngineHealth> Health() override;
    Result<std::vector<LoadedModel>> ListLoaded() override;
    Result<GenerateResult> Load(const std::string& model, int context_tokens, const std::string& keep_alive) override;

    const OllamaClientOptions& options() const { return options_; }

private:
    Result<GenerateResult> GenerateOnce(const GenerateRequest& request, const TokenCallback& on_token,
                                        const CancelToken& cancel);

    OllamaClientOptions options_;
    std::unique_ptr<upstream_http::ConnectionPool> pool_;  // idle keep-alive connections for generate calls
    std::unique_ptr<upstream_http::Watchdog> watchdog_;  // one thread enforcing cancellation and timeouts
};

// Builds the /api/generate body (exposed for tests).
std::string BuildGenerateBody(const GenerateRequest& request);

// keep_alive as Ollama reads it: a Go duration string as is ("24h"), bare seconds as a JSON number ("-1" -> -1).
nlohmann::json KeepAliveJson(const std::string& keep_alive);

// A /api/generate line without its "context" member (exposed for tests). Ollama's final object
// carries the prompt's and the answer's token ids there, tens of thousands of numbers for a long
// prompt, which nothing here reads: parsing them was most of the JSON work per call. The line as
// it is when it has no such member, or one that is not an array of integers; else the rest, in
// `scratch`.
std::string_view WithoutOllamaContext(std::string_view line, std::string& scratch);

// What the service reads of one /api/generate line (exposed for tests).
struct OllamaLine {
    std::optional<std::string> error;  // "error": its text (a non-string value as JSON)
    std::string response;              // "response" when a string
    bool done = false;
    std::string done_reason;           // when a string
    // Numbers as Ollama sends them (durations in ns); 0 when absent or not a number. A float is
    // truncated; one beyond int64's range reads as 0.
    int64_t prompt_eval_count = 0, eval_count = 0;
    int64_t total_duration = 0, load_duration = 0, prompt_eval_duration = 0, eval_duration = 0;
};
// Reads the members above from a line: only the object's own members (nested ones are skipped),
// the last of a repeated name winning, without building a JSON document (Ollama sends a line per
// token: a document per line was its map, keys and strings allocated for each). Errors: the
// line is not JSON, not an object, or its "done" is not a boolean (kUpstreamError).
Result<OllamaLine> ParseOllamaLine(std::string_view line);

// Maps an Ollama error status and body ({"error": "..."}) to a typed Error.
Error ErrorFromOllamaStatus(int status, const std::string& body, const std::string& model);

}  // namespace summarizer
