// Crash and restart of the real binary: `kill -9` of a `summarizer serve` during the map of a
// 600K-character job. On SQLite, a restarted process finishes the job; on PostgreSQL, a second
// replica takes it over when the lease runs out. Either way at most one call per upstream slot is
// redone (the calls in flight when it died), and the summary is the one an uninterrupted run
// gives. Start-up also stops, naming the file, when the SQLite file is damaged.
#include <signal.h>

#include <fstream>

#include "jobs_fixture.hpp"
#include "serve_process.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kSlots = 2;

// About 600,000 characters: 20 map chunks of the default 30,000.
std::string Text600K() { return MarkedText(1820); }

std::vector<std::string> ServeEnv(const std::string& database, const std::string& lease_ms = "1500") {
    return JobStoreEnv(database, kSlots, lease_ms, 30);
}

// Map calls that take a moment (about 0.3 s), so that a kill lands in the middle of the map.
FakeBehavior SlowMaps() {
    FakeBehavior b;
    b.piece_chars = 8;
    b.piece_delay_ms = 40;
    return b;
}

json GetJobFrom(ServeProcess& serve, const std::string& id) {
    auto res = serve.Client().Get("/jobs/" + id);
    if (!res || res->status != 200) return json::object();
    return json::parse(res->body);
}

json WaitDone(ServeProcess& serve, const std::string& id, std::chrono::seconds limit = 60s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    json job;
    while (std::chrono::steady_clock::now() < until) {
        job = GetJobFrom(serve, id);
        const std::string state = job.value("state", "");
        if (state == "done" || state == "failed" || state == "cancelled") break;
        std::this_thread::sleep_for(50ms);
    }
    return job;
}

// Waits until the job has committed at least `steps` map steps (it is in the middle of its map).
bool WaitForMapSteps(ServeProcess& serve, const std::string& id, int steps) {
    return Eventually(
        [&] {
            const json job = GetJobFrom(serve, id);
            return job.value("state", "") == "running" && job["progress"].value("level", -1) == 0 &&
                   job["progress"].value("done", 0) >= steps;
        },
        30000ms);
}

std::string Submit(ServeProcess& serve, const std::string& text) {
    auto res = serve.Client().Post("/jobs", json{{"text", text}}.dump(), "application/json");
    if (!res || res->status != 202) {
        ADD_FAILURE() << "POST /jobs: " << (res ? res->body : "no answer") << "\n" << serve.Log();
        return "";
    }
    return json::parse(res->body)["id"];
}

// The summary an uninterrupted run gives: the same text, no cache, on `serve`.
std::string UninterruptedSummary(ServeProcess& serve, const std::string& text) {
    httplib::Client client = serve.Client();
    client.set_read_timeout(60s);
    auto res =
        client.Post("/summarize", {{"Cache-Control", "no-cache"}}, json{{"text", text}}.dump(), "application/json");
    if (!res || res->status != 200) {
        ADD_FAILURE() << "reference summary: " << (res ? res->body : "no answer");
        return "";
    }
    return json::parse(res->body)["summary"];
}

TEST(JobsCrash, KilledDuringTheMapARestartedProcessFinishesTheJobRedoingOnlyTheCallsInFlight) {
    FakeOllama fake;
    fake.SetBehavior(SlowMaps());
    TempDir dir;
    const std::string database = dir.File("jobs.db");
    const std::string text = Text600K();
    std::string id;
    {
        ServeProcess first(fake.url(), ServeEnv(database, "60000"), {}, "crash-first");
        ASSERT_TRUE(first.WaitUp()) << first.Log();
        id = Submit(first, text);
        ASSERT_TRUE(WaitForMapSteps(first, id, 5)) << first.Log();
        first.Signal(SIGKILL);
        ASSERT_EQ(first.WaitExit(10s), 128 + SIGKILL);
    }
    // The lease (a minute) has not run out: the restarted process, alone with the file, ends it.
    ServeProcess second(fake.url(), ServeEnv(database, "60000"), {}, "crash-second");
    ASSERT_TRUE(second.WaitUp()) << second.Log();
    const json job = WaitDone(second, id, 60s);
    ASSERT_EQ(job.value("state", ""), "done") << job.dump() << "\n" << second.Log();
    EXPECT_EQ(job["attempts"], 2);
    const int chunks = job["result"]["chunks"];
    EXPECT_GE(chunks, 18);
    EXPECT_LE(chunks, 22);
    const int map_calls = MapCalls(fake);
    EXPECT_GE(map_calls, chunks);
    EXPECT_LE(map_calls - chunks, kSlots) << "at most one call per upstream slot is redone";
    std::printf("[ info ] %d chunks, %d map calls in all: %d redone after the kill\n", chunks, map_calls,
                map_calls - chunks);
    const int total_calls = static_cast<int>(fake.Requests().size());
    const std::string summary = job["result"]["summary"];
    EXPECT_EQ(UninterruptedSummary(second, text), summary) << "the same summary as an uninterrupted run";
    EXPECT_EQ(static_cast<int>(fake.Requests().size()), total_calls + chunks + 1);
}

TEST(JobsCrash, TwoReplicasOnPostgresTheOtherFinishesTheKilledOnesJob) {
    const char* url = PgTestUrl();
    if (url == nullptr) GTEST_SKIP() << kPgSkipMessage;
    PgSchema schema(url);
    FakeOllama fake;
    fake.SetBehavior(SlowMaps());
    const std::string text = Text600K();
    ServeProcess a(fake.url(), ServeEnv(schema.Url()), {}, "replica-a");
    ServeProcess b(fake.url(), ServeEnv(schema.Url()), {}, "replica-b");
    ASSERT_TRUE(a.WaitUp()) << a.Log();
    ASSERT_TRUE(b.WaitUp()) << b.Log();
    const std::string id = Submit(a, text);
    ASSERT_TRUE(WaitForMapSteps(b, id, 5)) << "any replica answers for any job\n" << a.Log() << b.Log();
    // Kill the replica that runs it (its pid is in the owner id); the other must finish it.
    const std::string owner = GetJobFrom(b, id).value("owner", "");
    const bool a_runs_it = owner.find("-" + std::to_string(a.pid()) + "-") != std::string::npos;
    const bool b_runs_it = owner.find("-" + std::to_string(b.pid()) + "-") != std::string::npos;
    ASSERT_TRUE(a_runs_it || b_runs_it) << owner;
    ServeProcess& victim = a_runs_it ? a : b;
    ServeProcess& survivor = a_runs_it ? b : a;
    victim.Signal(SIGKILL);
    ASSERT_EQ(victim.WaitExit(10s), 128 + SIGKILL);
    const json job = WaitDone(survivor, id, 60s);
    ASSERT_EQ(job.value("state", ""), "done") << job.dump() << "\n" << survivor.Log();
    EXPECT_EQ(job["attempts"], 2) << "taken over once";
    const std::string survivor_pid = "-" + std::to_string(survivor.pid()) + "-";
    EXPECT_NE(job.value("owner", "").find(survivor_pid), std::string::npos) << job.dump();
    const int chunks = job["result"]["chunks"];
    const int map_calls = MapCalls(fake);
    EXPECT_LE(map_calls - chunks, kSlots) << "at most one call per upstream slot is redone";
    std::printf("[ info ] %d chunks, %d map calls in all: %d redone after the takeover\n", chunks, map_calls,
                map_calls - chunks);
    EXPECT_EQ(UninterruptedSummary(survivor, text), job["result"]["summary"].get<std::string>());
}

TEST(JobsCrash, ADamagedSqliteFileStopsStartUpNamingIt) {
    FakeOllama fake;
    TempDir dir;
    const std::string database = dir.File("jobs.db");
    {
        std::ofstream out(database, std::ios::binary);
        out << std::string(8192, 'x');  // not a database
    }
    ServeProcess serve(fake.url(), ServeEnv(database), {}, "corrupt");
    const int code = serve.WaitExit(15s);
    EXPECT_NE(code, 0) << serve.Log();
    EXPECT_NE(code, -1) << "it must stop, not serve";
    const std::string log = serve.Log();
    EXPECT_NE(log.find(database), std::string::npos) << log;
    EXPECT_EQ(log.find("listening on"), std::string::npos) << log;
}

TEST(JobsCrash, AnUnwritableStoreMeans503ForJobsWhileSummariesGoOn) {
    FakeOllama fake;
    TempDir dir;
    {
        std::ofstream out(dir.File("not-a-directory"));
        out << "a file";
    }
    // The store's directory cannot be created (a file is in the way): unavailable, even for root.
    const std::string database = dir.File("not-a-directory") + "/jobs.db";
    ServeProcess serve(fake.url(), ServeEnv(database), {}, "unwritable");
    ASSERT_TRUE(serve.WaitUp()) << serve.Log();
    auto res = serve.Client().Post("/jobs", R"({"text": "A short text."})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
    const json error = json::parse(res->body)["error"];
    EXPECT_EQ(error["code"], "store_unavailable");
    EXPECT_NE(error["message"].get<std::string>().find("not-a-directory"), std::string::npos) << error.dump();
    EXPECT_FALSE(res->get_header_value("Retry-After").empty());
    res = serve.Client().Post("/summarize", R"({"text": "A short text."})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << "a summary does not need the store";
    EXPECT_EQ(json::parse(res->body)["cached"], false);
}

}  // namespace
}  // namespace summarizer::testing
