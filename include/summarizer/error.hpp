// Expected failures as values: every fallible operation returns Result<T>.
// Only api.cpp maps an ErrorCode to an HTTP status and body.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace summarizer {

enum class ErrorCode {
    kInvalidJson,           // 400: the body is not JSON
    kInvalidRequest,        // 400: a field is wrong, unknown, blank text, bad UTF-8
    kUnauthorized,          // 401: no or a wrong API key
    kForbidden,             // 403: a browser origin not in server.cors_origins
    kNotFound,              // 404: no such endpoint
    kMethodNotAllowed,      // 405: the endpoint exists, the method does not (Allow names the ones that do)
    kConflict,              // 409: an Idempotency-Key reused for a different request
    kPayloadTooLarge,       // 413
    kUnsupportedMediaType,  // 415
    kInputTooLarge,         // 422: fits no bucket and the caller asked for one pass
    kOverloaded,            // 429: this service's queue is full (Retry-After)
    kUpstreamError,         // 502: the engine answered with an error or broke off
    kUpstreamUnreachable,   // 503: cannot connect to the engine (refused, connect time-out, open circuit)
    kUpstreamUnavailable,   // 503: the engine answers but cannot serve: a bucket model is missing
    kUpstreamBusy,          // 503: the engine's own queue is full (Ollama "server busy"), Retry-After
    kUpstreamTimeout,       // 504
    kStoreUnavailable,      // 503: the job store cannot be used now (file unwritable, disk full, locked,
                            // PostgreSQL unreachable), Retry-After
    kContextOverflow,       // the prompt did not fit the context (the engine refused or truncated it)
    kUnsupported,           // the engine cannot do this (e.g. count tokens); callers fall back
    kCancelled,             // the caller cancelled (client gone); never sent to a client
    kInternal,              // 500: a bug
};

// The contract's snake_case code ("upstream_error"), as the API documents it.
std::string_view ErrorCodeName(ErrorCode code);

struct Error {
    ErrorCode code = ErrorCode::kInternal;
    std::string message;
    // Transient failures (connection refused, 500, 503, dropped stream) may be retried.
    bool retryable = false;
    // Seconds a client should wait before trying again (429 and 503 send it as Retry-After); 0: none.
    int retry_after_s = 0;
    // kContextOverflow: the prompt's tokens as the engine counted them in its refusal (vLLM "your request
    // has N input tokens", llama.cpp n_prompt_tokens, SGLang "The input (N tokens)"); 0: not stated.
    int64_t overflow_prompt_tokens = 0;
};

inline Error MakeError(ErrorCode code, std::string message, bool retryable = false) {
    return Error{code, std::move(message), retryable, 0};
}

// A value or an Error. Small by design: ok(), value(), error().
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : data_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
    Result(Error error) : data_(std::move(error)) {}     // NOLINT(google-explicit-constructor)

    bool ok() const { return data_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(data_); }
    const T& value() const& { return std::get<0>(data_); }
    T&& value() && { return std::get<0>(std::move(data_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    const Error& error() const { return std::get<1>(data_); }

private:
    std::variant<T, Error> data_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status OkStatus() { return Unit{}; }

}  // namespace summarizer
