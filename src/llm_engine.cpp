#include "summarizer/llm_engine.hpp"

namespace summarizer {

double GenerateResult::PrefillTokensPerSecond() const {
    return prefill.count() > 0 ? static_cast<double>(prompt_tokens) * 1e9 / static_cast<double>(prefill.count()) : 0.0;
}

double GenerateResult::DecodeTokensPerSecond() const {
    return decode.count() > 0 ? static_cast<double>(output_tokens) * 1e9 / static_cast<double>(decode.count()) : 0.0;
}

Result<int64_t> LlmEngine::CountTokens(const std::string&, const std::string&) {
    return MakeError(ErrorCode::kUnsupported, "this engine cannot count tokens");
}

Result<int64_t> LlmEngine::ContextSize(const std::string&) {
    return MakeError(ErrorCode::kUnsupported, "this engine does not report its context size");
}

}  // namespace summarizer
