// Fuzzes ParseRequestTarget (include/summarizer/http_target.hpp): the one piece of request
// parsing the event server does itself (Beast parses the rest and is fuzzed upstream). The input
// is a request target as a client could send it. Checked: an accepted path is "*" or starts
// with '/', is valid UTF-8 (ill-formed bytes become U+FFFD) and has no control characters; encoding what was decoded and parsing
// it again gives the same path and query (so nothing is lost or invented); a refusal is
// kInvalidRequest with a message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "summarizer/http_target.hpp"
#include "summarizer/text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view target(reinterpret_cast<const char*>(data), size);
    const auto result = summarizer::ParseRequestTarget(target);
    if (!result.ok()) {
        FUZZ_CHECK(result.error().code == summarizer::ErrorCode::kInvalidRequest, "a bad target is a bad request");
        FUZZ_CHECK(!result.error().message.empty(), "the refusal says why");
        return 0;
    }
    const auto& parsed = *result;
    FUZZ_CHECK(parsed.path == "*" || (!parsed.path.empty() && parsed.path.front() == '/'),
               "the path is * or starts with /");
    FUZZ_CHECK(summarizer::IsValidUtf8(parsed.path), "the path is valid UTF-8");
    for (const char c : parsed.path) {
        FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "the path has no control character");
    }
    if (target.front() == '/' && target.find_first_of("%?#") == std::string_view::npos &&
        summarizer::IsValidUtf8(target)) {
        FUZZ_CHECK(parsed.path == target, "a path of UTF-8 without escapes is taken as sent");
    }
    if (parsed.path == "*") return 0;

    std::string again = summarizer::PercentEncode(parsed.path, true);
    char separator = '?';
    for (const auto& [name, value] : parsed.query) {
        again += separator;
        again += summarizer::PercentEncode(name, false) + "=" + summarizer::PercentEncode(value, false);
        separator = '&';
    }
    const auto reparsed = summarizer::ParseRequestTarget(again);
    FUZZ_CHECK(reparsed.ok(), "what was accepted, re-encoded, is accepted");
    FUZZ_CHECK(reparsed->path == parsed.path, "the path round-trips");
    FUZZ_CHECK(reparsed->query == parsed.query, "the query round-trips");
    return 0;
}
