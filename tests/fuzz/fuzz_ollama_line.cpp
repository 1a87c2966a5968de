// Fuzzes ParseOllamaLine (ollama_client.hpp), the SAX reader of Ollama's /api/generate lines,
// against the JSON document it replaced: whatever the line, the two agree on whether it is an
// error and, when it is not, on every member read (the document's find()/value() semantics: the
// object's own members, the last of a repeated name, a value of another type read as absent).
// WithoutOllamaContext may not change what is read, only what is parsed.
//
// Input: the line.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "summarizer/ollama_client.hpp"

namespace {

using json = nlohmann::json;

int64_t Int(const json& doc, const char* key) {
    auto it = doc.find(key);
    if (it == doc.end() || !it->is_number()) return 0;
    if (it->is_number_float()) {
        const double v = it->get<double>();
        return std::isfinite(v) && std::fabs(v) < 9.2e18 ? static_cast<int64_t>(v) : 0;
    }
    return it->get<int64_t>();
}

std::string Str(const json& doc, const char* key) {
    auto it = doc.find(key);
    return it != doc.end() && it->is_string() ? it->get<std::string>() : "";
}

// What the document says, or nullopt when the line is to be refused.
std::optional<summarizer::OllamaLine> Reference(std::string_view line) {
    json doc;
    try {
        doc = json::parse(line);
    } catch (const json::exception&) {
        return std::nullopt;
    }
    if (!doc.is_object()) return std::nullopt;
    summarizer::OllamaLine out;
    if (auto it = doc.find("done"); it != doc.end()) {
        if (!it->is_boolean()) return std::nullopt;
        out.done = it->get<bool>();
    }
    if (auto it = doc.find("error"); it != doc.end()) out.error = it->is_string() ? it->get<std::string>() : it->dump();
    out.response = Str(doc, "response");
    out.done_reason = Str(doc, "done_reason");
    out.prompt_eval_count = Int(doc, "prompt_eval_count");
    out.eval_count = Int(doc, "eval_count");
    out.total_duration = Int(doc, "total_duration");
    out.load_duration = Int(doc, "load_duration");
    out.prompt_eval_duration = Int(doc, "prompt_eval_duration");
    out.eval_duration = Int(doc, "eval_duration");
    return out;
}

void CheckSame(const summarizer::OllamaLine& a, const summarizer::OllamaLine& b, const char* what) {
    FUZZ_CHECK(a.error == b.error, what);
    FUZZ_CHECK(a.response == b.response, what);
    FUZZ_CHECK(a.done == b.done, what);
    FUZZ_CHECK(a.done_reason == b.done_reason, what);
    FUZZ_CHECK(a.prompt_eval_count == b.prompt_eval_count, what);
    FUZZ_CHECK(a.eval_count == b.eval_count, what);
    FUZZ_CHECK(a.total_duration == b.total_duration, what);
    FUZZ_CHECK(a.load_duration == b.load_duration, what);
    FUZZ_CHECK(a.prompt_eval_duration == b.prompt_eval_duration, what);
    FUZZ_CHECK(a.eval_duration == b.eval_duration, what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const auto expected = Reference(line);
    const auto parsed = summarizer::ParseOllamaLine(line);
    FUZZ_CHECK(parsed.ok() == expected.has_value(), "refused exactly when the document refuses the line");
    if (!parsed.ok()) {
        FUZZ_CHECK(parsed.error().code == summarizer::ErrorCode::kUpstreamError, "a refused line is an upstream error");
        return 0;
    }
    CheckSame(*parsed, *expected, "every member read as the document reads it");

    std::string scratch;
    const std::string_view cut = summarizer::WithoutOllamaContext(line, scratch);
    const auto parsed_cut = summarizer::ParseOllamaLine(cut);
    FUZZ_CHECK(parsed_cut.ok(), "cutting \"context\" leaves a line that parses");
    CheckSame(*parsed_cut, *parsed, "cutting \"context\" changes nothing that is read");
    return 0;
}
