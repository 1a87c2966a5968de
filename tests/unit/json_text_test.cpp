// AppendJsonString against nlohmann::json's own serializer, the oracle: the hot paths write string
// members without a document and must write what a document's dump would.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "summarizer/api.hpp"
#include "summarizer/json_text.hpp"

namespace summarizer {
namespace {

std::string ReferenceLiteral(const std::string& text) {
    return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Literal(const std::string& text) {
    std::string out = "prefix:";
    AppendJsonString(out, text);
    EXPECT_EQ(out.rfind("prefix:", 0), 0u);  // appends, never replaces
    return out.substr(7);
}

TEST(JsonText, EveryByteAloneIsWrittenAsNlohmannWritesIt) {
    for (int b = 0; b < 256; ++b) {
        const std::string text(1, static_cast<char>(b));
        EXPECT_EQ(Literal(text), ReferenceLiteral(text)) << "byte " << b;
        const std::string framed = "a" + text + "z\"\\";
        EXPECT_EQ(Literal(framed), ReferenceLiteral(framed)) << "byte " << b;
    }
}

TEST(JsonText, TextsOfEveryKindAreWrittenAsNlohmannWritesThem) {
    const std::vector<std::string> samples = {
        "",
        "plain ASCII, nothing to escape",
        "quotes \" and backslashes \\ and a tab\t, a newline\n, CR\r, FF\f, BS\b, BEL\a, DEL\x7f, NUL" +
            std::string(1, '\0') + " end",
        "日本語の文章です。「引用」と絵文字 😀 と é, ß, ж",
        "cut inside a character: \xe6\x97",         // truncated sequence at the end
        "\xe6\x97 cut at the start",                // truncated in the middle
        "overlong \xc0\xaf and surrogate \xed\xa0\x80 and \xf5\x80\x80\x80",
        "lone continuation \x80\xbf bytes",
    };
    for (const auto& text : samples) EXPECT_EQ(Literal(text), ReferenceLiteral(text)) << text;
}

TEST(JsonText, RandomBytesAreWrittenAsNlohmannWritesThem) {
    std::mt19937 rng(20261207);
    // Mostly ASCII with escapes, or any bytes at all (mostly ill-formed), or valid multi-byte text.
    const std::string alphabet = "ab \"\\\n\t\x01\x1f\x7f" "\xc3\xa9" "\xe3\x81\x82" "\xf0\x9f\x98\x80";
    for (int round = 0; round < 3000; ++round) {
        std::string text;
        const int length = static_cast<int>(rng() % 40);
        for (int i = 0; i < length; ++i) {
            if (round % 3 == 0) {
                text += static_cast<char>(rng() % 256);
            } else {
                text += alphabet[rng() % alphabet.size()];
            }
        }
        ASSERT_EQ(Literal(text), ReferenceLiteral(text)) << "round " << round;
    }
}

// ParseJsonFast: nlohmann's document or nothing, never another document.
void ExpectFastParseIsNlohmanns(const std::string& text) {
    const auto fast = ParseJsonFast(text);
    const nlohmann::json reference = nlohmann::json::parse(text, nullptr, false);
    if (!fast) return;  // nlohmann reads it (and words any error)
    ASSERT_FALSE(reference.is_discarded()) << text;
    EXPECT_EQ(*fast, reference) << text;
    EXPECT_EQ(fast->dump(), reference.dump()) << text;
}

TEST(JsonText, AFastParseIsNlohmannsDocument) {
    for (const std::string& text : std::vector<std::string>{
             R"({"text": "The council met.", "max_tokens": 300, "language": "ja", "stream": true})",
             R"({"text": "\u65e5\u672c \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t", "x": null})",
             R"({"b": 1, "a": 2, "b": 3})",  // a repeated member keeps its last value
             R"({"n": [0, -1, 9223372036854775807, 18446744073709551615, -9223372036854775808]})",
             R"({"nested": {"deep": [{"x": [true, false, null, "s"]}]}, "empty": {}, "none": []})",
             R"({"minus_zero": -0})",
             R"([1, "two", {"three": 3}])",
             R"("a bare string")",
             "日本語のテキスト",
         }) {
        ExpectFastParseIsNlohmanns(text);
    }
    const auto typed = ParseJsonFast(R"({"positive": 5, "negative": -5})");
    ASSERT_TRUE(typed.has_value());
    EXPECT_TRUE((*typed)["positive"].is_number_unsigned());  // as nlohmann reads a literal without '-'
    EXPECT_TRUE((*typed)["negative"].is_number_integer() && !(*typed)["negative"].is_number_unsigned());
    EXPECT_EQ((*ParseJsonFast(R"({"b": 1, "a": 2, "b": 3})"))["b"], 3);
}

TEST(JsonText, WhatSimdjsonDoesNotMirrorIsLeftToNlohmann) {
    for (const std::string& text : std::vector<std::string>{
             R"({"t": 0.15})",                      // fractions and exponents: nlohmann's own float parsing
             R"({"t": 1e400})",                     // out of range (nlohmann refuses it too)
             R"({"n": 18446744073709551616})",      // beyond 64 bits (nlohmann reads a float)
             R"({"s": "\udc00"})",                  // a lone surrogate (nlohmann refuses it)
             R"({"text": "unterminated)",
             "{\"text\": \"bad \xff byte\"}",
             std::string(20 * 1024, ' ') + R"({"text": "long"})",  // over 16 KiB
         }) {
        EXPECT_FALSE(ParseJsonFast(text).has_value()) << text.substr(0, 60);
    }
}

TEST(JsonText, RandomDocumentsReadFastAreNlohmanns) {
    std::mt19937 rng(7);
    const std::vector<std::string> pieces = {"{", "}", "[", "]", ",", ":", "\"k\"", "\"a\"", "\"\\u00e9\"",
                                             "1", "-2", "0", "-0", "true", "null", " ", "\"x\\n\"", "3.5"};
    for (int round = 0; round < 5000; ++round) {
        std::string text = "{";
        const int n = static_cast<int>(rng() % 12);
        for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
        if (rng() % 2) text += "}";
        ExpectFastParseIsNlohmanns(text);
    }
}

SummarizeResponse FullResponse() {
    SummarizeResponse r;
    r.summary = "The council funded the tram; \"quoted\" \\ and 日本語\n";
    r.route = "16k";
    r.model = "gemma3-4b-16k";
    r.chunks = 3;
    r.levels = 2;
    r.usage.prompt_tokens = 12345;
    r.usage.completion_tokens = 321;
    r.usage.upstream_requests = 4;
    r.timings.total_ms = 1234.56;
    r.timings.queue_ms = 0.04;
    r.timings.ttft_ms = 250.25;
    r.timings.load_ms = 0;
    r.timings.prefill_tokens_per_s = 1500.0;
    r.timings.decode_tokens_per_s = 61.349;
    r.request_id = "abc123";
    r.reason = "fits the 16k bucket";
    r.degraded = true;
    r.cached = true;
    return r;
}

TEST(JsonText, TheAnswersTextIsResponseJsonWrittenOut) {
    const SummarizeResponse r = FullResponse();
    EXPECT_EQ(ResponseJsonText(r), ResponseJson(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    EXPECT_EQ(ResponseJsonText(SummarizeResponse{}), ResponseJson(SummarizeResponse{}).dump());
}

TEST(JsonText, TheAnswersTextReadsAsResponseJsonForAnyTimes) {
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> ms(0.0, 1e7);
    for (int round = 0; round < 2000; ++round) {
        SummarizeResponse r = FullResponse();
        r.timings.total_ms = ms(rng);
        r.timings.queue_ms = ms(rng) / 1e6;
        r.timings.ttft_ms = ms(rng) / 1e3;
        r.timings.decode_tokens_per_s = static_cast<double>(rng() % 100000) / 10.0;
        r.usage.prompt_tokens = static_cast<int64_t>(rng() >> 1);
        const auto text = ResponseJsonText(r);
        ASSERT_EQ(nlohmann::json::parse(text), ResponseJson(r)) << text;
    }
    SummarizeResponse odd = FullResponse();
    odd.timings.decode_tokens_per_s = std::numeric_limits<double>::infinity();  // written as null
    odd.timings.ttft_ms = std::nan("");
    // The document holds the doubles, its text (what a client reads) null: the same text.
    EXPECT_EQ(ResponseJsonText(odd), ResponseJson(odd).dump());
}

}  // namespace
}  // namespace summarizer
