// What the Ollama client puts on the wire: the /api/generate body.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "summarizer/config.hpp"
#include "summarizer/ollama_client.hpp"

namespace summarizer {
namespace {

GenerateRequest BucketRequest(std::string system) {
    GenerateRequest g;
    g.model = "gemma3-4b-16k";
    g.prompt = "Summarize the document below.\n<document>\n\"quoted\" \\ text \xe6\x97\xa5\x01\n</document>";
    g.system = std::move(system);
    g.context_tokens = 16384;
    g.max_output_tokens = 1200;
    g.num_batch = 1024;
    g.temperature = 0.15;
    g.repeat_penalty = 1.15;
    g.keep_alive = "24h";
    return g;
}

// The body as it was built before it was written member by member (json_text.hpp): a document, dumped.
std::string GenerateBodyAsADocument(const GenerateRequest& g) {
    nlohmann::json body = {
        {"model", g.model},
        {"prompt", g.prompt},
        {"stream", true},
        {"keep_alive", g.keep_alive},
        {"truncate", false},
        {"options",
         {{"num_ctx", g.context_tokens},
          {"num_predict", g.max_output_tokens},
          {"num_batch", g.num_batch},
          {"temperature", g.temperature},
          {"repeat_penalty", g.repeat_penalty}}},
    };
    if (!g.system.empty()) body["system"] = g.system;
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

TEST(OllamaWire, GenerateBodyCarriesTheBucketAndTheGenerationOptions) {
    const GenerateRequest g = BucketRequest("be brief");
    auto body = nlohmann::json::parse(BuildGenerateBody(g));
    EXPECT_EQ(body["model"], "gemma3-4b-16k");
    EXPECT_EQ(body["system"], "be brief");
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["truncate"], false);  // refuse, never cut silently
    EXPECT_EQ(body["keep_alive"], "24h");
    EXPECT_EQ(body["options"]["num_ctx"], 16384);
    EXPECT_EQ(body["options"]["num_predict"], 1200);
    EXPECT_EQ(body["options"]["num_batch"], 1024);
}

TEST(OllamaWire, TheGenerateBodyIsByteForByteTheDocumentItWasBefore) {
    for (const std::string system : {"", "be brief", "cut \xe6\x97"}) {
        const GenerateRequest g = BucketRequest(system);
        EXPECT_EQ(BuildGenerateBody(g), GenerateBodyAsADocument(g)) << system;
    }
    // The options' text is kept per thread for the next call: each change of any of them is seen.
    GenerateRequest g = BucketRequest("");
    for (int round = 0; round < 2; ++round) {
        for (auto change : std::vector<std::function<void(GenerateRequest&)>>{
                 [](GenerateRequest& r) { r.context_tokens = 61440; },
                 [](GenerateRequest& r) { r.max_output_tokens = 300; },
                 [](GenerateRequest& r) { r.num_batch = 512; },
                 [](GenerateRequest& r) { r.temperature = 0.7; },
                 [](GenerateRequest& r) { r.repeat_penalty = 1.0; },
                 [](GenerateRequest& r) { r = BucketRequest(""); },
             }) {
            change(g);
            EXPECT_EQ(BuildGenerateBody(g), GenerateBodyAsADocument(g));
        }
    }
}

// The final object's "context" (token ids) is cut before parsing; everything else stays.
TEST(OllamaWire, TheFinalLinesContextIsCutBeforeParsing) {
    std::string scratch;
    const std::string final_line =
        R"({"model":"m","response":"","done":true,"done_reason":"stop","context":[2,7921,-1, 5],"total_duration":67,)"
        R"("prompt_eval_count":3,"eval_count":4})";
    const auto cut = nlohmann::json::parse(WithoutOllamaContext(final_line, scratch));
    EXPECT_FALSE(cut.contains("context"));
    EXPECT_EQ(cut["done_reason"], "stop");
    EXPECT_EQ(cut["total_duration"], 67);
    EXPECT_EQ(cut["prompt_eval_count"], 3);
    EXPECT_EQ(cut["eval_count"], 4);
    // First and last member, and an empty array.
    EXPECT_EQ(nlohmann::json::parse(WithoutOllamaContext(R"({"context":[1,2],"done":true})", scratch)),
              nlohmann::json::parse(R"({"done":true})"));
    EXPECT_EQ(nlohmann::json::parse(WithoutOllamaContext(R"({"done":true,"context":[]})", scratch)),
              nlohmann::json::parse(R"({"done":true})"));
    // Lines without it, or with something else under that name, are left as they are.
    const std::string piece = R"({"model":"m","response":"the "context":[ of it","done":false})";
    EXPECT_EQ(WithoutOllamaContext(piece, scratch), piece);
    const std::string other = R"({"context":[{"a":1}],"done":true})";
    EXPECT_EQ(WithoutOllamaContext(other, scratch), other);
    // A key that ends in the same bytes, its first quote escaped, is not the member: cut there, the
    // line read "done" as absent.
    const std::string lookalike = R"({"\"context":[1,2],"done":true})";
    EXPECT_EQ(WithoutOllamaContext(lookalike, scratch), lookalike);
    EXPECT_TRUE(ParseOllamaLine(WithoutOllamaContext(lookalike, scratch))->done);
    // Whitespace after the array (not Ollama's compact JSON, found by the fuzzer): left whole, or
    // the cut left "{\t,..." behind, which does not parse.
    const std::string spaced = "{\"context\":[13,2]\t,\"done\":true}";
    EXPECT_EQ(WithoutOllamaContext(spaced, scratch), spaced);
    EXPECT_TRUE(ParseOllamaLine(WithoutOllamaContext(spaced, scratch))->done);
}

// The fields read from each line, without a JSON document: as the document's find()/value() read them.
TEST(OllamaWire, LinesAreReadWithoutADocument) {
    auto piece = ParseOllamaLine(R"({"model":"m","created_at":"t","response":"Hel\u006co \"x\"","done":false})");
    ASSERT_TRUE(piece.ok()) << piece.error().message;
    EXPECT_EQ(piece->response, "Hello \"x\"");
    EXPECT_FALSE(piece->done);
    EXPECT_FALSE(piece->error);

    auto final_line = ParseOllamaLine(
        R"({"model":"m","response":"","done":true,"done_reason":"length","total_duration":5000000000,)"
        R"("load_duration":7,"prompt_eval_count":16384,"prompt_eval_duration":2.5e9,"eval_count":1200,)"
        R"("eval_duration":18446744073709551615,"context":[1,2,3]})");
    ASSERT_TRUE(final_line.ok()) << final_line.error().message;
    EXPECT_TRUE(final_line->done);
    EXPECT_EQ(final_line->done_reason, "length");
    EXPECT_EQ(final_line->total_duration, 5000000000);
    EXPECT_EQ(final_line->load_duration, 7);
    EXPECT_EQ(final_line->prompt_eval_count, 16384);
    EXPECT_EQ(final_line->prompt_eval_duration, 2500000000);  // a float, truncated as get<int64_t>() does
    EXPECT_EQ(final_line->eval_count, 1200);

    // Only the line's own members: a nested "response" or "done" is someone else's.
    auto nested = ParseOllamaLine(R"({"meta":{"response":"no","done":true,"error":"no"},"list":[{"response":"no"}],"response":"yes"})");
    ASSERT_TRUE(nested.ok());
    EXPECT_EQ(nested->response, "yes");
    EXPECT_FALSE(nested->done);
    EXPECT_FALSE(nested->error);
    // The last of a repeated member wins, whatever its type; a value of another type reads as absent.
    auto repeated = ParseOllamaLine(R"({"response":"first","response":7,"eval_count":"x","done_reason":null})");
    ASSERT_TRUE(repeated.ok());
    EXPECT_EQ(repeated->response, "");
    EXPECT_EQ(repeated->eval_count, 0);
    EXPECT_EQ(repeated->done_reason, "");

    // An error member, a string or not.
    auto error = ParseOllamaLine(R"({"error":"model runner crashed"})");
    ASSERT_TRUE(error.ok());
    EXPECT_EQ(error->error, "model runner crashed");
    EXPECT_EQ(ParseOllamaLine(R"({"error":{"code":500,"msg":"x"}})")->error, R"({"code":500,"msg":"x"})");
    EXPECT_EQ(ParseOllamaLine(R"({"error":42})")->error, "42");
    EXPECT_EQ(ParseOllamaLine(R"({"error":null})")->error, "null");

    // What is no line of Ollama's.
    for (const char* bad : {R"(["response"])", R"("text")", "42", R"({"response":"cut)", "{", R"({"a":1} {"b":2})",
                            R"({"done":"yes"})", R"({"done":true,"done":1})"}) {
        auto parsed = ParseOllamaLine(bad);
        ASSERT_FALSE(parsed.ok()) << bad;
        EXPECT_EQ(parsed.error().code, ErrorCode::kUpstreamError) << bad;
    }
    EXPECT_NE(ParseOllamaLine("[1]").error().message.find("not an object"), std::string::npos);
    EXPECT_NE(ParseOllamaLine("{").error().message.find("malformed"), std::string::npos);
    EXPECT_TRUE(ParseOllamaLine(R"({"done":"yes","done":false})").ok());
}

// Ollama reads a keep_alive string as a Go duration: "-1" or "90" as strings are refused ("missing
// unit"), so bare seconds go out as JSON numbers.
TEST(OllamaWire, BareSecondsKeepAliveIsANumber) {
    EXPECT_EQ(KeepAliveJson("-1"), nlohmann::json(-1));
    EXPECT_EQ(KeepAliveJson("90"), nlohmann::json(90));
    EXPECT_EQ(KeepAliveJson(" 0 "), nlohmann::json(0));
    EXPECT_EQ(KeepAliveJson("0.5"), nlohmann::json(0.5));
    EXPECT_EQ(KeepAliveJson("15m"), nlohmann::json("15m"));
    EXPECT_EQ(KeepAliveJson("1h30m"), nlohmann::json("1h30m"));
    EXPECT_FALSE(ParseKeepAlive("inf"));
    EXPECT_FALSE(ParseKeepAlive("nan"));
}

}  // namespace
}  // namespace summarizer
