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

std::string_view CallOutcome(const Result<GenerateResult>& r) {
    if (r.ok()) return "ok";
    switch (r.error().code) {
        case ErrorCode::kUpstreamTimeout: return "timeout";
        case ErrorCode::kUpstreamUnreachable:
        case ErrorCode::kUpstreamUnavailable:
        case ErrorCode::kUpstreamBusy: return "unavailable";
        case ErrorCode::kCancelled: return "cancelled";
        case ErrorCode::kContextOverflow: return "overflow";
        default: return "error";
    }
}

}  // namespace summarizer
