// The client's service side: POST /summarize streamed as Server-Sent Events.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lib/client.hpp"
#include "lib/client_stream.hpp"
#include "summarizer/sse.hpp"
#include "summarizer/utf8.hpp"

namespace summarizer::bench {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// The service's SSE events: meta, progress, delta, then done or error.
bool HandleServiceEvent(const SseEvent& event, StreamState& state, RunSample& sample) {
    const json data = json::parse(event.data, nullptr, false);
    if (event.event == "error") {
        state.protocol_error = "error event: " + ErrorBodyMessage(event.data);
        return false;
    }
    if (!data.is_object()) {
        state.protocol_error =
            "event '" + event.event + "' without a JSON object: " + std::string(FirstCodePoints(event.data, 120));
        return false;
    }
    if (event.event == "meta") {
        if (const std::string route = StringField(data, "route"); !route.empty()) sample.route = route;
        sample.model = StringField(data, "model");
    } else if (event.event == "delta") {
        state.AddText(StringField(data, "text"), sample);
    } else if (event.event == "done") {
        state.done = true;
        if (const std::string route = StringField(data, "route"); !route.empty()) sample.route = route;
        if (const std::string model = StringField(data, "model"); !model.empty()) sample.model = model;
        const json usage = data.value("usage", json::object());
        const json timings = data.value("timings", json::object());
        sample.prompt_tokens = IntegerField(usage, "prompt_tokens");
        sample.output_tokens = IntegerField(usage, "completion_tokens");
        sample.prefill_tps = NumberField(timings, "prefill_tokens_per_s");
        sample.decode_tps = NumberField(timings, "decode_tokens_per_s");
        // A non-streaming client would get the summary only here; take it if no delta came.
        if (state.output.empty()) state.AddText(StringField(data, "summary"), sample);
    }
    return true;  // progress and unknown events: nothing to measure
}

}  // namespace

RunSample RunServiceOnce(const BenchConfig& config, const std::string& text) {
    RunSample sample;
    const auto base = ParseBaseUrl(config.service_url);
    if (!base) {
        sample.error = "bad service URL: " + config.service_url;
        return sample;
    }
    httplib::Request request;
    request.method = "POST";
    request.path = base->path_prefix + "/summarize";
    request.headers = {
        {"Content-Type", "application/json"}, {"Accept", "text/event-stream"}, {"Accept-Encoding", "identity"}};
    if (!config.api_key.empty()) request.headers.emplace("Authorization", "Bearer " + config.api_key);
    request.body = ojson{{"text", text}, {"stream", true}}.dump(-1, ' ', false, json::error_handler_t::replace);

    auto client = MakeClient(*base, config.timeout_s);
    StreamState state;
    SseReader reader;
    SendStreaming(
        *client, std::move(request), state, sample,
        [&](std::string_view bytes) {
            for (const SseEvent& event : reader.Feed(bytes)) {
                if (!HandleServiceEvent(event, state, sample)) return false;
            }
            return true;
        },
        [&] {
            // A last event without its blank line still counts.
            for (const SseEvent& event : reader.Finish()) HandleServiceEvent(event, state, sample);
        });
    return sample;
}

}  // namespace summarizer::bench
