#include "lib/client_stream.hpp"

#include <algorithm>
#include <cmath>

#include "lib/format.hpp"
#include "summarizer/utf8.hpp"

namespace summarizer::bench {
namespace {

using json = nlohmann::json;

constexpr int kConnectTimeoutS = 10;
constexpr int kWriteTimeoutS = 60;
constexpr size_t kMaxErrorBodyBytes = 64 * 1024;
constexpr size_t kPreviewCodePoints = 200;

}  // namespace

std::optional<double> NumberField(const json& object, const char* key) {
    if (!object.is_object()) return std::nullopt;
    const auto it = object.find(key);
    if (it == object.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
}

std::optional<int64_t> IntegerField(const json& object, const char* key) {
    const auto value = NumberField(object, key);
    if (!value) return std::nullopt;
    return static_cast<int64_t>(std::llround(*value));
}

std::string StringField(const json& object, const char* key) {
    if (!object.is_object()) return "";
    const auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string ErrorBodyMessage(const std::string& body) {
    const json parsed = json::parse(body, nullptr, false);
    if (parsed.is_object() && parsed.contains("error")) {
        const json& error = parsed["error"];
        if (error.is_string()) return error.get<std::string>();
        if (error.is_object()) {
            const std::string code = StringField(error, "code");
            const std::string message = StringField(error, "message");
            return code.empty() ? message : code + ": " + message;
        }
    }
    return std::string(FirstCodePoints(TrimAscii(body), 300));
}

std::unique_ptr<httplib::Client> MakeClient(const BaseUrl& url, double read_timeout_s) {
    auto client = std::make_unique<httplib::Client>(url.scheme_host_port);
    client->set_tcp_nodelay(true);  // without it every POST pays Nagle + delayed ACK (~40-60 ms)
    client->set_connection_timeout(kConnectTimeoutS, 0);
    const auto read_timeout_us = static_cast<int64_t>(std::max(read_timeout_s, 0.001) * 1e6);
    client->set_read_timeout(read_timeout_us / 1'000'000, read_timeout_us % 1'000'000);
    client->set_write_timeout(kWriteTimeoutS, 0);
    return client;
}

void SendStreaming(httplib::Client& client, httplib::Request request, StreamState& state, RunSample& sample,
                   const std::function<bool(std::string_view)>& on_bytes,
                   const std::function<void()>& on_end_of_stream) {
    request.response_handler = [&state](const httplib::Response& response) {
        state.status = response.status;
        return true;
    };
    request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
        if (state.status != 200) {
            state.error_body.append(
                data, std::min(size, kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, state.error_body.size())));
            return true;
        }
        return on_bytes(std::string_view(data, size));
    };
    state.start = Clock::now();
    const httplib::Result result = client.send(request);
    if (state.status == 200 && state.protocol_error.empty() && result) on_end_of_stream();
    sample.latency_s = SecondsSince(state.start);
    sample.output_chars = static_cast<int64_t>(CountCodePoints(state.output));
    sample.output_preview = std::string(FirstCodePoints(state.output, kPreviewCodePoints));

    if (!state.protocol_error.empty()) {
        sample.error = state.protocol_error;
    } else if (!result) {
        sample.error = "transport: " + httplib::to_string(result.error());
    } else if (state.status != 200) {
        const std::string& body = state.error_body.empty() ? result->body : state.error_body;
        sample.error = "HTTP " + std::to_string(state.status) + ": " + ErrorBodyMessage(body);
    } else if (!state.done) {
        sample.error = "the stream ended before its final event";
    } else if (!sample.ttft_s) {
        sample.error = "the stream carried no text";
    }
    sample.ok = sample.error.empty();
}

std::optional<BaseUrl> ParseBaseUrl(std::string_view url) {
    std::string text = TrimAscii(url);
    // OLLAMA_HOST style "host:port" works too: assume plain HTTP as Ollama does.
    if (text.find("://") == std::string::npos) text = "http://" + text;
    if (text.rfind("http://", 0) != 0 && text.rfind("https://", 0) != 0) return std::nullopt;
    const size_t host_start = text.find("://") + 3;
    const size_t path_start = std::min(text.find('/', host_start), text.size());
    if (path_start == host_start) return std::nullopt;
    BaseUrl base{text.substr(0, path_start), text.substr(path_start)};
    while (!base.path_prefix.empty() && base.path_prefix.back() == '/') base.path_prefix.pop_back();
    return base;
}

}  // namespace summarizer::bench
