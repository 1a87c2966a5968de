// Reliability end to end (real HTTP in, the fake Ollama out): admission control and 429 with
// Retry-After, the bounded queue wait, a queued client that hangs up, the circuit breaker,
// the extractive fallback (JSON and SSE), and each upstream time-out.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "eventually.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const char* kReliabilityText =
    "The city council approved the new tram line on Tuesday. My neighbour's cat sleeps on the windowsill. "
    "The tram line will connect the central station with the university campus. Construction of the tram "
    "line starts next spring and costs 84 million euros. Council members argued for three hours about the "
    "tram line before the vote.";

// A reply that takes about `pieces` x `delay_ms` to stream.
FakeBehavior Slow(int pieces, int delay_ms) {
    FakeBehavior b;
    b.reply = std::string(static_cast<size_t>(pieces) * 4, 'x');
    b.piece_chars = 4;
    b.piece_delay_ms = delay_ms;
    return b;
}

class ReliabilityTest : public ServiceTest {
protected:
    // Sends a POST /summarize on a raw socket (the test decides when to hang up). Returns the fd.
    int RawPost(const std::string& body) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
        std::string request = "POST /summarize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return -1;
        return fd;
    }
};

TEST_F(ReliabilityTest, BeyondInflightAndQueueIs429WithRetryAfter) {
    config.server.max_inflight = 1;
    config.server.max_queue = 1;
    fake.SetBehavior(Slow(20, 40));
    StartService();
    std::vector<int> statuses(2, 0);
    std::thread first([&] { statuses[0] = PostJson({{"text", kReliabilityText}})->status; });
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    std::thread second([&] { statuses[1] = PostJson({{"text", kReliabilityText}})->status; });
    ASSERT_TRUE(Eventually([&] { return server->metrics().queued() == 1; }));
    auto third = PostJson({{"text", kReliabilityText}});
    ASSERT_TRUE(third);
    EXPECT_EQ(third->status, 429) << third->body;
    EXPECT_EQ(json::parse(third->body)["error"]["code"], "overloaded");
    const std::string retry_after = third->get_header_value("Retry-After");
    ASSERT_FALSE(retry_after.empty());
    EXPECT_TRUE(std::all_of(retry_after.begin(), retry_after.end(), ::isdigit)) << retry_after;
    EXPECT_GE(std::stoi(retry_after), 1);
    first.join();
    second.join();
    EXPECT_EQ(statuses, (std::vector<int>{200, 200}));
    EXPECT_EQ(fake.MaxConcurrency(), 1);
}

TEST_F(ReliabilityTest, QueuedWaitIsBoundedByQueueTimeout) {
    config.server.max_inflight = 1;
    config.server.queue_timeout_s = 1;
    fake.SetBehavior(Slow(40, 75));  // ~3 s
    StartService();
    std::thread first([&] { EXPECT_EQ(PostJson({{"text", kReliabilityText}})->status, 200); });
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    const auto start = Clock::now();
    auto second = PostJson({{"text", kReliabilityText}});
    const auto waited = Clock::now() - start;
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status, 429) << second->body;
    EXPECT_NE(second->body.find("queue_timeout_s"), std::string::npos) << second->body;
    EXPECT_FALSE(second->get_header_value("Retry-After").empty());
    EXPECT_GE(waited, 900ms);
    EXPECT_LT(waited, 2500ms);
    first.join();
}

TEST_F(ReliabilityTest, ClientThatHangsUpWhileQueuedFreesItsPlace) {
    config.server.max_inflight = 1;
    config.server.max_queue = 1;
    fake.SetBehavior(Slow(50, 60));  // ~3 s
    StartService();
    std::thread first([&] { EXPECT_EQ(PostJson({{"text", kReliabilityText}})->status, 200); });
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    int fd = RawPost(json{{"text", kReliabilityText}}.dump());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(Eventually([&] { return server->metrics().queued() == 1; }));
    close(fd);
    EXPECT_TRUE(Eventually([&] { return server->metrics().queued() == 0; }, 2000ms))
        << "the abandoned request still holds its place in the queue";
    // The place is usable again: this one queues (not 429) and is served after the first.
    auto next = PostJson({{"text", kReliabilityText}});
    ASSERT_TRUE(next);
    EXPECT_EQ(next->status, 200) << next->body;
    first.join();
    EXPECT_EQ(fake.Requests().size(), 2u) << "the abandoned request never reached Ollama";
}

TEST_F(ReliabilityTest, OllamaDownGivesADegradedExtractiveSummary) {
    fake.Stop();
    config.ollama.max_retries = 0;
    StartService();
    auto res = PostJson({{"text", kReliabilityText}, {"max_tokens", 40}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["route"], "extractive");
    EXPECT_EQ(doc["degraded"], true);
    EXPECT_EQ(doc["model"], "none");
    EXPECT_EQ(doc["usage"]["upstream_requests"], 0);
    const std::string summary = doc["summary"];
    EXPECT_FALSE(summary.empty());
    EXPECT_LE(summary.size(), 160u);  // max_tokens 40 x ~4 chars
    EXPECT_NE(std::string(kReliabilityText).find(summary.substr(0, 20)), std::string::npos) << "sentences come from the text";
    EXPECT_EQ(summary.find("cat"), std::string::npos) << summary;
    // Metrics count the degraded route: once the answer is written (the request's metrics are
    // recorded after its last byte, which the client may read first).
    EXPECT_TRUE(Eventually([&] {
        auto metrics = Http().Get("/metrics");
        return metrics && metrics->body.find("route=\"extractive\",status=\"200\"") != std::string::npos;
    }));
}

TEST_F(ReliabilityTest, JapaneseFallbackWorks) {
    fake.Stop();
    config.ollama.max_retries = 0;
    StartService();
    auto res = PostJson({{"text", "東京都は新しい路面電車の建設計画を発表した。猫は窓辺で昼寝をしている。"
                                  "路面電車は中央駅と大学を結ぶ計画である。路面電車の建設は来年春に始まる。"}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    auto doc = json::parse(res->body);
    EXPECT_EQ(doc["route"], "extractive");
    EXPECT_NE(doc["summary"].get<std::string>().find("路面電車"), std::string::npos);
}

TEST_F(ReliabilityTest, WithoutFallbackOllamaDownIs503) {
    fake.Stop();
    config.degraded.extractive_fallback = false;
    config.ollama.max_retries = 0;
    StartService();
    auto res = PostJson({{"text", kReliabilityText}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "upstream_unavailable");
}

TEST_F(ReliabilityTest, MissingModelIsNotHiddenByTheFallback) {
    FakeBehavior b;
    b.missing_models = {"gemma3-4b-16k"};
    fake.SetBehavior(b);
    StartService();
    auto res = PostJson({{"text", kReliabilityText}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
}

TEST_F(ReliabilityTest, CircuitOpensFailsFastShowsInReadyzAndRecovers) {
    config.degraded.extractive_fallback = false;
    config.ollama.max_retries = 0;
    config.ollama.circuit_failure_threshold = 2;
    config.ollama.circuit_open_ms = 800;
    fake.Stop();
    StartService();
    for (int i = 0; i < 2; ++i) EXPECT_EQ(PostJson({{"text", kReliabilityText}})->status, 503);
    const auto start = Clock::now();
    auto fast = PostJson({{"text", kReliabilityText}});
    ASSERT_TRUE(fast);
    EXPECT_EQ(fast->status, 503);
    EXPECT_NE(fast->body.find("circuit is open"), std::string::npos) << fast->body;
    EXPECT_LT(Clock::now() - start, 2000ms);
    auto ready = Http().Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 503);
    EXPECT_EQ(json::parse(ready->body)["circuit"], "open") << ready->body;
    auto metrics = Http().Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("summarizer_circuit_state 1\n"), std::string::npos);
    EXPECT_NE(metrics->body.find("summarizer_circuit_opens_total 1\n"), std::string::npos);

    fake.Restart();
    std::this_thread::sleep_for(900ms);  // the open duration passes: the next call probes
    auto recovered = PostJson({{"text", kReliabilityText}});
    ASSERT_TRUE(recovered);
    EXPECT_EQ(recovered->status, 200) << recovered->body;
    EXPECT_EQ(json::parse(recovered->body)["route"], "16k");
    auto ready_again = Http().Get("/readyz");
    ASSERT_TRUE(ready_again);
    EXPECT_EQ(ready_again->status, 200) << ready_again->body;
    EXPECT_NE(Http().Get("/metrics")->body.find("summarizer_circuit_state 0\n"), std::string::npos);
}

TEST_F(ReliabilityTest, OpenCircuitWithFallbackAnswersAtOnce) {
    config.ollama.max_retries = 0;
    config.ollama.circuit_failure_threshold = 1;
    config.ollama.circuit_open_ms = 60000;
    fake.Stop();
    StartService();
    EXPECT_EQ(json::parse(PostJson({{"text", kReliabilityText}})->body)["route"], "extractive");  // opens the circuit
    auto upstream_calls = [&] {
        auto m = Http().Get("/metrics");
        const std::string key = "summarizer_upstream_requests_total{outcome=\"unavailable\"} ";
        size_t at = m ? m->body.find(key) : std::string::npos;
        return at == std::string::npos ? -1 : std::atoi(m->body.c_str() + at + key.size());
    };
    EXPECT_EQ(upstream_calls(), 1);
    auto res = PostJson({{"text", kReliabilityText}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["degraded"], true);
    EXPECT_EQ(upstream_calls(), 1) << "with the circuit open the LLM route is not even tried";
    auto ready = Http().Get("/readyz");
    ASSERT_TRUE(ready);
    auto doc = json::parse(ready->body);
    EXPECT_EQ(doc["circuit"], "open");
    EXPECT_TRUE(doc.contains("degraded"));
}

std::vector<std::pair<std::string, json>> StreamEvents(int port, const json& body) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(std::chrono::seconds(30));
    auto res = client.Post("/summarize", body.dump(), "application/json");
    if (!res || res->status != 200) return {};
    return ParseSse(res->body);
}

TEST_F(ReliabilityTest, StreamingFallsBackWithMetaDeltaDone) {
    config.ollama.max_retries = 0;
    config.ollama.circuit_failure_threshold = 1;
    config.ollama.circuit_open_ms = 60000;
    fake.Stop();
    StartService();
    // The first call finds Ollama down after the plan was announced: a second meta corrects the route.
    auto events = StreamEvents(port, {{"text", kReliabilityText}, {"stream", true}});
    ASSERT_EQ(events.size(), 4u);
    EXPECT_EQ(events[0].first, "meta");
    EXPECT_EQ(events[0].second["route"], "16k");
    EXPECT_EQ(events[1].first, "meta");
    EXPECT_EQ(events[1].second["route"], "extractive");
    EXPECT_EQ(events[1].second["degraded"], true);
    EXPECT_EQ(events[2].first, "delta");
    EXPECT_EQ(events[3].first, "done");
    EXPECT_EQ(events[3].second["degraded"], true);
    EXPECT_EQ(events[3].second["summary"], events[2].second["text"]);
    // With the circuit open, the stream is extractive from its first event.
    auto open = StreamEvents(port, {{"text", kReliabilityText}, {"stream", true}});
    ASSERT_EQ(open.size(), 3u);
    EXPECT_EQ(open[0].first, "meta");
    EXPECT_EQ(open[0].second["route"], "extractive");
    EXPECT_EQ(open[0].second["degraded"], true);
    EXPECT_EQ(open[2].second["route"], "extractive");
}

// Each upstream time-out against a fake that stalls at that point; no retries, so the bound is tight.
struct TimeoutCase {
    std::string name;
    FakeBehavior behavior;
    int first_token_s, idle_s, total_s;
    std::string words;
};

class UpstreamTimeouts : public ServiceTest, public ::testing::WithParamInterface<TimeoutCase> {};

TEST_P(UpstreamTimeouts, EndWith504InTime) {
    const auto& c = GetParam();
    config.ollama.max_retries = 0;
    config.ollama.first_token_timeout_s = c.first_token_s;
    config.ollama.idle_timeout_s = c.idle_s;
    config.ollama.total_timeout_s = c.total_s;
    fake.SetBehavior(c.behavior);
    StartService();
    const auto start = Clock::now();
    auto res = PostJson({{"text", kReliabilityText}});
    const auto took = Clock::now() - start;
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 504) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "upstream_timeout");
    EXPECT_NE(res->body.find(c.words), std::string::npos) << res->body;
    EXPECT_LT(took, 2500ms);
    // The fake saw the service hang up.
    EXPECT_TRUE(Eventually([&] { return fake.ActiveCalls() == 0; }, 2000ms));
}

FakeBehavior With(std::function<void(FakeBehavior&)> set) {
    FakeBehavior b;
    b.reply = "one two three four five six seven eight nine ten eleven twelve";
    b.piece_chars = 4;
    set(b);
    return b;
}

INSTANTIATE_TEST_SUITE_P(
    Stalls, UpstreamTimeouts,
    ::testing::Values(
        TimeoutCase{"NoHeaders", With([](FakeBehavior& b) { b.headers_delay_ms = 10000; }), 1, 5, 60,
                    "first_token_timeout_s"},
        TimeoutCase{"NoFirstPiece", With([](FakeBehavior& b) { b.first_piece_delay_ms = 10000; }), 1, 5, 60,
                    "first_token_timeout_s"},
        TimeoutCase{"SilentMidStream", With([](FakeBehavior& b) { b.piece_delay_ms = 10000; }), 5, 1, 60,
                    "idle_timeout_s"},
        TimeoutCase{"SlowButSteady", With([](FakeBehavior& b) { b.piece_delay_ms = 300; }), 5, 5, 1,
                    "total_timeout_s"}),
    [](const auto& info) { return info.param.name; });

TEST(OllamaClientTimeouts, ConnectTimeoutIsBounded) {
    // A listener whose accept queue is full: the kernel drops further SYNs, so connect() hangs.
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(listener, 0), 0);
    socklen_t len = sizeof addr;
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        fillers.push_back(fd);
    }
    std::this_thread::sleep_for(100ms);
    OllamaClientOptions options;
    options.base_url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    options.connect_timeout_ms = 300;
    options.max_retries = 0;
    OllamaClient client(options);
    GenerateRequest request;
    request.model = "gemma3-4b-16k";
    request.prompt = "hello";
    const auto start = Clock::now();
    auto result = client.Generate(request, nullptr, CancelToken{});
    const auto took = Clock::now() - start;
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::kUpstreamUnreachable) << result.error().message;
    EXPECT_LT(took, 2000ms);
    for (int fd : fillers) close(fd);
    close(listener);
}

// The client's watchdog ticks while calls run and sleeps once none has run for a second; a call
// must be watched from its start either way. Each call here is cancelled during a silent prefill,
// where only the watchdog can notice: the first after the watchdog fell asleep, the second while
// it still ticks.
TEST(OllamaClientWatchdog, CancelDuringPrefillIsNoticedWhetherTheWatchdogSleptOrTicked) {
    FakeOllama fake;
    FakeBehavior b;
    b.first_piece_delay_ms = 5000;
    fake.SetBehavior(b);
    OllamaClientOptions options;
    options.base_url = fake.url();
    OllamaClient client(options);
    GenerateRequest request;
    request.model = "gemma3-4b-16k";
    request.prompt = "hello";
    request.context_tokens = 16384;
    request.keep_alive = "24h";
    request.max_output_tokens = 100;
    std::this_thread::sleep_for(1300ms);  // past the watchdog's idle second
    for (int call = 0; call < 2; ++call) {
        CancelToken cancel;
        std::thread canceller([&] {
            std::this_thread::sleep_for(150ms);
            cancel.Cancel();
        });
        const auto start = Clock::now();
        auto result = client.Generate(request, nullptr, cancel);
        const auto took = Clock::now() - start;
        canceller.join();
        ASSERT_FALSE(result.ok()) << "call " << call;
        EXPECT_EQ(result.error().code, ErrorCode::kCancelled) << "call " << call << ": " << result.error().message;
        EXPECT_LT(took, 2000ms) << "call " << call << " ran on in a prefill of 5 s";
        EXPECT_TRUE(Eventually([&] { return fake.ClientDisconnects() >= call + 1; })) << "call " << call;
    }
}

TEST_F(ServiceTest, RetriesAreBoundedInCountAndTime) {
    config.ollama.max_retries = 20;
    config.ollama.retry_backoff_ms = 200;
    config.ollama.retry_budget_s = 1;
    config.degraded.extractive_fallback = false;
    FakeBehavior b;
    b.fail_status = 503;
    fake.SetBehavior(b);
    StartService();
    const auto start = Clock::now();
    auto res = PostJson({{"text", kReliabilityText}});
    const auto took = Clock::now() - start;
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;  // Ollama busy: come back later
    EXPECT_LT(took, 2000ms);
    EXPECT_LT(fake.Requests().size(), 8u) << "the retry budget stops retries long before max_retries";
    EXPECT_GE(fake.Requests().size(), 2u);
}

}  // namespace
}  // namespace summarizer::testing
