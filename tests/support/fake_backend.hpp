// In-process LlmEngine (and ModelHost) for unit tests: records every request and answers from a script.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "summarizer/llm_engine.hpp"

namespace summarizer::testing {

class FakeLlmEngine : public LlmEngine, public ModelHost {
public:
    // Decides the answer to one call; the default echoes "summary of <tag>".
    using Responder = std::function<Result<GenerateResult>(const GenerateRequest&, int call_index)>;

    void SetResponder(Responder responder) {
        std::lock_guard lock(mutex_);
        responder_ = std::move(responder);
    }
    std::vector<GenerateRequest> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }

    Result<GenerateResult> Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                    const CancelToken& cancel) override {
        Responder responder;
        int index = 0;
        {
            std::lock_guard lock(mutex_);
            requests_.push_back(request);
            index = static_cast<int>(requests_.size()) - 1;
            responder = responder_;
        }
        if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled");
        Result<GenerateResult> result = responder ? responder(request, index) : Default(request);
        if (result.ok() && on_token) {
            for (size_t i = 0; i < result->text.size(); i += 4) on_token(std::string_view(result->text).substr(i, 4));
        }
        return result;
    }
    Result<EngineHealth> Health() override { return EngineHealth{models}; }
    Result<std::vector<LoadedModel>> ListLoaded() override { return loaded; }
    Result<GenerateResult> Load(const std::string&, int, const std::string&) override { return GenerateResult{}; }

    static GenerateResult Default(const GenerateRequest& request) {
        GenerateResult r;
        r.text = "summary of " + request.tag;
        r.finish_reason = "stop";
        r.prompt_tokens = static_cast<int64_t>(request.prompt.size() / 4);
        r.output_tokens = 10;
        r.prefill = std::chrono::milliseconds(100);
        r.decode = std::chrono::milliseconds(200);
        return r;
    }

    std::vector<std::string> models = {"gemma3-4b-16k:latest", "gemma3-4b-60k:latest"};
    std::vector<LoadedModel> loaded;

private:
    mutable std::mutex mutex_;
    Responder responder_;
    std::vector<GenerateRequest> requests_;
};

}  // namespace summarizer::testing
