// The part of the two-protocol client that does not depend on the wire format (client.hpp): the
// connection, the status and error body, the first text piece's time, the text, and every way a
// streamed request can end. Internal to client_*.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "lib/client.hpp"

namespace summarizer::bench {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// A field of a JSON object; nullopt (or "") when absent or of another type.
std::optional<double> NumberField(const nlohmann::json& object, const char* key);
std::optional<int64_t> IntegerField(const nlohmann::json& object, const char* key);  // rounded
std::string StringField(const nlohmann::json& object, const char* key);

// The message of an error body: Ollama's {"error": "..."}, the service's {"error": {"code",
// "message"}}, or the raw text.
std::string ErrorBodyMessage(const std::string& body);

// One client per request, as a fresh user would connect. No keep-alive reuse: every TTFT pays
// the same (local, sub-millisecond) connect.
std::unique_ptr<httplib::Client> MakeClient(const BaseUrl& url, double read_timeout_s);

// The part of a streamed request that does not depend on the wire format: status, error body,
// the first text piece's time, the text, and whether the stream ended properly.
struct StreamState {
    Clock::time_point start;
    int status = 0;
    std::string error_body;
    std::string protocol_error;  // set by the format handler; cancels the request
    bool done = false;
    std::string output;

    void AddText(const std::string& piece, RunSample& sample) {
        if (piece.empty()) return;
        if (!sample.ttft_s) sample.ttft_s = SecondsSince(start);
        output += piece;
    }
};

// Sends `request` with `on_bytes` as the 200 body's consumer (returning false cancels), calls
// `on_end_of_stream` when a 200 stream ended without a protocol error, and turns every way it can
// end into the sample's ok/error, latency and output.
void SendStreaming(httplib::Client& client, httplib::Request request, StreamState& state, RunSample& sample,
                   const std::function<bool(std::string_view)>& on_bytes,
                   const std::function<void()>& on_end_of_stream);

}  // namespace summarizer::bench
