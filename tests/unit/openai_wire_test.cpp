// The OpenAI-compatible wire format as the engines speak it: the request body (streamed, usage
// asked for, one user message, each engine's repetition knob) and the error bodies, a context
// overflow recognised in vLLM's, llama.cpp's and SGLang's own words with the prompt's size.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "summarizer/openai_client.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;

GenerateRequest ChatTestRequest() {
    GenerateRequest g;
    g.model = "google/gemma-3-4b-it";
    g.system = "Summarize the document.";
    g.prompt = "<document>\"quoted\" \\ text \xe6\x97\xa5\x01</document>";
    g.max_output_tokens = 400;
    g.temperature = 0.15;
    g.repeat_penalty = 1.15;
    g.keep_alive = "24h";  // Ollama only: not sent
    return g;
}

TEST(OpenAiWire, TheBodyStreamsAsksForUsageAndSendsOneUserMessage) {
    const GenerateRequest g = ChatTestRequest();
    const json vllm = json::parse(BuildChatBody(g, OpenAiFlavor::kVllm));
    EXPECT_EQ(vllm["model"], "google/gemma-3-4b-it");
    EXPECT_EQ(vllm["stream"], true);
    EXPECT_EQ(vllm["stream_options"]["include_usage"], true);
    EXPECT_EQ(vllm["max_tokens"], 400);
    ASSERT_EQ(vllm["messages"].size(), 1u);
    EXPECT_EQ(vllm["messages"][0]["role"], "user");
    EXPECT_EQ(vllm["messages"][0]["content"], g.system + "\n\n" + g.prompt);
    EXPECT_DOUBLE_EQ(vllm["repetition_penalty"].get<double>(), 1.15);
    EXPECT_FALSE(vllm.contains("keep_alive"));
    const json llama = json::parse(BuildChatBody(g, OpenAiFlavor::kLlamaCpp));
    EXPECT_DOUBLE_EQ(llama["repeat_penalty"].get<double>(), 1.15);
    EXPECT_FALSE(llama.contains("repetition_penalty"));
    // An engine not recognised gets only the standard fields.
    const json plain = json::parse(BuildChatBody(g, OpenAiFlavor::kUnknown));
    EXPECT_FALSE(plain.contains("repetition_penalty"));
    EXPECT_FALSE(plain.contains("repeat_penalty"));
}

// Written member by member (json_text.hpp), the body is the document it was when nlohmann built it.
TEST(OpenAiWire, TheBodyIsTheDocumentItWasBefore) {
    for (const auto flavor : {OpenAiFlavor::kVllm, OpenAiFlavor::kLlamaCpp, OpenAiFlavor::kSglang}) {
        const GenerateRequest g = ChatTestRequest();
        const auto body = json::parse(BuildChatBody(g, flavor));
        json expected = {
            {"model", g.model},
            {"messages", json::array({{{"role", "user"}, {"content", g.system + "\n\n" + g.prompt}}})},
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

TEST(OpenAiWire, VllmOverflowInItsWordingsWithThePromptSize) {
    const auto input = ParseContextOverflow(
        R"({"error":{"message":"This model's maximum context length is 32768 tokens. However, your request has 40000 input tokens. Please reduce the length of the input messages.","type":"BadRequestError","param":null,"code":400}})");
    ASSERT_TRUE(input);
    EXPECT_EQ(input->context_tokens, 32768);
    EXPECT_EQ(input->prompt_tokens, 40000);
    // prompt + max_tokens over the limit (newer vLLM)
    const auto with_output = ParseContextOverflow(
        R"({"error":{"message":"'max_tokens' or 'max_completion_tokens' is too large: 1200. This model's maximum context length is 16384 tokens and your request has 15800 input tokens (1200 > 16384 - 15800).","type":"BadRequestError","param":null,"code":400}})");
    ASSERT_TRUE(with_output);
    EXPECT_EQ(with_output->context_tokens, 16384);
    EXPECT_EQ(with_output->prompt_tokens, 15800);
    // older vLLM
    const auto older = ParseContextOverflow(
        R"({"object":"error","message":"This model's maximum context length is 8192 tokens. However, you requested 9,500 tokens (8,300 in the messages, 1,200 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400})");
    ASSERT_TRUE(older);
    EXPECT_EQ(older->context_tokens, 8192);
    EXPECT_EQ(older->prompt_tokens, 8300);
}

TEST(OpenAiWire, LlamaCppAndSglangOverflows) {
    const auto llama = ParseContextOverflow(
        R"({"error":{"code":400,"message":"request (13392 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":13392,"n_ctx":8192}})");
    ASSERT_TRUE(llama);
    EXPECT_EQ(llama->prompt_tokens, 13392);
    EXPECT_EQ(llama->context_tokens, 8192);
    const auto sglang = ParseContextOverflow(
        R"({"object":"error","message":"The input (70123 tokens) is longer than the model's context length (65536 tokens).","type":"BadRequestError","param":null,"code":400})");
    ASSERT_TRUE(sglang);
    EXPECT_EQ(sglang->prompt_tokens, 70123);
    EXPECT_EQ(sglang->context_tokens, 65536);
    EXPECT_FALSE(ParseContextOverflow(R"({"error":{"message":"temperature must be positive","code":400}})"));
}

TEST(OpenAiWire, StatusesMapToTheErrorsThePoolActsOn) {
    const std::string who = "upstream vllm (http://v:8000)";
    const Error overflow = ErrorFromOpenAiStatus(
        400, R"({"error":{"message":"This model's maximum context length is 100 tokens. However, your request has 150 input tokens.","code":400}})",
        who, "m");
    EXPECT_EQ(overflow.code, ErrorCode::kContextOverflow);
    EXPECT_EQ(overflow.overflow_prompt_tokens, 150);
    EXPECT_NE(overflow.message.find("upstream vllm"), std::string::npos);
    const Error missing = ErrorFromOpenAiStatus(404, R"({"error":{"message":"The model `x` does not exist."}})", who, "x");
    EXPECT_EQ(missing.code, ErrorCode::kUpstreamUnavailable);
    EXPECT_NE(missing.message.find("does not exist"), std::string::npos);
    EXPECT_EQ(ErrorFromOpenAiStatus(503, R"({"error":{"message":"Loading model"}})", who, "m").code,
              ErrorCode::kUpstreamBusy);
    EXPECT_EQ(ErrorFromOpenAiStatus(429, "{}", who, "m").code, ErrorCode::kUpstreamBusy);
    const Error server = ErrorFromOpenAiStatus(500, R"({"error":{"message":"CUDA out of memory"}})", who, "m");
    EXPECT_EQ(server.code, ErrorCode::kUpstreamError);
    EXPECT_TRUE(server.retryable);
    const Error auth = ErrorFromOpenAiStatus(401, R"({"error":{"message":"Unauthorized"}})", who, "m");
    EXPECT_FALSE(auth.retryable);
    EXPECT_NE(auth.message.find("api_key"), std::string::npos);
    const Error bad = ErrorFromOpenAiStatus(400, R"({"object":"error","message":"bad temperature"})", who, "m");
    EXPECT_EQ(bad.code, ErrorCode::kUpstreamError);
    EXPECT_FALSE(bad.retryable);
    EXPECT_NE(bad.message.find("bad temperature"), std::string::npos);
}

}  // namespace
}  // namespace summarizer
