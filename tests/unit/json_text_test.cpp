// AppendJsonString against nlohmann::json's own serializer, the oracle: the hot paths write string
// members without a document and must write what a document's dump would.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>
#include <string>

#include "summarizer/json_text.hpp"
#include "summarizer/ollama_client.hpp"
#include "summarizer/openai_client.hpp"

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

GenerateRequest WireTestRequest(std::string system) {
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

// The body as it was built before it was written by hand: a document, dumped.
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

TEST(JsonText, TheGenerateBodyIsByteForByteTheDocumentsDump) {
    for (const std::string system : {"", "be brief", "cut \xe6\x97"}) {
        const GenerateRequest g = WireTestRequest(system);
        EXPECT_EQ(BuildGenerateBody(g), GenerateBodyAsADocument(g)) << system;
    }
}

TEST(JsonText, TheChatBodyIsTheDocumentItWasBefore) {
    for (const auto flavor : {OpenAiFlavor::kVllm, OpenAiFlavor::kLlamaCpp, OpenAiFlavor::kSglang}) {
        const GenerateRequest g = WireTestRequest("be brief");
        const auto body = nlohmann::json::parse(BuildChatBody(g, flavor));
        nlohmann::json expected = {
            {"model", g.model},
            {"messages", nlohmann::json::array({{{"role", "user"}, {"content", g.system + "\n\n" + g.prompt}}})},
            {"stream", true},
            {"stream_options", {{"include_usage", true}}},
            {"temperature", g.temperature},
            {"max_tokens", g.max_output_tokens},
        };
        if (flavor == OpenAiFlavor::kLlamaCpp) {
            expected["repeat_penalty"] = g.repeat_penalty;
            expected["cache_prompt"] = true;
        } else {
            expected["repetition_penalty"] = g.repeat_penalty;
        }
        EXPECT_EQ(body, expected);
    }
}

}  // namespace
}  // namespace summarizer
