// The seams between the service and an inference server.
// - LlmEngine: what every engine has (Ollama, vLLM, llama.cpp's llama-server, SGLang): generate
//   with a token callback and a cancel flag, count tokens where the engine can, the context
//   size it serves a model with, health. The summarizer and the scheduler talk only to this.
// - ModelHost: what only Ollama has: load and unload a model, list what is loaded (/api/ps).
//   The model manager (VRAM and keep_alive policy) talks to this.
// Implementations are thread-safe: one instance serves every request of the process.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/error.hpp"

namespace summarizer {

// Shared cancel flag. Cancel() may be called from any thread; an engine checks it between
// streamed pieces (and while waiting) and then closes its upstream connection.
// A child token is cancelled with its parent, or on its own (one failed map call cancels its
// siblings without touching the request's token).
class CancelToken {
public:
    CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
    void Cancel() const { flag_->store(true, std::memory_order_relaxed); }
    bool cancelled() const {
        return flag_->load(std::memory_order_relaxed) || (parent_ && parent_->cancelled());
    }
    CancelToken Child() const {
        CancelToken child;
        child.parent_ = std::make_shared<const CancelToken>(*this);
        return child;
    }

private:
    std::shared_ptr<std::atomic<bool>> flag_;
    std::shared_ptr<const CancelToken> parent_;
};

struct GenerateRequest {
    std::string bucket;          // the bucket the call runs on; a pool places it on an upstream serving it
    std::string model;
    std::string system;          // instruction placed before the prompt (Gemma: start of user turn)
    std::string prompt;
    int context_tokens = 0;      // the bucket's context window; Ollama gets it as num_ctx on every call
    std::string keep_alive;      // how long the engine keeps the model loaded afterwards (Ollama's
                                 // duration syntax); engines without residency control ignore it
    int max_output_tokens = 0;   // cap on generated tokens (Ollama num_predict, OpenAI max_tokens)
    int num_batch = 0;           // prompt tokens per batch (Ollama only)
    double temperature = 0.0;
    double repeat_penalty = 1.0;
    std::string tag;             // for logs: "single", "map 3/12", "merge 1.2"
    bool interactive = true;     // a client waits on this call's tokens (single pass, final merge)
    // Called when the call fails for good (no retry left), before its upstream slot is given back: a
    // map-reduce stops the call's siblings first, so none of them starts in the freed slot. Optional.
    std::function<void(const Error& error)> on_failure;
};

// What one generation produced and what it cost, as the engine reported it.
struct GenerateResult {
    using Duration = std::chrono::nanoseconds;

    std::string text;
    std::string finish_reason;   // "stop", "length" (output cap or context), "load"
    int64_t prompt_tokens = 0;   // prompt tokens the engine evaluated (Ollama prompt_eval_count)
    int64_t output_tokens = 0;   // generated tokens (Ollama eval_count)
    Duration total{0};           // as the engine reports; zero where it does not
    Duration load{0};            // loading the model before this call
    Duration prefill{0};         // evaluating the prompt
    Duration decode{0};          // generating
    Duration ttft{0};            // measured here: request sent -> first non-empty piece
    Duration wall{0};            // measured here: request sent -> end of the stream
    std::string upstream;        // the pool's upstream that answered ("" outside a pool)
    std::string model;           // the pool: the model that generated it (a ride's, not the planned one)

    double PrefillTokensPerSecond() const;
    double DecodeTokensPerSecond() const;
};

// Called with each non-empty piece of generated text, in order, on the calling thread.
using TokenCallback = std::function<void(std::string_view piece)>;

// The engine answers and serves these models.
struct EngineHealth {
    std::vector<std::string> models;
};

// A call's outcome as the metrics label it: ok, timeout, unavailable, cancelled, overflow or error.
std::string_view CallOutcome(const Result<GenerateResult>& result);

class LlmEngine {
public:
    virtual ~LlmEngine() = default;

    // Streams one generation. On success the result holds the whole text and the counts.
    // Errors: kUpstreamUnreachable (cannot connect), kUpstreamUnavailable (model missing),
    // kUpstreamBusy (the engine's queue is full), kUpstreamError (error status or line, dropped
    // or malformed stream), kUpstreamTimeout, kContextOverflow (the engine refused the prompt
    // as longer than its context), kCancelled.
    virtual Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                            const CancelToken& cancel) = 0;

    // Exact tokens `text` takes as a prompt for `model`. kUnsupported where the engine cannot
    // count (Ollama); callers then estimate.
    virtual Result<int64_t> CountTokens(const std::string& model, const std::string& text);

    // The context window the engine serves `model` with, as the engine reports it. kUnsupported
    // where it cannot say (then the bucket's configured size holds).
    virtual Result<int64_t> ContextSize(const std::string& model);

    // Reachable and serving: the models it has.
    virtual Result<EngineHealth> Health() = 0;
};

// One model loaded in the server's memory (Ollama /api/ps).
struct LoadedModel {
    std::string name;
    int64_t size_bytes = 0;
    int64_t size_vram_bytes = 0;   // < size_bytes: partly running on the CPU
    int64_t context_length = 0;
    std::string expires_at;
};

// Residency control, Ollama only.
class ModelHost {
public:
    virtual ~ModelHost() = default;

    // Models loaded now (Ollama /api/ps).
    virtual Result<std::vector<LoadedModel>> ListLoaded() = 0;

    // Loads `model` with `context_tokens` and keeps it `keep_alive` without generating; "0"
    // unloads it. The result carries the load time.
    virtual Result<GenerateResult> Load(const std::string& model, int context_tokens, const std::string& keep_alive) = 0;
};

// A decorator's base: every call goes to `inner` unless the decorator overrides it.
class ForwardingEngine : public LlmEngine {
public:
    explicit ForwardingEngine(LlmEngine& inner) : inner_(inner) {}

    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override {
        return inner_.Generate(request, on_token, cancel);
    }
    Result<int64_t> CountTokens(const std::string& model, const std::string& text) override {
        return inner_.CountTokens(model, text);
    }
    Result<int64_t> ContextSize(const std::string& model) override { return inner_.ContextSize(model); }
    Result<EngineHealth> Health() override { return inner_.Health(); }

protected:
    LlmEngine& inner_;
};

}  // namespace summarizer
