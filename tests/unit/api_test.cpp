#include "summarizer/api.hpp"

#include <gtest/gtest.h>

namespace summarizer {
namespace {

using json = nlohmann::json;

Result<ParsedRequest> ParseJson(const std::string& body, std::map<std::string, std::string> query = {}) {
    static const Config config;
    return ParseSummarizeRequest({.content_type = "application/json; charset=utf-8", .body = body, .query = query},
                                 config);
}

TEST(ParseSummarizeRequest, AcceptsTheContractsFields) {
    auto r = ParseJson(R"({"text": "Hello world.", "language": "ja", "style": "bullets", "max_tokens": 300,
                           "stream": true, "strategy": "map_reduce"})");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->request.text, "Hello world.");
    EXPECT_EQ(r->request.language, "ja");
    EXPECT_EQ(r->request.style, SummaryStyle::kBullets);
    EXPECT_EQ(r->request.max_tokens, 300);
    EXPECT_EQ(r->request.strategy, Strategy::kMapReduce);
    EXPECT_TRUE(r->stream);
}

TEST(ParseSummarizeRequest, LanguageIsACodeOrANameAndComesOutAsTheCode) {
    for (const auto& [given, code] : std::vector<std::pair<std::string, std::string>>{
             {"ja", "ja"}, {"JA", "ja"}, {"Japanese", "ja"}, {"german", "de"}, {"pt_BR", "pt-br"}, {"zh-TW", "zh-tw"},
             {"auto", "auto"}, {"AUTO", "auto"}}) {
        auto r = ParseJson(R"({"text": "Hello", "language": ")" + given + R"("})");
        ASSERT_TRUE(r.ok()) << given << ": " << r.error().message;
        EXPECT_EQ(r->request.language, code) << given;
    }
    EXPECT_EQ(LanguageName("pt-br"), "Portuguese");
    EXPECT_FALSE(ParseJson(R"({"text": "Hello", "language": "en-toolongregion"})").ok());
}

TEST(ParseSummarizeRequest, DefaultsMatchTheContract) {
    auto r = ParseJson(R"({"text": "Hello"})");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->request.language, "auto");
    EXPECT_EQ(r->request.style, SummaryStyle::kParagraph);
    EXPECT_EQ(r->request.max_tokens, 0);  // = config num_predict
    EXPECT_EQ(r->request.strategy, Strategy::kAuto);
    EXPECT_FALSE(r->stream);
}

struct Bad {
    std::string name;
    std::string body;
    ErrorCode code;
    std::string mention;
};

class RejectsJson : public ::testing::TestWithParam<Bad> {};

TEST_P(RejectsJson, WithAClearMessage) {
    auto r = ParseJson(GetParam().body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, GetParam().code);
    EXPECT_NE(r.error().message.find(GetParam().mention), std::string::npos) << r.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RejectsJson,
    ::testing::Values(Bad{"Malformed", R"({"text": )", ErrorCode::kInvalidJson, "malformed JSON"},
                      Bad{"NotAnObject", R"(["text"])", ErrorCode::kInvalidRequest, "JSON object"},
                      Bad{"MissingText", R"({"language": "en"})", ErrorCode::kInvalidRequest, "'text' is required"},
                      Bad{"UnknownField", R"({"text": "x", "lenght": 3})", ErrorCode::kInvalidRequest, "'lenght'"},
                      Bad{"TextNotString", R"({"text": 42})", ErrorCode::kInvalidRequest, "'text' must be a string"},
                      Bad{"Blank", R"({"text": " \n\t\u3000 "})", ErrorCode::kInvalidRequest, "empty or only whitespace"},
                      Bad{"Empty", R"({"text": ""})", ErrorCode::kInvalidRequest, "empty"},
                      Bad{"NulByte", R"({"text": "a\u0000b"})", ErrorCode::kInvalidRequest, "control character"},
                      Bad{"BadStyle", R"({"text": "x", "style": "haiku"})", ErrorCode::kInvalidRequest, "'style'"},
                      Bad{"BadStrategy", R"({"text": "x", "strategy": "fast"})", ErrorCode::kInvalidRequest, "'strategy'"},
                      Bad{"MaxTokensZero", R"({"text": "x", "max_tokens": 0})", ErrorCode::kInvalidRequest, "'max_tokens'"},
                      Bad{"MaxTokensHuge", R"({"text": "x", "max_tokens": 99999999})", ErrorCode::kInvalidRequest,
                          "between 1 and 4096"},
                      Bad{"MaxTokensFloat", R"({"text": "x", "max_tokens": 1.5})", ErrorCode::kInvalidRequest, "integer"},
                      Bad{"StreamString", R"({"text": "x", "stream": "yes"})", ErrorCode::kInvalidRequest, "'stream'"},
                      Bad{"LanguageWeird", R"({"text": "x", "language": "en; rm -rf"})", ErrorCode::kInvalidRequest,
                          "'language'"},
                      // Not pasted into the prompt: a language the summary can be written in, or 400.
                      Bad{"LanguageUnknown", R"({"text": "x", "language": "klingon"})", ErrorCode::kInvalidRequest,
                          "not \"klingon\""},
                      Bad{"LoneSurrogate", R"({"text": "\ud800"})", ErrorCode::kInvalidJson, "malformed"},
                      // Found by tests/fuzz/fuzz_request: threw json::out_of_range (a 500).
                      Bad{"NumberOverflow", R"({"text": "x", "max_tokens": 1e999})", ErrorCode::kInvalidJson,
                          "number overflow"}),
    [](const auto& info) { return info.param.name; });

TEST(ParseSummarizeRequest, RejectsInvalidUtf8NamingTheOffset) {
    std::string body = "{\"text\": \"ab\xff\xfe\"}";
    auto r = ParseJson(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidRequest);
    EXPECT_NE(r.error().message.find("UTF-8"), std::string::npos);
    EXPECT_NE(r.error().message.find("offset 12"), std::string::npos) << r.error().message;
}

TEST(ParseSummarizeRequest, TextPlainTakesOptionsFromTheQuery) {
    Config config;
    auto r = ParseSummarizeRequest({.content_type = "text/plain",
                                    .body = "これは日本語の文章です。",
                                    .query = {{"stream", "true"}, {"language", "ja"}, {"max_tokens", "200"}}},
                                   config);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->request.text, "これは日本語の文章です。");
    EXPECT_TRUE(r->stream);
    EXPECT_EQ(r->request.language, "ja");
    EXPECT_EQ(r->request.max_tokens, 200);

    auto bad = ParseSummarizeRequest({.content_type = "text/plain", .body = "x", .query = {{"colour", "red"}}}, config);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("'colour'"), std::string::npos);

    auto bad_number =
        ParseSummarizeRequest({.content_type = "text/plain", .body = "x", .query = {{"max_tokens", "many"}}}, config);
    ASSERT_FALSE(bad_number.ok());
    EXPECT_NE(bad_number.error().message.find("'max_tokens'"), std::string::npos);
}

TEST(ParseSummarizeRequest, AcceptEventStreamMeansStream) {
    Config config;
    auto r = ParseSummarizeRequest(
        {.content_type = "application/json", .accept = "text/event-stream", .body = R"({"text": "x"})"}, config);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->stream);
}

TEST(ParseSummarizeRequest, OtherMediaTypesAre415) {
    Config config;
    // A form is refused as a media type only when it is a well-formed form: a malformed multipart
    // body is 400, as the HTTP layer always answered it (HostileInput.BrokenMultipart).
    const std::string form = "--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nhello\r\n--x--\r\n";
    for (auto [type, body] : std::vector<std::pair<std::string, std::string>>{
             {"", "x"}, {"application/xml", "x"}, {"multipart/form-data; boundary=x", form}}) {
        auto r = ParseSummarizeRequest({.content_type = type, .body = body}, config);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, ErrorCode::kUnsupportedMediaType) << type;
        EXPECT_EQ(HttpStatusFor(r.error().code), 415);
    }
    auto broken = ParseSummarizeRequest({.content_type = "multipart/form-data; boundary=x", .body = "x"}, config);
    ASSERT_FALSE(broken.ok());
    EXPECT_EQ(broken.error().code, ErrorCode::kInvalidRequest);
}

TEST(Api, ErrorStatusesFollowTheContract) {
    EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidJson), 400);
    EXPECT_EQ(HttpStatusFor(ErrorCode::kUnauthorized), 401);
    EXPECT_EQ(HttpStatusFor(ErrorCode::kPayloadTooLarge), 413);
    EXPECT_EQ(HttpStatusFor(ErrorCode::kInputTooLarge), 422);
    EXPECT_EQ(HttpStatusFor(ErrorCode::kOverloaded), 429);
    EXPECT_EQ(HttpStatusFor(ErrorCode::kUpstreamError), 502);
    EXPECT_EQ(HttpStatusFor(ErrorCode::kUpstreamUnavailable), 503);
    EXPECT_EQ(HttpStatusFor(ErrorCode::kUpstreamTimeout), 504);
    auto body = ErrorJson(MakeError(ErrorCode::kUpstreamTimeout, "slow"), "abc");
    EXPECT_EQ(body["error"]["code"], "upstream_timeout");
    EXPECT_EQ(body["error"]["message"], "slow");
    EXPECT_EQ(body["error"]["request_id"], "abc");
}

TEST(Api, SseEventsAreOneDataLineEach) {
    std::string event = FormatSseEvent("delta", {{"text", "line one\nline two"}});
    EXPECT_EQ(event, "event: delta\ndata: {\"text\":\"line one\\nline two\"}\n\n");
}

TEST(Api, ResponseHasEveryContractField) {
    SummarizeResponse r;
    r.summary = "s";
    r.model = "m";
    r.request_id = "id";
    json doc = ResponseJson(r);
    for (const char* key : {"summary", "route", "model", "chunks", "levels", "usage", "timings", "request_id"}) {
        EXPECT_TRUE(doc.contains(key)) << key;
    }
    for (const char* key : {"prompt_tokens", "completion_tokens", "upstream_requests"}) EXPECT_TRUE(doc["usage"].contains(key));
    for (const char* key : {"total_ms", "queue_ms", "ttft_ms", "load_ms", "prefill_tokens_per_s", "decode_tokens_per_s"}) {
        EXPECT_TRUE(doc["timings"].contains(key)) << key;
    }
}

}  // namespace
}  // namespace summarizer
