// Graceful shutdown of the real binary: on SIGTERM it stops accepting, lets running requests
// (streams included) finish within server.shutdown_grace_s, cancels the rest upstream (the fake
// Ollama sees the disconnect), and exits 0.
#include <signal.h>

#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "fake_ollama.hpp"
#include "serve_process.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;


// The binary with the shutdown grace `grace_s`, two Ollama slots (two generations run at once) and
// no preload (the fake's calls are the requests' own).
ServeProcess Serve(const std::string& ollama_url, int grace_s) {
    return ServeProcess(ollama_url,
                        {"SUMMARIZER_SHUTDOWN_GRACE_S=" + std::to_string(grace_s), "SUMMARIZER_OLLAMA_IDLE_TIMEOUT_S=30",
                         "OLLAMA_NUM_PARALLEL=2", "SUMMARIZER_PRELOAD_HOT_BUCKET=false"},
                        {"--config", SUMMARIZER_SOURCE_DIR "/config/summarizer.json"}, "shutdown");
}

const char* kShutdownText = "The museum reopens on Saturday after two years of work. Entry is free for the first week.";

// Asks for a summary as JSON in the background: (status, body), status 0 when nothing came back.
std::future<std::pair<int, std::string>> StartPlain(int port) {
    return std::async(std::launch::async, [port] {
        httplib::Client client("127.0.0.1", port);
        client.set_read_timeout(std::chrono::seconds(30));
        auto res = client.Post("/summarize", json{{"text", kShutdownText}}.dump(), "application/json");
        return res ? std::make_pair(res->status, res->body) : std::make_pair(0, std::string());
    });
}

// Streams a summary; `first_delta` is set once a delta arrived.
std::future<std::string> StartStream(int port, std::promise<void>& first_delta) {
    return std::async(std::launch::async, [port, &first_delta] {
        std::string body;
        bool signalled = false;
        StreamSummarize(port, {{"text", kShutdownText}, {"stream", true}}, body, [&](const std::string& so_far) {
            if (!signalled && so_far.find("event: delta") != std::string::npos) {
                signalled = true;
                first_delta.set_value();
            }
            return true;
        });
        if (!signalled) first_delta.set_value();
        return body;
    });
}

// A streamed and a JSON summary running: the stream has had its first delta, and both calls have
// reached `fake`.
struct InFlight {
    std::promise<void> first_delta;
    std::future<std::string> stream;                 // the SSE body
    std::future<std::pair<int, std::string>> plain;  // status (0: no answer) and body
};

void StartInFlight(int port, FakeOllama& fake, InFlight& in_flight) {
    in_flight.stream = StartStream(port, in_flight.first_delta);
    in_flight.plain = StartPlain(port);
    in_flight.first_delta.get_future().wait();
    ASSERT_TRUE(fake.WaitForRequests(2, 5s));
}

TEST(Shutdown, InflightStreamAndRequestFinishWithinGraceThenExit0) {
    FakeOllama fake;
    FakeBehavior slow;
    slow.reply = std::string(120, 'z');
    slow.piece_chars = 4;
    slow.piece_delay_ms = 50;  // ~1.5 s per summary
    fake.SetBehavior(slow);
    auto serve = Serve(fake.url(), 10);
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    InFlight in_flight;
    ASSERT_NO_FATAL_FAILURE(StartInFlight(serve.port(), fake, in_flight));
    const auto signalled = Clock::now();
    serve.Signal(SIGTERM);
    std::this_thread::sleep_for(200ms);
    // No new connections once shutting down.
    httplib::Client late("127.0.0.1", serve.port());
    late.set_connection_timeout(1s);
    auto refused = late.Get("/healthz");
    EXPECT_FALSE(refused) << "still accepting after SIGTERM";

    auto events = ParseSse(in_flight.stream.get());
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().first, "done") << "the stream must finish within the grace period";
    EXPECT_EQ(events.back().second["summary"], slow.reply);
    EXPECT_EQ(in_flight.plain.get().first, 200);
    EXPECT_EQ(serve.WaitExit(8s), 0) << serve.Log();
    EXPECT_LT(Clock::now() - signalled, 8s);
    EXPECT_EQ(fake.ClientDisconnects(), 0) << "nothing was cancelled";
}

TEST(Shutdown, RequestsOverTheGraceAreCancelledUpstream) {
    FakeOllama fake;
    FakeBehavior endless;
    endless.reply = std::string(4000, 'w');
    endless.piece_chars = 4;
    endless.piece_delay_ms = 20;  // ~20 s: far beyond the grace
    fake.SetBehavior(endless);
    auto serve = Serve(fake.url(), 1);
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    InFlight in_flight;
    ASSERT_NO_FATAL_FAILURE(StartInFlight(serve.port(), fake, in_flight));
    const auto signalled = Clock::now();
    serve.Signal(SIGTERM);
    auto events = ParseSse(in_flight.stream.get());
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().first, "error");
    EXPECT_EQ(events.back().second["error"]["code"], "upstream_unavailable");
    EXPECT_NE(events.back().second["error"]["message"].get<std::string>().find("shutting down"), std::string::npos);
    auto [status, body] = in_flight.plain.get();
    EXPECT_EQ(status, 503) << body;
    EXPECT_EQ(serve.WaitExit(6s), 0) << serve.Log();
    const auto took = Clock::now() - signalled;
    EXPECT_GE(took, 900ms) << "the grace period is honoured";
    EXPECT_LT(took, 6s);
    for (int i = 0; i < 200 && fake.ClientDisconnects() < 2; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(fake.ClientDisconnects(), 2) << "both generations were cancelled upstream";
}

TEST(Shutdown, IdleServerExitsAtOnce) {
    FakeOllama fake;
    auto serve = Serve(fake.url(), 30);
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    const auto start = Clock::now();
    serve.Signal(SIGINT);
    EXPECT_EQ(serve.WaitExit(8s), 0) << serve.Log();
    EXPECT_LT(Clock::now() - start, 7s);  // at most an idle keep-alive connection's time-out
}

}  // namespace
}  // namespace summarizer::testing
