// LlmEngine over an OpenAI-compatible server (vLLM, llama.cpp's llama-server, SGLang): the one place
// that knows their wire format (docs/UPSTREAMS.md, ../shared/design/ENGINES.md).
// - Generate: POST /v1/chat/completions with "stream": true and stream_options.include_usage: the
//   `data:` lines of Server-Sent Events up to `data: [DONE]`; token counts from the usage chunk,
//   prefill and decode times from llama.cpp's `timings` where present (else measured: time to the
//   first piece, and the rest). The instruction and the prompt go as one user message (Gemma 3 has no
//   system role; its templates prepend a system message to the first user turn anyway).
// - A prompt over the context is refused with 400 by all three, each in its own words; that is
//   kContextOverflow (Error::overflow_prompt_tokens set when the body states the count), which the
//   executor re-plans as it does Ollama's. vLLM counts prompt + max_tokens against max_model_len,
//   llama.cpp the prompt alone against a slot's n_ctx (generating past it ends with "length").
// - Cancellation closes the stream (the watchdog stops the connection); the engine aborts the request.
// - Discover(): the served model and its context from GET /v1/models (vLLM, SGLang: max_model_len),
//   else GET /props (llama.cpp: default_generation_settings.n_ctx, total_slots); never assumed.
// - CountTokens: POST /tokenize ({model, prompt} -> count on vLLM and SGLang; {content} -> tokens on
//   llama.cpp); kUnsupported elsewhere.
// - Health: GET /health (200 once the model is loaded), then GET /v1/models.
// Thread-safe; generate calls reuse keep-alive connections.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/llm_engine.hpp"

namespace summarizer {

namespace upstream_http {
class Watchdog;
class ConnectionPool;
}  // namespace upstream_http

// The server software behind the API, as Discover() recognised it.
enum class OpenAiFlavor { kUnknown, kVllm, kLlamaCpp, kSglang };
std::string_view OpenAiFlavorName(OpenAiFlavor flavor);

struct OpenAiClientOptions {
    std::string name = "openai";  // the upstream's name, for messages
    std::string url;              // scheme://host:port[/prefix] (NormalizeOpenAiUrl)
    std::string api_key;          // `Authorization: Bearer <key>`; empty: none
    int connect_timeout_ms = 3000;
    int first_token_timeout_s = 300;
    int idle_timeout_s = 60;
    int total_timeout_s = 1800;
    int tokenize_timeout_ms = 2000;  // one /tokenize call
};

// What GET /v1/models and GET /props say about a server.
struct OpenAiServerInfo {
    OpenAiFlavor flavor = OpenAiFlavor::kUnknown;
    std::vector<std::string> models;  // served model ids, in the server's order
    int64_t context_tokens = 0;       // vLLM/SGLang max_model_len, llama.cpp per-slot n_ctx; 0: not stated
    int slots = 0;                    // llama.cpp total_slots; 0: not stated (vLLM does not say)
};

class OpenAiClient : public LlmEngine {
public:
    explicit OpenAiClient(OpenAiClientOptions options);
    ~OpenAiClient() override;

    // No retries here: the pool retries, on another upstream when it can. Errors as LlmEngine.
    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override;
    Result<int64_t> CountTokens(const std::string& model, const std::string& text) override;
    Result<int64_t> ContextSize(const std::string& model) override;
    Result<EngineHealth> Health() override;

    // Asks the server what it serves (and remembers the flavor for /tokenize and bodies).
    Result<OpenAiServerInfo> Discover();
    // The last Discover() result (flavor kUnknown before one succeeded).
    OpenAiServerInfo info() const;

    const OpenAiClientOptions& options() const { return options_; }

private:
    Result<int64_t> Tokenize(OpenAiFlavor flavor, const std::string& model, const std::string& text);

    OpenAiClientOptions options_;
    std::unique_ptr<upstream_http::ConnectionPool> pool_;
    std::unique_ptr<upstream_http::Watchdog> watchdog_;
    mutable std::mutex mutex_;
    OpenAiServerInfo info_;
    bool tokenize_unsupported_ = false;  // /tokenize answered 404 or 405 once
};

// The /v1/chat/completions body of a streamed call (exposed for tests).
std::string BuildChatBody(const GenerateRequest& request, OpenAiFlavor flavor);

// A context-overflow refusal in any of the engines' wordings: vLLM ("maximum context length is N
// tokens ... your request has M input tokens", "'max_tokens' ... is too large"), llama.cpp
// (exceed_context_size_error with n_prompt_tokens and n_ctx), SGLang ("The input (N tokens) is longer
// than the model's context length (M tokens)"). `body` is the error body as sent.
struct ContextOverflow {
    int64_t prompt_tokens = 0;   // 0: not stated
    int64_t context_tokens = 0;  // 0: not stated
};
std::optional<ContextOverflow> ParseContextOverflow(std::string_view body);

// Maps an error status and body of an OpenAI-compatible server to a typed Error. `who` names the
// upstream in the message, `model` the model asked for.
Error ErrorFromOpenAiStatus(int status, const std::string& body, const std::string& who, const std::string& model);

}  // namespace summarizer
