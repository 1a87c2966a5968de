// Upstream faults under concurrent clients: Ollama killed and restarted mid-stream, refusing
// connections, 500/503 answers, malformed NDJSON, stalls. Every request ends with its documented
// error or a retried success, none outlives its time-out, and the service recovers on its own.
#include <atomic>
#include <future>

#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const char* kFaultText =
    "The harbour authority announced a new ferry timetable on Monday. Boats will leave every twenty minutes "
    "from May onwards. The night service is extended until two in the morning on weekends.";

class FaultTest : public ServiceTest {
protected:
    void SetUp() override {
        ServiceTest::SetUp();
        config.ollama.first_token_timeout_s = 1;
        config.ollama.idle_timeout_s = 1;
        config.ollama.total_timeout_s = 5;
        config.ollama.retry_backoff_ms = 20;
        config.ollama.max_retries = 2;
        config.server.max_inflight = 8;
        config.degraded.extractive_fallback = false;  // the documented errors, not the fallback
        // An Ollama with a slot per client and no prefill gate: each request's own time-outs are
        // under test, not its wait behind the others' (with one slot the scheduler queues them).
        config.ollama.num_parallel = 8;
        config.scheduler.prefill_gate = false;
        config.vram.preload_hot_bucket = false;  // the fake's calls are the requests' own
    }

    struct Outcome {
        int status = 0;
        std::string code;
        std::chrono::milliseconds took{0};
    };

    // `n` concurrent requests; each outcome with its duration.
    std::vector<Outcome> Burst(int n) {
        std::vector<std::future<Outcome>> futures;
        for (int i = 0; i < n; ++i) {
            futures.push_back(std::async(std::launch::async, [&] {
                Outcome o;
                const auto start = Clock::now();
                auto res = PostJson({{"text", kFaultText}});
                o.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
                if (!res) return o;
                o.status = res->status;
                if (res->status != 200) o.code = json::parse(res->body)["error"]["code"];
                return o;
            }));
        }
        std::vector<Outcome> out;
        for (auto& f : futures) out.push_back(f.get());
        return out;
    }

    void ExpectRecovered() {
        fake.SetBehavior(FakeBehavior{});
        auto res = PostJson({{"text", kFaultText}});
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200) << res->body;
    }
};

struct FaultCase {
    std::string name;
    FakeBehavior behavior;
    int status;         // the documented answer (200: a retried success)
    std::string code;
};

class Faults : public FaultTest, public ::testing::WithParamInterface<FaultCase> {};

TEST_P(Faults, EveryRequestGetsItsDocumentedAnswerInTime) {
    const auto& c = GetParam();
    fake.SetBehavior(c.behavior);
    StartService();
    for (const auto& o : Burst(6)) {
        EXPECT_EQ(o.status, c.status) << o.code;
        EXPECT_EQ(o.code, c.code);
        // first-token 1 s x 3 attempts + backoff is the longest any fault here may take.
        EXPECT_LT(o.took, 5000ms);
    }
    ExpectRecovered();
}

FakeBehavior Fault(std::function<void(FakeBehavior&)> set) {
    FakeBehavior b;
    set(b);
    return b;
}

INSTANTIATE_TEST_SUITE_P(
    Upstream, Faults,
    ::testing::Values(
        // fail_count counts calls across the burst: 2 failures, 6 requests with 2 retries each.
        FaultCase{"Few500sAreRetried", Fault([](FakeBehavior& b) { b.fail_status = 500; b.fail_count = 2; }), 200, ""},
        FaultCase{"Few503sAreRetried", Fault([](FakeBehavior& b) { b.fail_status = 503; b.fail_count = 2; }), 200, ""},
        FaultCase{"Always500", Fault([](FakeBehavior& b) { b.fail_status = 500; }), 502, "upstream_error"},
        // Ollama's "server busy" (OLLAMA_MAX_QUEUE full) after the retries: come back later, not a bad gateway.
        FaultCase{"Always503", Fault([](FakeBehavior& b) { b.fail_status = 503; }), 503, "upstream_unavailable"},
        FaultCase{"MalformedNdjson", Fault([](FakeBehavior& b) { b.garbage_after_pieces = 1; }), 502, "upstream_error"},
        FaultCase{"ErrorLine", Fault([](FakeBehavior& b) { b.error_line_after_pieces = 1; }), 502, "upstream_error"},
        FaultCase{"DroppedConnection", Fault([](FakeBehavior& b) { b.drop_after_pieces = 1; }), 502, "upstream_error"},
        FaultCase{"NoFinalObject", Fault([](FakeBehavior& b) { b.omit_final = true; }), 502, "upstream_error"},
        FaultCase{"StallBeforeHeaders", Fault([](FakeBehavior& b) { b.headers_delay_ms = 4000; }), 504, "upstream_timeout"},
        FaultCase{"StallMidStream", Fault([](FakeBehavior& b) { b.piece_delay_ms = 4000; }), 504, "upstream_timeout"}),
    [](const auto& info) { return info.param.name; });

TEST_F(FaultTest, RefusedConnectionsAre503ThenRecoverWhenOllamaReturns) {
    config.ollama.circuit_open_ms = 300;
    fake.Stop();
    StartService();
    for (const auto& o : Burst(4)) {
        EXPECT_EQ(o.status, 503);
        EXPECT_EQ(o.code, "upstream_unavailable");
        EXPECT_LT(o.took, 3000ms);
    }
    fake.Restart();
    std::this_thread::sleep_for(400ms);  // past the circuit's open duration
    ExpectRecovered();
}

TEST_F(FaultTest, OllamaKilledMidStreamThenRestarted) {
    FakeBehavior slow;
    slow.reply = std::string(200, 'y');
    slow.piece_chars = 4;
    slow.piece_delay_ms = 50;  // ~2.5 s
    fake.SetBehavior(slow);
    config.server.max_inflight = 4;
    StartService();
    // Two streaming and two plain requests are in the middle of their generation when Ollama dies.
    std::vector<std::future<std::pair<int, std::string>>> clients;
    for (int i = 0; i < 4; ++i) {
        clients.push_back(std::async(std::launch::async, [&, i] {
            httplib::Client c("127.0.0.1", port);
            c.set_read_timeout(std::chrono::seconds(20));
            auto res = c.Post("/summarize", json{{"text", kFaultText}, {"stream", i % 2 == 0}}.dump(), "application/json");
            return res ? std::make_pair(res->status, res->body) : std::make_pair(0, std::string());
        }));
    }
    ASSERT_TRUE(fake.WaitForRequests(4, 5s));
    std::this_thread::sleep_for(300ms);
    const auto killed = Clock::now();
    fake.Stop();
    for (size_t i = 0; i < clients.size(); ++i) {
        auto [status, body] = clients[i].get();
        if (i % 2 == 0) {
            // The stream had started: it ends with an error event.
            EXPECT_EQ(status, 200);
            auto events = ParseSse(body);
            ASSERT_FALSE(events.empty());
            EXPECT_EQ(events.back().first, "error") << body;
            EXPECT_EQ(events.back().second["error"]["code"], "upstream_error");
        } else {
            EXPECT_EQ(status, 502) << body;
        }
    }
    EXPECT_LT(Clock::now() - killed, 3000ms);
    fake.Restart();
    ExpectRecovered();
}

}  // namespace
}  // namespace summarizer::testing
