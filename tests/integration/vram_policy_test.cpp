// The VRAM/keep_alive policy end to end: the real HttpServer against the fake Ollama with its GPU
// model (one runner per model file, load time, spill), sped up by its time_scale.
#include <string>

#include "eventually.hpp"
#include "service_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kParagraph =
    "The committee reviewed the quarterly figures in detail. Revenue rose by 4.2 percent compared with the same "
    "period last year, mostly because of stronger demand in the northern region, while costs grew more slowly than "
    "expected.\n\n";

std::string English(size_t chars) {
    std::string out;
    while (out.size() < chars) out += kParagraph;
    out.resize(chars);
    return out;
}

class VramPolicyTest : public ServiceTest {
protected:
    void SetUp() override {
        ServiceTest::SetUp();
        gpu.enabled = true;
        gpu.time_scale = 1000;  // a 3 s load takes 3 ms
        gpu.load_ms = 3000;
        gpu.output_tokens = 40;
        fake.SetGpuModel(gpu);
    }

    json GetJson(const std::string& path) {
        auto res = Http().Get(path.c_str());
        EXPECT_TRUE(res);
        if (!res) return json();
        EXPECT_EQ(res->status, 200) << res->body;
        return json::parse(res->body);
    }

    // Polls /status until `done(doc)` holds (background loads and /api/ps reads finish shortly).
    json StatusWhen(const std::function<bool(const json&)>& done) {
        json doc;
        for (int i = 0; i < 200; ++i) {
            doc = GetJson("/status");
            if (done(doc)) break;
            std::this_thread::sleep_for(10ms);
        }
        return doc;
    }

    void Summarize(const std::string& text, const std::string& route) {
        auto res = PostJson({{"text", text}});
        ASSERT_TRUE(res);
        ASSERT_EQ(res->status, 200) << res->body;
        EXPECT_EQ(json::parse(res->body)["route"], route);
    }

    static void ExpectHotLoad(const RecordedRequest& r) {
        EXPECT_EQ(r.body["model"], "gemma3-4b-16k");
        EXPECT_EQ(r.body["prompt"], "");
        EXPECT_EQ(r.body["keep_alive"], "24h");
        EXPECT_EQ(r.body["options"]["num_ctx"], 16384);
    }

    FakeGpuModel gpu;
    const std::string short_text = English(3000);
    const std::string long_text = English(80000);  // ~20K tokens: the 60k route under the static rule
};

TEST_F(VramPolicyTest, PreloadsTheHotBucketAtStartUpAndRestoresItAfter60kUse) {
    config.vram.preload_hot_bucket = true;
    config.vram.restore_idle_ms = 50;
    StartService();
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    ExpectHotLoad(fake.Requests().at(0));

    Summarize(long_text, "60k");
    ASSERT_TRUE(fake.WaitForRequests(3, 5s));
    auto requests = fake.Requests();
    EXPECT_EQ(requests.at(1).body["model"], "gemma3-4b-60k");
    EXPECT_EQ(requests.at(1).body["keep_alive"], "15m");
    EXPECT_EQ(requests.at(1).body["options"]["num_ctx"], 61440);
    ExpectHotLoad(requests.at(2));
    json status = StatusWhen([](const json& d) { return d["buckets"][0]["loaded"] == true; });
    EXPECT_EQ(status["buckets"][0]["loaded"], true);
    EXPECT_EQ(status["buckets"][1]["loaded"], false);
    EXPECT_EQ(status["vram"]["preloads"], 2);
    EXPECT_EQ(fake.Reloads(), 2);  // 16k -> 60k, and the restore 60k -> 16k

    // The next short request finds its bucket loaded: no reload on its path.
    Summarize(short_text, "16k");
    EXPECT_EQ(fake.Reloads(), 2);
}

TEST_F(VramPolicyTest, KeepAliveOfEachBucketOnEveryRequest) {
    StartService();
    Summarize(short_text, "16k");
    Summarize(long_text, "60k");
    auto requests = fake.Requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0].body["keep_alive"], "24h");
    EXPECT_EQ(requests[0].body["options"]["num_ctx"], 16384);
    EXPECT_EQ(requests[1].body["keep_alive"], "15m");
    EXPECT_EQ(requests[1].body["options"]["num_ctx"], 61440);
}

TEST_F(VramPolicyTest, StatusShowsConfigEstimatesAndTheMeasuredFootprint) {
    config.vram.preload_hot_bucket = true;
    StartService();
    json doc = StatusWhen([](const json& d) { return d["buckets"][0]["measured"].is_object(); });
    EXPECT_EQ(doc["policy"], "static");
    ASSERT_EQ(doc["buckets"].size(), 2u);
    const json& hot = doc["buckets"][0];
    EXPECT_EQ(hot["name"], "16k");
    EXPECT_EQ(hot["model"], "gemma3-4b-16k");
    EXPECT_EQ(hot["keep_alive"], "24h");
    EXPECT_EQ(hot["hot"], true);
    EXPECT_EQ(hot["loaded"], true);
    EXPECT_GT(hot["estimated_vram_mb"].get<double>(), 3000);
    EXPECT_EQ(hot["fits_vram_budget"], true);
    ASSERT_TRUE(hot["measured"].is_object()) << doc.dump(2);
    EXPECT_GT(hot["measured"]["size_bytes"].get<int64_t>(), 3'000'000'000);
    EXPECT_EQ(hot["measured"]["size_vram_bytes"], hot["measured"]["size_bytes"]);
    EXPECT_EQ(hot["measured"]["context_length"], 16384);
    EXPECT_FALSE(hot["measured"]["expires_at"].get<std::string>().empty());
    EXPECT_EQ(hot["spilling_to_cpu"], false);
    EXPECT_EQ(doc["buckets"][1]["keep_alive"], "15m");
    EXPECT_EQ(doc["buckets"][1]["loaded"], false);
    EXPECT_TRUE(doc["buckets"][1]["measured"].is_null());
    EXPECT_EQ(doc["vram"]["budget_mb"], 8188);
    EXPECT_EQ(doc["vram"]["usable_mb"], 8188 - 400);
    EXPECT_TRUE(doc["vram"]["warnings"].empty());
    EXPECT_EQ(doc["thresholds"]["hierarchical_threshold_chars"], 150000);
    EXPECT_EQ(doc["ollama"]["reachable"], true);
    ASSERT_EQ(doc["ollama"]["loaded"].size(), 1u);
    EXPECT_EQ(doc["ollama"]["loaded"][0]["context_length"], 16384);
    // An empty-prompt load reports no load_duration (as Ollama's): the reload cost is still the prior.
    EXPECT_EQ(doc["costs"]["reload_ms"], config.routing.cost_reload_ms);
    EXPECT_EQ(doc["costs"]["reloads_seen"], 0);
}

TEST_F(VramPolicyTest, StartUpCheckWarnsWhenABucketCannotFit) {
    config.ollama.num_parallel = 4;  // f16 KV for 4 x 61440 tokens
    StartService();
    json doc = GetJson("/status");
    ASSERT_EQ(doc["vram"]["warnings"].size(), 1u) << doc.dump(2);
    std::string warning = doc["vram"]["warnings"][0];
    EXPECT_NE(warning.find("bucket 60k"), std::string::npos) << warning;
    EXPECT_NE(warning.find("OLLAMA_KV_CACHE_TYPE=q8_0"), std::string::npos) << warning;
    EXPECT_EQ(doc["buckets"][1]["fits_vram_budget"], false);
    EXPECT_EQ(doc["buckets"][0]["fits_vram_budget"], true);
}

TEST_F(VramPolicyTest, SpillingBucketIsFlaggedInStatusAndCounted) {
    gpu.vram_budget_bytes = 4LL << 30;  // the 16K runner fits, the 60K one does not
    fake.SetGpuModel(gpu);
    StartService();
    Summarize(short_text, "16k");
    Summarize(long_text, "60k");
    json doc = GetJson("/status");
    const json& large = doc["buckets"][1];
    EXPECT_EQ(large["loaded"], true);
    EXPECT_EQ(large["spilling_to_cpu"], true) << doc.dump(2);
    EXPECT_EQ(large["spills_seen"], 1);
    EXPECT_LT(large["measured"]["size_vram_bytes"].get<int64_t>(), large["measured"]["size_bytes"].get<int64_t>());
    EXPECT_EQ(doc["buckets"][0]["spills_seen"], 0);
    auto metrics = Http().Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("summarizer_vram_spills_total{bucket=\"60k\"} 1"), std::string::npos)
        << metrics->body;
    // Seen again while still loaded: the same spill, not a new one.
    doc = GetJson("/status");
    EXPECT_EQ(doc["buckets"][1]["spills_seen"], 1);
}

TEST_F(VramPolicyTest, SwitchingNumCtxReloadsTheSharedRunner) {
    config.scheduler.ride_loaded_bucket = false;  // the third call asks for 16k again (no ride on 60k)
    config.routing.cost_reload_ms = 60000;        // the guess until a load_duration has been seen
    StartService();
    Summarize(short_text, "16k");
    Summarize(long_text, "60k");
    Summarize(short_text, "16k");
    EXPECT_EQ(fake.Reloads(), 2);
    EXPECT_EQ(fake.Loads(), 3);
    json doc = GetJson("/status");
    EXPECT_EQ(doc["costs"]["reloads_seen"], 3);  // every call that paid a load
    // Learned from load_duration, not the 60 s guess: about the fake's 3 s load (a wait that began
    // before the call reached it reads shorter, a late wake-up longer: x1000, the time_scale).
    const double reload_ms = doc["costs"]["reload_ms"].get<double>();
    EXPECT_GT(reload_ms, 2000);
    EXPECT_LT(reload_ms, 10000);
    auto metrics = Http().Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("summarizer_model_reloads_total 2"), std::string::npos) << metrics->body;
}

TEST_F(VramPolicyTest, CostPolicyPlanExplainsTheChoiceWithNumbers) {
    config.routing.policy = "cost";
    StartService();
    auto res = Http().Post("/summarize/plan", json{{"text", long_text}}.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    json plan = json::parse(res->body);
    std::string reason = plan["reason"];
    EXPECT_NE(reason.find("cost policy: 60k ~ "), std::string::npos) << reason;
    EXPECT_NE(reason.find(" vs map_reduce ~ "), std::string::npos) << reason;
    EXPECT_NE(reason.find("tok/s"), std::string::npos) << reason;
}

// One slot, four requests: A (short) is running when L1 (long), B (short) and L2 (long) arrive.
// Returns the models in the order their calls reached Ollama.
class AffinityTest : public VramPolicyTest {
protected:
    std::vector<std::string> RunInterleaved(const std::string& policy) {
        gpu.time_scale = 1;
        gpu.slots = 1;
        gpu.load_ms = 300;  // over the manager's 250 ms "a runner was loaded" line
        gpu.prefill_tokens_per_s = 200000;
        gpu.decode_tokens_per_s = 200;
        gpu.output_tokens = 100;  // each call ~0.5 s: long enough for the others to queue behind A
        fake.SetGpuModel(gpu);
        config.routing.policy = policy;
        config.ollama.num_parallel = 1;
        config.server.max_inflight = 8;  // all four reach the scheduler
        StartService();
        std::vector<std::thread> clients;
        answers.assign(4, json());
        auto send = [&](const std::string& text, const std::string& strategy) {
            const size_t index = clients.size();
            clients.emplace_back([this, text, strategy, index] {
                auto res = PostJson({{"text", text}, {"strategy", strategy}});
                EXPECT_TRUE(res && res->status == 200) << (res ? res->body : "no response");
                if (res && res->status == 200) answers[index] = json::parse(res->body);
            });
        };
        send(short_text, "auto");
        EXPECT_TRUE(fake.WaitForRequests(1, 5s));
        // Arrival order L1, B, L2, all while A runs: each is sent once the one before it waits for the
        // slot (the bucket's pending calls in /status count waiting calls), however slow the machine.
        struct Arrival {
            std::string text, strategy;
            size_t bucket;
            int pending;  // the bucket's pending calls once it waits
        };
        for (const auto& a : {Arrival{long_text, "single", 1, 1}, Arrival{short_text, "auto", 0, 2},
                              Arrival{long_text, "single", 1, 2}}) {
            send(a.text, a.strategy);
            EXPECT_TRUE(Eventually([&] { return GetJson("/status")["buckets"][a.bucket]["pending_calls"] == a.pending; }))
                << "bucket " << a.bucket << " never had " << a.pending << " pending call(s)";
        }
        for (auto& t : clients) t.join();
        std::vector<std::string> models;
        for (const auto& r : fake.Requests()) models.push_back(r.body["model"]);
        return models;
    }

    std::vector<json> answers;  // the clients' answers in the order sent: A, L1, B, L2
};

TEST_F(AffinityTest, StaticPolicyServesInArrivalOrderAndReloadsOnEverySwitch) {
    config.scheduler.ride_loaded_bucket = false;
    auto models = RunInterleaved("static");
    ASSERT_EQ(models.size(), 4u);
    EXPECT_EQ(models, (std::vector<std::string>{"gemma3-4b-16k", "gemma3-4b-60k", "gemma3-4b-16k", "gemma3-4b-60k"}));
    EXPECT_EQ(fake.Reloads(), 3);
}

// Issue #14 item 9 (the default, scheduler.ride_loaded_bucket): the same arrivals, and B, a short text
// that comes after L1 switched the runner to 60k, rides the loaded 60k bucket (its prompt fits it)
// instead of swapping back: one reload instead of three, arrival order kept, B's answer is its own.
TEST_F(AffinityTest, StaticPolicyWithRidingSwitchesOnce) {
    auto models = RunInterleaved("static");
    ASSERT_EQ(models.size(), 4u);
    EXPECT_EQ(models, (std::vector<std::string>{"gemma3-4b-16k", "gemma3-4b-60k", "gemma3-4b-60k", "gemma3-4b-60k"}));
    EXPECT_EQ(fake.Reloads(), 1);
    const auto requests = fake.Requests();
    EXPECT_EQ(requests[2].body["options"]["num_ctx"], 61440) << "a ride runs with the larger bucket's context";
    EXPECT_EQ(requests[2].body["keep_alive"], "15m") << "and its keep_alive";
    // B's answer: planned for the 16k route, written by the 60k bucket's model, and says so.
    EXPECT_EQ(answers[2]["route"], "16k");
    EXPECT_EQ(answers[2]["model"], "gemma3-4b-60k");
    EXPECT_EQ(answers[0]["model"], "gemma3-4b-16k");
    auto metrics = Http().Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("summarizer_upstream_rides_total{upstream=\"ollama\"} 1"), std::string::npos)
        << metrics->body;
}

// A ride never goes onto a bucket estimated over the VRAM budget (it would spill to the CPU): with a
// budget 1 MiB short of the 60K bucket's estimate, B asks for 16k as before.
TEST_F(AffinityTest, NoRideOntoABucketOverTheVramBudget) {
    Config one_slot = config;
    one_slot.ollama.num_parallel = 1;  // as RunInterleaved runs it
    config.vram.budget_mb = static_cast<int>(config.vram.reserve_mb + EstimateBucketVramMb(one_slot, one_slot.buckets[1])) - 1;
    auto models = RunInterleaved("static");
    ASSERT_EQ(models.size(), 4u);
    EXPECT_EQ(models, (std::vector<std::string>{"gemma3-4b-16k", "gemma3-4b-60k", "gemma3-4b-16k", "gemma3-4b-60k"}));
}

TEST_F(AffinityTest, CostPolicyRunsTheLoadedBucketsCallsFirstAndSwitchesOnce) {
    auto models = RunInterleaved("cost");
    ASSERT_EQ(models.size(), 4u);
    EXPECT_EQ(models, (std::vector<std::string>{"gemma3-4b-16k", "gemma3-4b-16k", "gemma3-4b-60k", "gemma3-4b-60k"}));
    EXPECT_EQ(fake.Reloads(), 1);
    json doc = GetJson("/status");
    EXPECT_EQ(doc["buckets"][1]["loaded"], true);
    EXPECT_EQ(doc["costs"]["reloads_seen"], 2);  // the first load of 16k, the switch to 60k
}

}  // namespace
}  // namespace summarizer::testing
