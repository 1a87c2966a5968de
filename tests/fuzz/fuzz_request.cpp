// Fuzzes ParseSummarizeRequest (include/summarizer/api.hpp): the whole of a /summarize request
// that reaches the parser. The input is a small HTTP-like text, so seeds are easy to write:
//
//   Content-Type: text/plain        header lines, then a blank line, then the body
//   Accept: text/event-stream
//   ?language=ja&max_tokens=300     query parameters (name=value, '&'-separated; last one wins)
//
//   body bytes...
//
// Without a blank line the whole input is a JSON body. Checked: an accepted request holds
// exactly what was sent (text/plain: the body; JSON: the "text" member) and only text a summary
// can be made of; option values are within the contract; an error has one of the three codes the
// contract lists for a bad request, and its JSON body can always be serialised. And the body's
// document as simdjson reads it (ParseJsonFast) is nlohmann's whenever simdjson reads it.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "summarizer/api.hpp"
#include "summarizer/json_text.hpp"
#include "summarizer/line_framer.hpp"
#include "summarizer/text.hpp"

namespace {

using nlohmann::json;
using summarizer::ErrorCode;

std::string Lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string_view Trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Split at '&' then at the first '='; a name without '=' gets an empty value.
void ParseQuery(std::string_view query, std::map<std::string, std::string>& out) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const size_t eq = pair.find('=');
        out[std::string(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
}

bool HasOnlyAllowedControls(std::string_view text) {
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != '\v') return false;
    }
    return true;
}

void CheckErrorBody(const summarizer::Error& error) {
    FUZZ_CHECK(!error.message.empty(), "an error says what is wrong");
    const json body = summarizer::ErrorJson(error, "req-1");
    // What http_server.cpp sends: must never throw, even for a message quoting invalid UTF-8.
    const std::string wire = body.dump(-1, ' ', false, json::error_handler_t::replace);
    const json back = json::parse(wire);
    FUZZ_CHECK(back["error"]["code"] == std::string(summarizer::ErrorCodeName(error.code)), "code round-trips");
    FUZZ_CHECK(back["error"]["request_id"] == "req-1", "request id round-trips");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const summarizer::Config config;
    const std::string_view raw(reinterpret_cast<const char*>(data), size);

    summarizer::HttpInput input;
    input.content_type = "application/json";
    const size_t head_end = raw.find("\n\n");
    if (head_end == std::string_view::npos) {
        input.body = raw;
    } else {
        input.body = raw.substr(head_end + 2);
        const auto on_head_line = [&](std::string_view line) {
            if (line.starts_with("Content-Type:")) {
                input.content_type = std::string(Trim(line.substr(13)));
            } else if (line.starts_with("Accept:")) {
                input.accept = std::string(Trim(line.substr(7)));
            } else if (line.starts_with("?")) {
                ParseQuery(line.substr(1), input.query);
            }
            return true;
        };
        summarizer::LineFramer head;
        head.Feed(raw.substr(0, head_end), on_head_line);
        on_head_line(head.TakePending());
    }

    // The body's document read by simdjson is nlohmann's, or not read at all (json_text.hpp).
    if (const auto fast = summarizer::ParseJsonFast(input.body)) {
        const json reference = json::parse(input.body, nullptr, false);
        FUZZ_CHECK(!reference.is_discarded(), "simdjson reads only what nlohmann reads");
        FUZZ_CHECK(*fast == reference, "simdjson's document is nlohmann's");
        FUZZ_CHECK(fast->dump() == reference.dump(), "and writes out the same");
    }

    std::string media = Lower(std::string_view(input.content_type).substr(0, input.content_type.find(';')));
    media = std::string(Trim(media));
    const bool is_json = media == "application/json";
    const bool is_plain = media == "text/plain";
    const bool accept_sse = Lower(input.accept).find("text/event-stream") != std::string::npos;

    const auto result = summarizer::ParseSummarizeRequest(input, config);
    if (!result.ok()) {
        const auto& error = result.error();
        FUZZ_CHECK(error.code == ErrorCode::kUnsupportedMediaType || error.code == ErrorCode::kInvalidJson ||
                       error.code == ErrorCode::kInvalidRequest,
                   "a bad request is 400 or 415");
        // A malformed multipart/form-data body is 400 before forms are 415 (as the old transport
        // answered it); every other media type but JSON and text/plain is 415.
        const bool is_multipart = media == "multipart/form-data";
        if (error.code == ErrorCode::kUnsupportedMediaType) {
            FUZZ_CHECK(!is_json && !is_plain, "415 only when the media type is neither JSON nor text/plain");
        } else {
            FUZZ_CHECK(is_json || is_plain || (is_multipart && error.message.find("multipart") != std::string::npos),
                       "a media type other than JSON and text/plain is 415, or 400 for a malformed multipart body");
        }
        const int status = summarizer::HttpStatusFor(error.code);
        FUZZ_CHECK(status == 400 || status == 415, "status of a bad request");
        CheckErrorBody(error);
        return 0;
    }

    FUZZ_CHECK(is_json || is_plain, "only JSON and text/plain are accepted");
    const auto& request = result->request;
    const std::string& text = request.text;
    FUZZ_CHECK(summarizer::IsValidUtf8(text), "accepted text is valid UTF-8");
    FUZZ_CHECK(!summarizer::IsBlank(text), "accepted text is not blank");
    FUZZ_CHECK(HasOnlyAllowedControls(text), "accepted text has no control characters but whitespace");
    FUZZ_CHECK(request.max_tokens == 0 || (request.max_tokens >= 1 &&
                                           request.max_tokens <= config.generation.max_num_predict),
               "max_tokens is the default or within [1, max_num_predict]");
    FUZZ_CHECK(request.language == "auto" || (!request.language.empty() && request.language.size() <= 16),
               "language is auto or a short code");
    for (const char c : request.language) {
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_',
                   "language is lower-case [a-z0-9_-]");
    }

    std::optional<bool> explicit_stream;
    if (is_plain) {
        FUZZ_CHECK(text == input.body, "text/plain: the text is the body, byte for byte");
        FUZZ_CHECK(!input.query.contains("text"), "text/plain: no 'text' query parameter");
        for (const auto& [name, value] : input.query) {
            FUZZ_CHECK(name == "language" || name == "style" || name == "max_tokens" || name == "stream" ||
                           name == "strategy",
                       "text/plain: only the contract's options are accepted as query parameters");
        }
        if (auto it = input.query.find("stream"); it != input.query.end()) {
            const std::string v = Lower(it->second);
            explicit_stream = v == "true" || v == "1";
        }
    } else {
        FUZZ_CHECK(input.query.empty(), "JSON: query parameters are rejected");
        const json doc = json::parse(input.body);  // accepted, so it must parse
        FUZZ_CHECK(doc.is_object(), "JSON: the body is an object");
        FUZZ_CHECK(doc.contains("text") && doc["text"].is_string(), "JSON: 'text' is a string");
        FUZZ_CHECK(doc["text"].get<std::string>() == text, "JSON: the text is the 'text' member");
        for (const auto& [name, value] : doc.items()) {
            FUZZ_CHECK(name == "text" || name == "language" || name == "style" || name == "max_tokens" ||
                           name == "stream" || name == "strategy",
                       "JSON: only the contract's fields are accepted");
        }
        if (doc.contains("max_tokens")) {
            FUZZ_CHECK(doc["max_tokens"].is_number_integer() &&
                           doc["max_tokens"].get<int64_t>() == request.max_tokens,
                       "JSON: max_tokens is the one sent");
        }
        if (doc.contains("stream")) explicit_stream = doc["stream"].get<bool>();
    }
    FUZZ_CHECK(result->stream == explicit_stream.value_or(accept_sse),
               "stream is the explicit option, else whether Accept asks for text/event-stream");
    return 0;
}
