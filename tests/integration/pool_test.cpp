// Several upstreams as one pool, end to end: the real HttpServer and Service against several fake
// servers (Ollama, vLLM and llama.cpp flavours) on real sockets. Placement spreads a map-reduce over
// every host and keeps document order; a call that failed before any text reached the client is
// retried on another host; a host killed mid-job costs only the calls it had in flight; a host that
// comes back is used again; every host down is the extractive fallback; /status, /metrics and
// /readyz show each upstream; OpenAI-compatible engines stream, count tokens, state their context
// and have their overflows re-planned.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "eventually.hpp"
#include "fake_ollama.hpp"
#include "service_fixture.hpp"
#include "summarizer/config.hpp"
#include "summarizer/http_server.hpp"
#include "summarizer/openai_client.hpp"
#include "summarizer/service.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kPoolText =
    "The city council met on Tuesday to discuss the new tram line. After a long debate it voted to fund the "
    "first section, which will connect the central station with the university campus. Construction starts "
    "next spring and should take two years. Residents along the route raised concerns about noise.";

std::string LongText(size_t chars) {
    std::string text;
    int i = 0;
    while (text.size() < chars) text += "[P" + std::to_string(i++) + "] " + std::string(kPoolText) + "\n\n";
    return text;
}

class PoolTest : public ::testing::Test {
protected:
    void SetUp() override {
        config.server.port = 0;
        config.ollama.retry_backoff_ms = 10;
        config.ollama.idle_timeout_s = 3;
        config.ollama.first_token_timeout_s = 5;
        config.vram.preload_hot_bucket = false;
        config.pool.probe_interval_ms = 200;
    }
    void TearDown() override {
        if (server) server->Stop();
        if (thread.joinable()) thread.join();
        server.reset();
        service.reset();
    }

    FakeOllama& AddFake(FakeApi api = FakeApi::kOllama) {
        fakes.push_back(std::make_unique<FakeOllama>());
        if (api != FakeApi::kOllama) fakes.back()->SetApi(api);
        return *fakes.back();
    }
    // Every fake in the pool, named u0, u1, ...
    void UseFakesAsPool(int slots = 1) {
        for (size_t i = 0; i < fakes.size(); ++i) {
            UpstreamConfig u;
            u.name = "u" + std::to_string(i);
            u.url = fakes[i]->url();
            u.slots = slots;
            // Which API each fake speaks: its /health answers only in the OpenAI-compatible modes.
            httplib::Client probe("127.0.0.1", fakes[i]->port());
            auto health = probe.Get("/health");
            u.kind = health && health->status == 200 ? "openai" : "ollama";
            config.upstreams.push_back(u);
        }
    }
    void Start() {
        service = std::make_unique<Service>(config);
        server = std::make_unique<HttpServer>(config, *service);
        auto bound = server->Bind();
        ASSERT_TRUE(bound.ok()) << bound.error().message;
        port = *bound;
        thread = std::thread([this] { server->Run(); });
    }
    httplib::Client Http() {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(std::chrono::seconds(60));
        return c;
    }
    json Summarize(const json& body) {
        auto res = Http().Post("/summarize", body.dump(), "application/json");
        EXPECT_TRUE(res);
        if (!res) return json();
        EXPECT_EQ(res->status, 200) << res->body;
        return json::parse(res->body, nullptr, false);
    }
    size_t GenerateCalls(const FakeOllama& fake) {
        size_t n = 0;
        for (const auto& r : fake.Requests()) n += r.path != "/api/generate" || !r.body.value("prompt", "").empty();
        return n;
    }

    std::vector<std::unique_ptr<FakeOllama>> fakes;
    Config config;
    std::unique_ptr<Service> service;
    std::unique_ptr<HttpServer> server;
    std::thread thread;
    int port = 0;
};

TEST_F(PoolTest, AMapReduceSpreadsOverEveryHostAndKeepsDocumentOrder) {
    for (int i = 0; i < 3; ++i) {
        FakeBehavior slow;
        slow.first_piece_delay_ms = 40;  // calls overlap
        AddFake().SetBehavior(slow);
    }
    UseFakesAsPool(/*slots=*/2);
    config.routing.hierarchical_chunk_max_chars = 2000;
    Start();
    const std::string text = LongText(30000);
    auto doc = Summarize({{"text", text}, {"strategy", "map_reduce"}});
    ASSERT_EQ(doc["route"], "map_reduce");
    EXPECT_GE(doc["chunks"].get<int>(), 6);
    size_t total = 0;
    for (auto& f : fakes) {
        EXPECT_GE(GenerateCalls(*f), 2u) << f->url() << " took no part";
        total += GenerateCalls(*f);
    }
    EXPECT_EQ(total, static_cast<size_t>(doc["usage"]["upstream_requests"].get<int>()));
    // The final reduce saw every chunk's partial, in document order (the fake quotes each chunk's start).
    std::string final_prompt;
    for (auto& f : fakes) {
        for (const auto& r : f->Requests()) {
            const std::string prompt = r.body.value("prompt", "");
            if (prompt.find("[P") != std::string::npos && r.body.value("options", json::object()).value("num_predict", 0) ==
                                                                config.generation.num_predict) {
                final_prompt = prompt;
            }
        }
    }
    ASSERT_FALSE(final_prompt.empty());
    int previous = -1, seen = 0;
    static const std::regex marker_re("\\[P(\\d+)\\]");
    for (auto it = std::sregex_iterator(final_prompt.begin(), final_prompt.end(), marker_re); it != std::sregex_iterator();
         ++it) {
        const int marker = std::stoi((*it)[1]);
        EXPECT_GT(marker, previous) << "partials out of document order";
        previous = marker;
        ++seen;
    }
    EXPECT_GE(seen, 6);
}

TEST_F(PoolTest, ACallThatFailsOnOneHostIsRetriedOnAnother) {
    FakeBehavior broken;
    broken.fail_status = 500;
    AddFake().SetBehavior(broken);
    AddFake();
    UseFakesAsPool();
    config.ollama.max_retries = 0;  // no second try on the same host: only the failover
    Start();
    for (int i = 0; i < 4; ++i) {
        auto doc = Summarize({{"text", kPoolText}});
        EXPECT_EQ(doc["route"], "16k");
    }
    EXPECT_GE(fakes[0]->Requests().size(), 1u);
    EXPECT_EQ(fakes[1]->Requests().size(), 4u);
    auto status = json::parse(Http().Get("/status")->body);
    ASSERT_EQ(status["upstreams"].size(), 2u);
    EXPECT_GE(status["upstreams"][0]["failovers"].get<int>(), 1);
    EXPECT_EQ(status["upstreams"][0]["name"], "u0");
    const std::string metrics = Http().Get("/metrics")->body;
    EXPECT_NE(metrics.find("summarizer_upstream_failovers_total{upstream=\"u0\"}"), std::string::npos);
    EXPECT_NE(metrics.find("summarizer_upstream_calls_total{upstream=\"u1\",outcome=\"ok\"} 4"), std::string::npos)
        << metrics;
}

// Text that reached the client cannot be taken back: a streamed summary whose host breaks off after
// some pieces ends with an error event, and no other host is asked to start it again.
TEST_F(PoolTest, ACallWhoseTextReachedTheClientIsNotRetriedElsewhere) {
    FakeBehavior drops;
    drops.piece_chars = 4;
    drops.drop_after_pieces = 3;
    AddFake().SetBehavior(drops);
    AddFake().SetBehavior(drops);
    UseFakesAsPool();
    config.ollama.max_retries = 0;
    Start();
    auto res = Http().Post("/summarize", json{{"text", kPoolText}, {"stream", true}}.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_NE(res->body.find("event: delta"), std::string::npos) << res->body;
    EXPECT_NE(res->body.find("event: error"), std::string::npos) << res->body;
    EXPECT_EQ(res->body.find("event: done"), std::string::npos) << res->body;
    EXPECT_EQ(fakes[0]->Requests().size() + fakes[1]->Requests().size(), 1u) << "tried once, on one host";
}

TEST_F(PoolTest, AHostThatIsDownIsAvoidedAndUsedAgainWhenItComesBack) {
    AddFake();
    AddFake();
    UseFakesAsPool();
    fakes[0]->Stop();
    Start();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(Summarize({{"text", kPoolText}})["route"], "16k");
    EXPECT_EQ(fakes[1]->Requests().size(), 3u);
    ASSERT_TRUE(Eventually([&] {
        auto s = json::parse(Http().Get("/status")->body);
        return s["upstreams"][0]["health"] == "avoided";
    }, 3000ms));
    auto ready = Http().Get("/readyz");
    EXPECT_EQ(ready->status, 200) << "one upstream serves every bucket: " << ready->body;
    EXPECT_NE(json::parse(ready->body)["upstreams"]["u0"].get<std::string>().find("cannot connect"), std::string::npos)
        << ready->body;

    fakes[0]->Restart();
    ASSERT_TRUE(Eventually([&] {
        auto s = json::parse(Http().Get("/status")->body);
        return s["upstreams"][0]["health"] == "up";
    }, 3000ms)) << "the probe sees it back";
    // Concurrent calls land on both hosts again.
    std::vector<std::future<json>> calls;
    for (int i = 0; i < 6; ++i) calls.push_back(std::async(std::launch::async, [&] { return Summarize({{"text", kPoolText}}); }));
    for (auto& c : calls) EXPECT_EQ(c.get()["route"], "16k");
    EXPECT_GE(fakes[0]->Requests().size(), 1u) << "the host that came back takes calls again";
}

TEST_F(PoolTest, EveryHostDownIsTheExtractiveFallback) {
    AddFake();
    AddFake();
    UseFakesAsPool();
    config.ollama.max_retries = 0;
    config.ollama.circuit_failure_threshold = 1;
    config.ollama.circuit_open_ms = 60000;
    fakes[0]->Stop();
    fakes[1]->Stop();
    Start();
    auto first = Summarize({{"text", kPoolText}});
    EXPECT_EQ(first["route"], "extractive");
    EXPECT_EQ(first["degraded"], true);
    auto second = Summarize({{"text", kPoolText}});  // both circuits open: not even tried
    EXPECT_EQ(second["route"], "extractive");
    EXPECT_NE(second["reason"].get<std::string>().find("every upstream"), std::string::npos) << second["reason"];
    auto ready = Http().Get("/readyz");
    EXPECT_EQ(ready->status, 503);
    auto doc = json::parse(ready->body);
    EXPECT_EQ(doc["circuit"], "open");
    EXPECT_TRUE(doc.contains("degraded"));
    EXPECT_NE(Http().Get("/metrics")->body.find("summarizer_circuit_state 1\n"), std::string::npos);
}

TEST_F(PoolTest, AHostKilledMidMapReduceCostsOnlyTheCallsItHadInFlight) {
    FakeBehavior slow;
    slow.piece_chars = 4;
    slow.piece_delay_ms = 15;  // a partial streams for ~0.3 s
    for (int i = 0; i < 2; ++i) AddFake().SetBehavior(slow);
    UseFakesAsPool(/*slots=*/2);
    config.routing.hierarchical_chunk_max_chars = 1500;
    config.scheduler.prefill_gate = false;
    Start();
    const std::string text = LongText(24000);
    const json body = {{"text", text}, {"strategy", "map_reduce"}};
    auto plan = json::parse(Http().Post("/summarize/plan", body.dump(), "application/json")->body);
    auto job = std::async(std::launch::async, [&] { return Summarize(body); });
    ASSERT_TRUE(fakes[0]->WaitForRequests(4, 10s));
    fakes[0]->Stop();
    auto doc = job.get();
    ASSERT_EQ(doc["route"], "map_reduce") << doc.dump();
    EXPECT_EQ(doc["chunks"], plan["chunks"].size()) << "the same chunks as planned";
    // Every call the job needed was answered once; the attempts beyond those are the calls the killed
    // host had in flight (a refused connection reaches no server and costs nothing): at most its slots.
    const int needed = doc["usage"]["upstream_requests"];
    const int attempts = static_cast<int>(GenerateCalls(*fakes[0]) + GenerateCalls(*fakes[1]));
    EXPECT_GE(attempts - needed, 1) << "the kill hit calls in flight";
    EXPECT_LE(attempts - needed, 2) << "calls redone: at most the killed host's 2 slots";
    auto status = json::parse(Http().Get("/status")->body);
    EXPECT_EQ(status["upstreams"][0]["health"], "avoided");
}

// ---- OpenAI-compatible engines ----------------------------------------------------------------

TEST_F(PoolTest, AVllmUpstreamStreamsStatesItsContextAndCountsTokens) {
    FakeOllama& vllm = AddFake(FakeApi::kVllm);
    vllm.SetModels({{"google/gemma-3-4b-it", 32768}});
    UseFakesAsPool(/*slots=*/4);
    Start();
    auto doc = Summarize({{"text", kPoolText}});
    EXPECT_EQ(doc["route"], "16k");
    EXPECT_GT(doc["usage"]["prompt_tokens"].get<int>(), 0) << "from the usage chunk";
    EXPECT_GT(doc["usage"]["completion_tokens"].get<int>(), 0);
    const auto requests = vllm.Requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].path, "/v1/chat/completions");
    EXPECT_EQ(requests[0].body["model"], "google/gemma-3-4b-it") << "the model it serves, from /v1/models";
    EXPECT_EQ(requests[0].body["stream_options"]["include_usage"], true);
    EXPECT_GE(vllm.TokenizeCalls(), 1);
    EXPECT_NE(doc["reason"].get<std::string>().find("counted by the engine's tokenizer"), std::string::npos)
        << doc["reason"];
    // The 60k bucket is planned with the engine's 32768, not its configured 61440.
    auto status = json::parse(Http().Get("/status")->body);
    const auto& u = status["upstreams"][0];
    EXPECT_EQ(u["kind"], "openai");
    EXPECT_EQ(u["engine"], "vllm");
    EXPECT_EQ(u["context_tokens"], 32768);
    EXPECT_EQ(u["model"], "google/gemma-3-4b-it");
    EXPECT_EQ(u["buckets"][1]["num_ctx"], 32768);
    EXPECT_GE(status["token_counts"]["engine"].get<int>(), 1);
}

// A summary the engine stopped at its length limit says so in its reason, whichever engine wrote it.
TEST_F(PoolTest, ASummaryStoppedAtItsLengthLimitSaysSo) {
    for (FakeApi api : {FakeApi::kOllama, FakeApi::kVllm, FakeApi::kLlamaCpp}) {
        SCOPED_TRACE(static_cast<int>(api));
        TearDown();
        fakes.clear();
        config.upstreams.clear();
        FakeBehavior wordy;
        wordy.reply = "A reply that goes on for many more than the eight tokens this request allows for its summary.";
        AddFake(api).SetBehavior(wordy);
        UseFakesAsPool(/*slots=*/2);
        Start();
        auto cut = Summarize({{"text", kPoolText}, {"max_tokens", 8}});
        EXPECT_NE(cut["reason"].get<std::string>().find("finish_reason \"length\": max_tokens 8"), std::string::npos)
            << cut["reason"];
        auto whole = Summarize({{"text", kPoolText}});
        EXPECT_EQ(whole["reason"].get<std::string>().find("cut off"), std::string::npos) << whole["reason"];
    }
}

TEST_F(PoolTest, OverflowsInEachEnginesWordsAreReplannedAsOllamasAre) {
    for (FakeApi api : {FakeApi::kVllm, FakeApi::kLlamaCpp}) {
        SCOPED_TRACE(api == FakeApi::kVllm ? "vllm" : "llama.cpp");
        fakes.clear();
        config.upstreams.clear();
        FakeOllama& engine = AddFake(api);
        engine.SetModels({{"google/gemma-3-4b-it", 16384}});
        FakeBehavior dense;
        dense.token_scale = 1.5;  // the engine's tokenizer counts 50% more than the service estimates
        engine.SetBehavior(dense);
        UseFakesAsPool();
        config.pool.exact_tokens = false;  // estimates only: the refusal must be re-planned
        Start();
        auto doc = Summarize({{"text", LongText(50000)}});
        // The engine's refusal stated the prompt's size: the new estimate follows it (x1.5 + 0.1 at least).
        EXPECT_NE(doc["reason"].get<std::string>().find("re-planned after the engine reported a prompt over num_ctx"),
                  std::string::npos)
            << doc["reason"];
        EXPECT_NE(doc["reason"].get<std::string>().find("after an overflow"), std::string::npos) << doc["reason"];
        EXPECT_EQ(doc["route"], "map_reduce");
        TearDown();
    }
}

TEST_F(PoolTest, ALlamaCppUpstreamReportsTimingsLengthAndLoading) {
    FakeOllama& llama = AddFake(FakeApi::kLlamaCpp);
    llama.SetModels({{"gemma-3-4b-it-Q4_K_M", 16384}});
    FakeGpuModel gpu;
    gpu.slots = 3;
    llama.SetGpuModel(gpu);  // not enabled: /props reports the slots
    OpenAiClientOptions o;
    o.name = "llama";
    o.url = llama.url();
    OpenAiClient client(o);
    auto info = client.Discover();
    ASSERT_TRUE(info.ok()) << info.error().message;
    EXPECT_EQ(info->flavor, OpenAiFlavor::kLlamaCpp);
    EXPECT_EQ(info->context_tokens, 16384);
    EXPECT_EQ(info->slots, 3);
    EXPECT_EQ(*client.CountTokens("gemma-3-4b-it-Q4_K_M", "one two three four"), CountFakeTokens("one two three four"));

    GenerateRequest g;
    g.model = "gemma-3-4b-it-Q4_K_M";
    g.prompt = "Summarize this.";
    g.max_output_tokens = 3;
    FakeBehavior b;
    b.reply = "A reply that is longer than three tokens of output.";
    b.first_piece_delay_ms = 30;
    llama.SetBehavior(b);
    std::string streamed;
    auto r = client.Generate(g, [&](std::string_view piece) { streamed += piece; }, CancelToken());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->finish_reason, "length");
    EXPECT_EQ(r->output_tokens, 3);
    EXPECT_EQ(r->text, streamed);
    EXPECT_GT(r->prefill.count(), 0) << "from llama.cpp's timings";
    EXPECT_GT(r->prompt_tokens, 0);

    // A prompt that fills the slot: llama.cpp stops at its context with "length".
    g.max_output_tokens = 0;
    g.prompt = std::string(4 * 16370, 'a');
    b.reply = std::string(400, 'b');
    llama.SetBehavior(b);
    auto full = client.Generate(g, {}, CancelToken());
    ASSERT_TRUE(full.ok()) << full.error().message;
    EXPECT_EQ(full->finish_reason, "length");

    // Loading: /health answers 503, which is not ready.
    b.health_status = 503;
    llama.SetBehavior(b);
    auto health = client.Health();
    ASSERT_FALSE(health.ok());
    EXPECT_EQ(health.error().code, ErrorCode::kUpstreamUnavailable);
}

TEST_F(PoolTest, ClosingTheStreamCancelsTheEnginesRequest) {
    FakeOllama& vllm = AddFake(FakeApi::kVllm);
    FakeBehavior slow;
    slow.reply = std::string(400, 'y');
    slow.piece_chars = 4;
    slow.piece_delay_ms = 20;
    vllm.SetBehavior(slow);
    OpenAiClientOptions o;
    o.name = "vllm";
    o.url = vllm.url();
    OpenAiClient client(o);
    ASSERT_TRUE(client.Discover().ok());
    GenerateRequest g;
    g.model = "google/gemma-3-4b-it";
    g.prompt = "Summarize.";
    CancelToken cancel;
    int pieces = 0;
    const auto start = Clock::now();
    auto r = client.Generate(g, [&](std::string_view) {
        if (++pieces == 3) cancel.Cancel();
    }, cancel);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kCancelled);
    EXPECT_LT(Clock::now() - start, 1500ms);
    EXPECT_TRUE(Eventually([&] { return vllm.ClientDisconnects() >= 1; }, 2000ms));
}

TEST_F(PoolTest, AnOllamaAndAVllmHostServeTheirOwnBuckets) {
    AddFake();                              // u0: Ollama, 16k only
    FakeOllama& vllm = AddFake(FakeApi::kVllm);  // u1: vLLM, 60k only
    vllm.SetModels({{"google/gemma-3-4b-it", 61440}});
    UseFakesAsPool();
    config.upstreams[0].buckets = {"16k"};
    config.upstreams[1].buckets = {"60k"};
    Start();
    EXPECT_EQ(Summarize({{"text", kPoolText}})["route"], "16k");
    EXPECT_EQ(Summarize({{"text", LongText(80000)}})["route"], "60k");
    EXPECT_EQ(fakes[0]->Requests().size(), 1u);
    EXPECT_EQ(vllm.Requests().size(), 1u);
    auto ready = json::parse(Http().Get("/readyz")->body);
    EXPECT_EQ(ready["status"], "ready") << ready.dump();
    // The vLLM host gone: 60k has no upstream, so not ready (16k still is served).
    vllm.Stop();
    auto not_ready = Http().Get("/readyz");
    EXPECT_EQ(not_ready->status, 503);
    EXPECT_NE(json::parse(not_ready->body)["reason"].get<std::string>().find("60k"), std::string::npos)
        << not_ready->body;
}

}  // namespace
}  // namespace summarizer::testing
