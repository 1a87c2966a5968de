// The HTTP surface around the routes: 404/405, CORS, the API key, Retry-After on a busy Ollama,
// and the exception boundary of the threads the service starts (a throwing engine on the
// streaming and the map-reduce paths fails the request; the process keeps serving).
#include <stdexcept>

#include "fake_backend.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;

const char* kApiSurfaceText =
    "The city council met on Tuesday to discuss the new tram line. After three hours of debate, members voted "
    "seven to four to fund the first phase.";

TEST_F(ServiceTest, AKnownPathWithAnotherMethodIs405NamingTheAllowedOnes) {
    StartService();
    auto get = Http().Get("/summarize");
    ASSERT_TRUE(get);
    EXPECT_EQ(get->status, 405);
    EXPECT_EQ(get->get_header_value("Allow"), "POST");
    EXPECT_EQ(json::parse(get->body)["error"]["code"], "method_not_allowed");
    auto post = Http().Post("/healthz", "", "text/plain");
    ASSERT_TRUE(post);
    EXPECT_EQ(post->status, 405);
    EXPECT_EQ(post->get_header_value("Allow"), "GET");
    auto missing = Http().Get("/nope");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ(json::parse(missing->body)["error"]["code"], "not_found");
}

// Request metrics are labelled with the API's own endpoints only: unknown paths do not become label values.
TEST_F(ServiceTest, UnknownPathsDoNotGrowTheRequestMetric) {
    StartService();
    for (const char* path : {"/summarize/a", "/summarize/b", "/summarizexyz"}) {
        auto res = Http().Get(path);
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 404);
    }
    ASSERT_TRUE(PostJson({{"text", kApiSurfaceText}}));
    auto metrics = Http().Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_EQ(metrics->body.find("/summarize/a"), std::string::npos);
    EXPECT_EQ(metrics->body.find("/summarizexyz"), std::string::npos);
    EXPECT_NE(metrics->body.find("endpoint=\"/summarize\""), std::string::npos) << metrics->body.substr(0, 2000);
}

TEST_F(ServiceTest, CorsAllowsTheConfiguredOriginsAndForbidsOthers) {
    config.server.cors_origins = {"https://app.example"};
    StartService();
    auto preflight = Http().Options("/summarize", {{"Origin", "https://app.example"},
                                                   {"Access-Control-Request-Method", "POST"}});
    ASSERT_TRUE(preflight);
    EXPECT_EQ(preflight->status, 204);
    EXPECT_EQ(preflight->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
    EXPECT_NE(preflight->get_header_value("Access-Control-Allow-Methods").find("POST"), std::string::npos);
    auto refused = Http().Options("/summarize", {{"Origin", "https://evil.example"}});
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 403);
    EXPECT_EQ(json::parse(refused->body)["error"]["code"], "forbidden");
    auto health = Http().Get("/healthz", {{"Origin", "https://app.example"}});
    ASSERT_TRUE(health);
    EXPECT_EQ(health->get_header_value("Access-Control-Allow-Origin"), "https://app.example");
    EXPECT_NE(health->get_header_value("Access-Control-Expose-Headers").find("Retry-After"), std::string::npos);
}

TEST_F(ServiceTest, AnApiKeyGuardsEverythingButHealthAndTheContract) {
    config.server.api_key = "s3cret";
    StartService();
    auto anonymous = PostJson({{"text", kApiSurfaceText}});
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->status, 401);
    EXPECT_EQ(anonymous->get_header_value("WWW-Authenticate"), "Bearer");
    EXPECT_EQ(json::parse(anonymous->body)["error"]["code"], "unauthorized");
    auto wrong = PostJson({{"text", kApiSurfaceText}}, {{"Authorization", "Bearer s3cre"}});
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401);
    auto keyed = PostJson({{"text", kApiSurfaceText}}, {{"Authorization", "Bearer s3cret"}});
    ASSERT_TRUE(keyed);
    EXPECT_EQ(keyed->status, 200) << keyed->body;
    for (const char* open : {"/healthz", "/openapi.json", "/"}) {
        auto res = Http().Get(open);
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200) << open;
    }
    auto status = Http().Get("/status");
    ASSERT_TRUE(status);
    EXPECT_EQ(status->status, 401);
}

// Ollama's "server busy" (its queue is full) after the retries: 503 with a Retry-After, not 502.
TEST_F(ServiceTest, ABusyOllamaIs503WithRetryAfter) {
    config.ollama.retry_backoff_ms = 5;
    FakeBehavior b;
    b.fail_status = 503;
    b.fail_message = "server busy, please try again.  maximum pending requests exceeded";
    fake.SetBehavior(b);
    StartService();
    auto res = PostJson({{"text", kApiSurfaceText}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "upstream_unavailable");
    EXPECT_NE(json::parse(res->body)["error"]["message"].get<std::string>().find("server busy"), std::string::npos);
    const std::string retry = res->get_header_value("Retry-After");
    ASSERT_FALSE(retry.empty());
    EXPECT_GE(std::stoi(retry), 1);
}

// A Service over an in-process engine that throws on some calls, behind the real HTTP server.
class ThrowingEngineTest : public ::testing::Test {
protected:
    void SetUp() override {
        config.server.port = 0;
        config.vram.preload_hot_bucket = false;
        config.routing.hierarchical_chunk_max_chars = 3000;
        config.ollama.num_parallel = 2;
        engine.SetResponder([this](const GenerateRequest& g, int) -> Result<GenerateResult> {
            if (throwing && (g.tag == "single" || g.tag.rfind("map 2/", 0) == 0)) throw std::runtime_error("engine bug");
            return FakeLlmEngine::Default(g);
        });
        service = std::make_unique<Service>(config, engine, &engine);
        server = std::make_unique<HttpServer>(config, *service);
        auto bound = server->Bind();
        ASSERT_TRUE(bound.ok());
        port = *bound;
        thread = std::thread([this] { server->Run(); });
    }
    void TearDown() override {
        server->Stop();
        thread.join();
    }
    httplib::Client Http() { return httplib::Client("127.0.0.1", port); }

    Config config;
    FakeLlmEngine engine;
    std::atomic<bool> throwing{true};
    std::unique_ptr<Service> service;
    std::unique_ptr<HttpServer> server;
    std::thread thread;
    int port = 0;
};

std::string LongText() {
    std::string text;
    for (int i = 0; i < 60; ++i) text += "Paragraph " + std::to_string(i) + ": " + kApiSurfaceText + "\n\n";
    return text;
}

TEST_F(ThrowingEngineTest, OnTheStreamingPathTheRequestFailsAndTheProcessServes) {
    std::string received;
    auto error = StreamSummarize(port, {{"text", kApiSurfaceText}, {"stream", true}}, received);
    EXPECT_EQ(error, httplib::Error::Success);
    auto events = ParseSse(received);
    ASSERT_FALSE(events.empty()) << received;
    EXPECT_EQ(events.back().first, "error") << received;
    EXPECT_EQ(events.back().second["error"]["code"], "internal_error");
    EXPECT_NE(events.back().second["error"]["message"].get<std::string>().find("engine bug"), std::string::npos);
    auto health = Http().Get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    throwing = false;
    received.clear();
    StreamSummarize(port, {{"text", kApiSurfaceText}, {"stream", true}}, received);
    EXPECT_EQ(ParseSse(received).back().first, "done") << received;
}

TEST_F(ThrowingEngineTest, OnTheMapReducePathTheRequestFailsAndTheProcessServes) {
    auto res = Http().Post("/summarize", json{{"text", LongText()}, {"strategy", "map_reduce"}}.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 500) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "internal_error");
    throwing = false;
    auto again = Http().Post("/summarize", json{{"text", LongText()}, {"strategy", "map_reduce"}}.dump(), "application/json");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200) << again->body;
    EXPECT_EQ(json::parse(again->body)["route"], "map_reduce");
}

}  // namespace
}  // namespace summarizer::testing
