// Fuzzes FormatSseEvent (include/summarizer/api.hpp) with the data the service streams: deltas
// of model output (any bytes, invalid UTF-8, U+2028, "\r\n"), progress, errors, the final
// response, and arbitrary JSON documents. Checked: the output is exactly one well-formed
// Server-Sent Event (two lines, no CR anywhere, as the WHATWG parser splits lines at CR, LF and
// CRLF), and the SSE reader (sse.hpp, which follows the spec) gets back the event name and a data
// line that is JSON equal to what was sent (invalid UTF-8 replaced by U+FFFD, the only permitted
// change).
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "summarizer/api.hpp"
#include "summarizer/sse.hpp"
#include "summarizer/text.hpp"

namespace {

using nlohmann::json;

// Any bytes, with a bias towards what breaks framing.
std::string ConsumeText(FuzzedDataProvider& in) {
    std::string text = in.ConsumeRandomLengthString(512);
    switch (in.ConsumeIntegralInRange(0, 3)) {
        case 0: text += "\r\n"; break;
        case 1: text += "\u2028\u2029"; break;
        case 2: text += "\n\ndata: x\n\n"; break;
        default: break;
    }
    return text;
}

json MakeData(FuzzedDataProvider& in, std::string& event) {
    switch (in.ConsumeIntegralInRange(0, 5)) {
        case 0:
            event = "delta";
            return {{"text", ConsumeText(in)}};
        case 1:
            event = "progress";
            return {{"phase", ConsumeText(in)},
                    {"done", in.ConsumeIntegral<int64_t>()},
                    {"total", in.ConsumeIntegral<uint64_t>()}};
        case 2: {
            event = "error";
            summarizer::Error error = summarizer::MakeError(
                static_cast<summarizer::ErrorCode>(in.ConsumeIntegralInRange<int>(0, 12)), ConsumeText(in));
            return summarizer::ErrorJson(error, in.ConsumeRandomLengthString(64));
        }
        case 3: {
            event = "done";
            summarizer::SummarizeResponse r;
            r.summary = ConsumeText(in);
            r.model = in.ConsumeRandomLengthString(32);
            r.chunks = in.ConsumeIntegral<int>();
            r.levels = in.ConsumeIntegral<int>();
            r.usage.prompt_tokens = in.ConsumeIntegral<int64_t>();
            r.usage.completion_tokens = in.ConsumeIntegral<int64_t>();
            r.usage.upstream_requests = in.ConsumeIntegral<int>();
            r.timings.total_ms = in.ConsumeFloatingPointInRange<double>(0.0, 1e9);
            r.timings.ttft_ms = in.ConsumeFloatingPointInRange<double>(0.0, 1e9);
            r.timings.decode_tokens_per_s = in.ConsumeFloatingPoint<double>();
            r.request_id = in.ConsumeRandomLengthString(64);
            return summarizer::ResponseJson(r);
        }
        case 4: {
            event = "meta";
            std::string raw = in.ConsumeRemainingBytesAsString();
            json doc = json::parse(raw, nullptr, false);
            if (doc.is_discarded()) return {{"request_id", raw}};
            return doc;
        }
        default:
            // Names are the caller's constants; any token of [A-Za-z0-9_-] must work too.
            event.clear();
            for (const char c : in.ConsumeRandomLengthString(16)) {
                const auto u = static_cast<unsigned char>(c);
                event += static_cast<char>(std::isalnum(u) || c == '_' || c == '-' ? c : 'x');
            }
            if (event.empty()) event = "x";
            return {{"text", ConsumeText(in)}, {"n", in.ConsumeFloatingPoint<double>()}};
    }
}

// The value as a JSON parser reads it back: strings with invalid UTF-8 get U+FFFD, as dump()
// with error_handler_t::replace writes them; non-finite numbers become null.
json Normalised(const json& value) {
    if (value.is_string()) {
        return json::parse(json(value).dump(-1, ' ', false, json::error_handler_t::replace));
    }
    if (value.is_number_float() && !std::isfinite(value.get<double>())) return nullptr;
    if (value.is_array()) {
        json out = json::array();
        for (const auto& item : value) out.push_back(Normalised(item));
        return out;
    }
    if (value.is_object()) {
        json out = json::object();
        for (const auto& [key, item] : value.items()) {
            out[json::parse(json(key).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>()] =
                Normalised(item);
        }
        return out;
    }
    return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    std::string event;
    const json value = MakeData(in, event);
    const std::string wire = summarizer::FormatSseEvent(event, value);

    FUZZ_CHECK(wire.starts_with("event: " + event + "\ndata: "), "an event line, then a data line");
    FUZZ_CHECK(wire.ends_with("\n\n"), "a blank line ends the event");
    FUZZ_CHECK(wire.find('\r') == std::string::npos, "no CR: SSE parsers end a line there");
    size_t newlines = 0;
    for (const char c : wire) newlines += c == '\n' ? 1 : 0;
    FUZZ_CHECK(newlines == 3, "exactly two lines and the blank line: no raw newline inside the data");
    FUZZ_CHECK(summarizer::IsValidUtf8(wire), "the stream is UTF-8 (EventSource decodes it as such)");

    const std::vector<summarizer::SseEvent> parsed = summarizer::SseReader().Feed(wire);
    FUZZ_CHECK(parsed.size() == 1, "exactly one event is dispatched");
    FUZZ_CHECK(parsed[0].event == event, "the event name parses back");
    const json back = json::parse(parsed[0].data, nullptr, false);
    FUZZ_CHECK(!back.is_discarded(), "the data is JSON");
    FUZZ_CHECK(back == Normalised(value), "the data is the JSON that was sent");

    // The same event when the stream arrives cut in two (inside the data line, most of the time).
    summarizer::SseReader reader;
    const size_t cut = wire.size() / 2;
    const std::vector<summarizer::SseEvent> first = reader.Feed(std::string_view(wire).substr(0, cut));
    const std::vector<summarizer::SseEvent> second = reader.Feed(std::string_view(wire).substr(cut));
    FUZZ_CHECK(first.empty() && second.size() == 1 && second[0].event == event && second[0].data == parsed[0].data,
               "the event does not depend on where the stream was cut");
    return 0;
}
