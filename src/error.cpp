#include "summarizer/error.hpp"

namespace summarizer {

std::string_view ErrorCodeName(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidJson: return "invalid_json";
        case ErrorCode::kInvalidRequest: return "invalid_request";
        case ErrorCode::kUnauthorized: return "unauthorized";
        case ErrorCode::kForbidden: return "forbidden";
        case ErrorCode::kNotFound: return "not_found";
        case ErrorCode::kMethodNotAllowed: return "method_not_allowed";
        case ErrorCode::kConflict:
            return "conflict";
        case ErrorCode::kPayloadTooLarge: return "payload_too_large";
        case ErrorCode::kUnsupportedMediaType: return "unsupported_media_type";
        case ErrorCode::kInputTooLarge: return "input_too_large";
        case ErrorCode::kOverloaded: return "overloaded";
        case ErrorCode::kUpstreamError: return "upstream_error";
        case ErrorCode::kUpstreamUnreachable:
        case ErrorCode::kUpstreamUnavailable:
        case ErrorCode::kUpstreamBusy: return "upstream_unavailable";
        case ErrorCode::kUpstreamTimeout: return "upstream_timeout";
        case ErrorCode::kStoreUnavailable:
            return "store_unavailable";
        case ErrorCode::kContextOverflow: return "upstream_error";
        case ErrorCode::kUnsupported: return "internal_error";
        case ErrorCode::kCancelled: return "cancelled";
        case ErrorCode::kInternal: return "internal_error";
    }
    return "internal_error";
}

}  // namespace summarizer
