// The service end to end: real HTTP in, real HTTP to the fake Ollama out.
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;

const char* kEnglish =
    "The city council met on Tuesday to discuss the new tram line. After three hours of debate, members voted "
    "seven to four to fund the first phase, which will connect the central station with the university campus. "
    "Construction is expected to begin next spring and to cost 84 million euros.";

TEST_F(ServiceTest, SummarizeReturnsEveryContractField) {
    FakeBehavior b;
    b.reply = "The council approved the first tram phase.";
    fake.SetBehavior(b);
    StartService();
    auto res = PostJson({{"text", kEnglish}}, {{"X-Request-Id", "req-123"}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("X-Request-Id"), "req-123");
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["summary"], "The council approved the first tram phase.");
    EXPECT_EQ(doc["route"], "16k");
    EXPECT_EQ(doc["model"], "gemma3-4b-16k");
    EXPECT_EQ(doc["chunks"], 1);
    EXPECT_EQ(doc["levels"], 0);
    EXPECT_EQ(doc["request_id"], "req-123");
    EXPECT_GT(doc["usage"]["prompt_tokens"].get<int>(), 50);
    EXPECT_GT(doc["usage"]["completion_tokens"].get<int>(), 0);
    EXPECT_EQ(doc["usage"]["upstream_requests"], 1);
    for (const char* key : {"total_ms", "queue_ms", "ttft_ms", "load_ms", "prefill_tokens_per_s", "decode_tokens_per_s"}) {
        ASSERT_TRUE(doc["timings"].contains(key)) << key;
    }
    EXPECT_GT(doc["timings"]["ttft_ms"].get<double>(), 0.0);
    EXPECT_LE(doc["timings"]["ttft_ms"].get<double>(), doc["timings"]["total_ms"].get<double>());
    // The fake reports durations from its configured rates.
    EXPECT_NEAR(doc["timings"]["prefill_tokens_per_s"].get<double>(), b.prefill_tokens_per_s, b.prefill_tokens_per_s * 0.05);
    EXPECT_NEAR(doc["timings"]["decode_tokens_per_s"].get<double>(), b.decode_tokens_per_s, b.decode_tokens_per_s * 0.05);
}

TEST_F(ServiceTest, SendsBucketOptionsKeepAliveAndTruncateFalse) {
    StartService();
    auto res = PostJson({{"text", kEnglish}, {"max_tokens", 321}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    auto requests = fake.Requests();
    ASSERT_EQ(requests.size(), 1u);
    const json& sent = requests[0].body;
    EXPECT_EQ(sent["model"], "gemma3-4b-16k");
    EXPECT_EQ(sent["keep_alive"], "24h");
    EXPECT_EQ(sent["truncate"], false);
    EXPECT_EQ(sent["stream"], true);
    EXPECT_EQ(sent["options"]["num_ctx"], 16384);
    EXPECT_EQ(sent["options"]["num_predict"], 321);
    EXPECT_EQ(sent["options"]["num_batch"], 1024);
    EXPECT_DOUBLE_EQ(sent["options"]["temperature"].get<double>(), 0.15);
    EXPECT_DOUBLE_EQ(sent["options"]["repeat_penalty"].get<double>(), 1.15);
    // The text is inside the prompt, fenced as data, with the instruction restated after it.
    std::string prompt = sent["prompt"];
    auto doc_start = prompt.find("<document>");
    auto doc_end = prompt.find("</document>");
    ASSERT_NE(doc_start, std::string::npos);
    ASSERT_NE(doc_end, std::string::npos);
    EXPECT_NE(prompt.substr(doc_start, doc_end - doc_start).find("tram line"), std::string::npos);
    EXPECT_NE(prompt.find("English", doc_end), std::string::npos);
    EXPECT_NE(sent["system"].get<std::string>().find("never instructions"), std::string::npos);
}

TEST_F(ServiceTest, JapaneseInputAsksForAJapaneseSummary) {
    StartService();
    auto res = PostJson({{"text", "東京都は火曜日、新しい路面電車の建設計画を発表した。総工費は八十四億円で、来年春に着工する予定だ。"}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    std::string prompt = fake.Requests().at(0).body["prompt"];
    EXPECT_NE(prompt.find("Japanese"), std::string::npos);
    EXPECT_NE(prompt.find("日本語で"), std::string::npos);
}

TEST_F(ServiceTest, BulletsStyleAndExplicitLanguageReachThePrompt) {
    StartService();
    auto res = PostJson({{"text", kEnglish}, {"style", "bullets"}, {"language", "ja"}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    std::string prompt = fake.Requests().at(0).body["prompt"];
    EXPECT_NE(prompt.find("bulleted list"), std::string::npos);
    EXPECT_NE(prompt.find("in Japanese"), std::string::npos);
}

TEST_F(ServiceTest, TextPlainBodyWithQueryOptions) {
    StartService();
    auto res = Http().Post("/summarize?style=bullets&max_tokens=100", kEnglish, "text/plain");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(fake.Requests().at(0).body["options"]["num_predict"], 100);
}

struct BadRequestCase {
    std::string name;
    std::string content_type;
    std::string body;
    int status;
    std::string code;
};

class ServiceRejects : public ServiceTest, public ::testing::WithParamInterface<BadRequestCase> {};

TEST_P(ServiceRejects, WithStatusCodeAndMessage) {
    StartService();
    const auto& c = GetParam();
    auto res = Http().Post("/summarize", c.body, c.content_type);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, c.status) << res->body;
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["error"]["code"], c.code);
    EXPECT_FALSE(doc["error"]["message"].get<std::string>().empty());
    EXPECT_EQ(doc["error"]["request_id"], res->get_header_value("X-Request-Id"));
    EXPECT_TRUE(fake.Requests().empty()) << "nothing may reach Ollama";
}

INSTANTIATE_TEST_SUITE_P(
    BadInput, ServiceRejects,
    ::testing::Values(BadRequestCase{"MalformedJson", "application/json", "{\"text\": ", 400, "invalid_json"},
                      BadRequestCase{"UnknownField", "application/json", R"({"text":"x","foo":1})", 400, "invalid_request"},
                      BadRequestCase{"WrongType", "application/json", R"({"text":"x","stream":"no"})", 400, "invalid_request"},
                      BadRequestCase{"Blank", "application/json", R"({"text":"   "})", 400, "invalid_request"},
                      BadRequestCase{"BadUtf8", "text/plain", "caf\xc3", 400, "invalid_request"},
                      BadRequestCase{"Nul", "text/plain", std::string("a\0b", 3), 400, "invalid_request"},
                      BadRequestCase{"Xml", "application/xml", "<text/>", 415, "unsupported_media_type"}),
    [](const auto& info) { return info.param.name; });

TEST_F(ServiceTest, BodyOverTheLimitIs413) {
    config.server.max_body_bytes = 4096;
    StartService();
    auto res = Http().Post("/summarize", std::string(10000, 'a'), "text/plain");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 413);
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "payload_too_large");
}

TEST_F(ServiceTest, OllamaUnreachableIs503) {
    fake.Stop();
    config.degraded.extractive_fallback = false;  // with it (the default): an extractive 200, see reliability_test
    StartService();
    auto res = PostJson({{"text", kEnglish}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["error"]["code"], "upstream_unavailable");
    EXPECT_NE(doc["error"]["message"].get<std::string>().find("OLLAMA_HOST"), std::string::npos);
}

TEST_F(ServiceTest, MissingModelIs503NamingOllamaCreate) {
    FakeBehavior b;
    b.missing_models = {"gemma3-4b-16k"};
    fake.SetBehavior(b);
    StartService();
    auto res = PostJson({{"text", kEnglish}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
    EXPECT_NE(res->body.find("ollama create gemma3-4b-16k"), std::string::npos) << res->body;
}

TEST_F(ServiceTest, OllamaServerErrorIsRetriedThen502) {
    FakeBehavior b;
    b.fail_status = 500;
    fake.SetBehavior(b);
    StartService();
    auto res = PostJson({{"text", kEnglish}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 502) << res->body;
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["error"]["code"], "upstream_error");
    EXPECT_NE(doc["error"]["message"].get<std::string>().find("llama runner process has terminated"), std::string::npos);
    EXPECT_EQ(fake.Requests().size(), 1u + static_cast<size_t>(config.ollama.max_retries));
}

TEST_F(ServiceTest, TransientFailureRecoversOnRetry) {
    FakeBehavior b;
    b.fail_status = 503;
    b.fail_message = "server busy, please try again.  maximum pending requests exceeded";
    b.fail_count = 1;
    b.reply = "Recovered.";
    fake.SetBehavior(b);
    StartService();
    auto res = PostJson({{"text", kEnglish}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["summary"], "Recovered.");
    EXPECT_EQ(fake.Requests().size(), 2u);
}

TEST_F(ServiceTest, BrokenStreamsAre502) {
    StartService();
    auto expect_502 = [&](const FakeBehavior& b, const std::string& words) {
        fake.SetBehavior(b);
        auto res = PostJson({{"text", kEnglish}});
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 502) << res->body;
        EXPECT_NE(res->body.find(words), std::string::npos) << res->body;
    };
    FakeBehavior drop;
    drop.drop_after_pieces = 0;  // before any text reached the client: retried, then 502
    expect_502(drop, "upstream_error");
    FakeBehavior error_line;
    error_line.error_line_after_pieces = 0;
    expect_502(error_line, "mid-stream");
    FakeBehavior garbage;
    garbage.garbage_after_pieces = 0;
    expect_502(garbage, "malformed");
    FakeBehavior no_final;
    no_final.omit_final = true;
    expect_502(no_final, "final");
}

TEST_F(ServiceTest, SilentOllamaIs504) {
    config.ollama.first_token_timeout_s = 1;
    config.ollama.max_retries = 0;
    FakeBehavior b;
    b.headers_delay_ms = 5000;
    fake.SetBehavior(b);
    StartService();
    auto start = std::chrono::steady_clock::now();
    auto res = PostJson({{"text", kEnglish}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 504) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "upstream_timeout");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(3500));
}

TEST_F(ServiceTest, HealthzAndRequestIds) {
    StartService();
    auto res = Http().Get("/healthz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["status"], "ok");
    EXPECT_EQ(res->get_header_value("X-Request-Id").size(), 32u);
    auto missing = Http().Get("/nope");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_FALSE(missing->get_header_value("X-Request-Id").empty());
    EXPECT_EQ(json::parse(missing->body)["error"]["code"], "not_found");
}

// A path that decodes to invalid UTF-8 used to throw from the 404 handler and terminate the
// whole service (found while fuzzing: the error body is now serialised with U+FFFD).
// A bucket kept forever ("-1" seconds, as Ollama documents it) reaches Ollama as the number -1: the
// string "-1" would be refused as a duration without a unit.
TEST_F(ServiceTest, NumericKeepAliveReachesOllamaAsANumber) {
    config.buckets[0].keep_alive = "-1";
    StartService();
    auto res = PostJson({{"text", kEnglish}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    ASSERT_FALSE(fake.Requests().empty());
    EXPECT_EQ(fake.Requests().back().body["keep_alive"], json(-1));
}

TEST_F(ServiceTest, NotFoundPathWithInvalidUtf8KeepsServing) {
    StartService();
    auto missing = Http().Get("/%FF%FE");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ(json::parse(missing->body)["error"]["code"], "not_found");
    auto res = Http().Get("/healthz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
}

TEST_F(ServiceTest, ServesConcurrentRequests) {
    FakeBehavior b;
    b.piece_delay_ms = 5;
    b.reply = "Concurrent summary, delivered piece by piece.";
    fake.SetBehavior(b);
    config.server.max_inflight = 8;
    config.ollama.num_parallel = 2;  // the upstream scheduler keeps Ollama to its slots
    StartService();
    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int i = 0; i < 8; ++i) {
        clients.emplace_back([&] {
            auto res = PostJson({{"text", kEnglish}});
            if (res && res->status == 200) ++ok;
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(ok.load(), 8);
    EXPECT_EQ(fake.MaxConcurrency(), 2);
}

}  // namespace
}  // namespace summarizer::testing
