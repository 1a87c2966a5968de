// The seam between the summarizer and a language-model server. OllamaClient implements it
// over HTTP; tests use an in-process fake. Implementations are thread-safe: one instance
// serves every request of the process concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/error.hpp"

namespace summarizer {

// Shared cancel flag. Cancel() may be called from any thread; a backend checks it between
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
    std::string model;
    std::string system;       // instruction placed before the prompt (Gemma: start of user turn)
    std::string prompt;
    int num_ctx = 0;          // tokens; always sent so Ollama never falls back to its default
    std::string keep_alive;   // Ollama duration; sent as given
    int num_predict = 0;
    int num_batch = 0;
    double temperature = 0.0;
    double repeat_penalty = 1.0;
    std::string tag;          // for logs: "single", "map 3/12", "reduce 1.2"
    bool interactive = true;  // a client waits on this call's tokens (single pass, final reduce)
};

// Everything Ollama reports in the final NDJSON object. Durations are nanoseconds, as sent.
struct GenerateResult {
    std::string text;
    std::string done_reason;            // "stop", "length"
    int64_t prompt_eval_count = 0;      // prompt tokens actually evaluated
    int64_t eval_count = 0;             // generated tokens
    int64_t total_duration_ns = 0;
    int64_t load_duration_ns = 0;
    int64_t prompt_eval_duration_ns = 0;
    int64_t eval_duration_ns = 0;
    double ttft_ms = 0.0;               // measured here: request sent -> first non-empty piece
    double wall_ms = 0.0;               // measured here: request sent -> final object

    double PrefillTokensPerSecond() const;
    double DecodeTokensPerSecond() const;
};

// Called with each non-empty piece of generated text, in order, on the calling thread.
using TokenCallback = std::function<void(std::string_view piece)>;

// One model loaded in the server's memory (Ollama /api/ps).
struct LoadedModel {
    std::string name;
    int64_t size_bytes = 0;
    int64_t size_vram_bytes = 0;   // < size_bytes: partly running on the CPU
    int64_t context_length = 0;
    std::string expires_at;
};

class LlmBackend {
public:
    virtual ~LlmBackend() = default;

    // Streams one generation. On success the result holds the whole text and the timings.
    // Errors: kUpstreamUnavailable (cannot connect, model missing), kUpstreamError (error
    // status or line, dropped or malformed stream), kUpstreamTimeout, kContextOverflow
    // (the server refused the prompt as longer than num_ctx), kCancelled.
    virtual Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                            const CancelToken& cancel) = 0;

    // Names of the models the server has (Ollama /api/tags).
    virtual Result<std::vector<std::string>> ListModels() = 0;

    // Models loaded now (Ollama /api/ps).
    virtual Result<std::vector<LoadedModel>> ListLoaded() = 0;

    // Loads (keep_alive as given) or unloads (keep_alive "0") a model without generating.
    virtual Result<GenerateResult> Load(const std::string& model, int num_ctx, const std::string& keep_alive) = 0;
};

// A decorator's base: every call goes to `inner` unless the decorator overrides it.
class ForwardingBackend : public LlmBackend {
public:
    explicit ForwardingBackend(LlmBackend& inner) : inner_(inner) {}

    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override {
        return inner_.Generate(request, on_token, cancel);
    }
    Result<std::vector<std::string>> ListModels() override { return inner_.ListModels(); }
    Result<std::vector<LoadedModel>> ListLoaded() override { return inner_.ListLoaded(); }
    Result<GenerateResult> Load(const std::string& model, int num_ctx, const std::string& keep_alive) override {
        return inner_.Load(model, num_ctx, keep_alive);
    }

protected:
    LlmBackend& inner_;
};

}  // namespace summarizer
