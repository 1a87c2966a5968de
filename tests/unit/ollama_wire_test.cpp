// What the Ollama client puts on the wire: the /api/generate body.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "summarizer/config.hpp"
#include "summarizer/ollama_client.hpp"

namespace summarizer {
namespace {

TEST(OllamaWire, GenerateBodyCarriesTheBucketAndTheGenerationOptions) {
    GenerateRequest g;
    g.model = "gemma3-4b-16k";
    g.prompt = "text";
    g.system = "be brief";
    g.context_tokens = 16384;
    g.max_output_tokens = 1200;
    g.num_batch = 1024;
    g.temperature = 0.15;
    g.repeat_penalty = 1.15;
    g.keep_alive = "24h";
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
