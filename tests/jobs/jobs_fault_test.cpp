// Faults of the job store while the service runs: a locked SQLite file and a full disk give 503 to
// new jobs (and POST /summarize still answers, without the store); a PostgreSQL server that is
// restarted gives 503 while it is down, and the job that was running resumes from its committed
// steps once it is back.
#include <sqlite3.h>

#include <memory>

#include "jobs_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST_F(JobsTest, ALockedDatabaseIs503ForNewJobsUntilTheLockGoes) {
    JobStoreOptions options;
    options.busy_timeout = 200ms;
    auto opened = OpenSqliteJobStore(db_path, options);
    ASSERT_TRUE(opened.ok());
    StartJobs(std::move(opened.value()));
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db_path.c_str(), &raw), SQLITE_OK);
    // Closed however the test ends (an assertion that returns early must not leak the handle).
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> holder_handle(raw, &sqlite3_close);
    sqlite3* holder = holder_handle.get();
    // The service's own runners open short transactions on the file too (claims, retention): the
    // lock is taken the way any other writer takes it, waiting for theirs to end.
    sqlite3_busy_timeout(holder, 5000);
    ASSERT_EQ(sqlite3_exec(holder, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
    auto res = Submit({{"text", "A text while the file is locked."}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "store_unavailable");
    EXPECT_EQ(res->get_header_value("Retry-After"), "5");
    // A summary does not need the store.
    res = PostJson({{"text", "A text while the file is locked."}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    ASSERT_EQ(sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    holder_handle.reset();
    res = Submit({{"text", "A text once the lock is gone."}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 202) << res->body;
}

TEST_F(JobsTest, AFullDiskIs503ForANewJobAndNothingIsCorrupted) {
    JobStoreOptions options;
    options.sqlite_max_page_count = 64;  // 256 KiB with 4 KiB pages: a small, full file system
    auto opened = OpenSqliteJobStore(db_path, options);
    ASSERT_TRUE(opened.ok());
    StartJobs(std::move(opened.value()));
    const std::string small = SubmitOk({{"text", "A short text that fits."}});
    ASSERT_EQ(WaitFinished(small)["state"], "done");
    auto res = Submit({{"text", MarkedText(1500)}});  // ~500 KB
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "store_unavailable");
    // What was there is intact and still answers.
    EXPECT_EQ(GetJob(small)["state"], "done");
    StopAll();
    auto reopened = OpenSqliteJobStore(db_path);  // its quick_check passes
    ASSERT_TRUE(reopened.ok()) << reopened.error().message;
}

TEST_F(JobsTest, PostgresRestartedIs503MeanwhileAndTheRunningJobResumesFromItsCommittedSteps) {
    if (PgTestUrl() == nullptr) GTEST_SKIP() << kPgSkipMessage;
    PrivatePgCluster cluster;
    FakeBehavior slow;
    slow.piece_chars = 8;
    slow.piece_delay_ms = 40;
    fake.SetBehavior(slow);
    JobStoreOptions options;
    options.busy_timeout = 500ms;
    options.pg_connect_timeout = 2s;
    auto opened = OpenPgJobStore(cluster.url(), options);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    StartJobs(std::move(opened.value()));
    const std::string text = MarkedText(60);
    const std::string id = SubmitOk({{"text", text}, {"strategy", "map_reduce"}});
    ASSERT_TRUE(Eventually([&] { return GetJob(id)["progress"].value("done", 0) >= 3; }, 20000ms));
    cluster.Halt();
    auto res = Submit({{"text", "A text while PostgreSQL is down."}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503) << res->body;
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "store_unavailable");
    res = Http().Get("/jobs/" + id);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    std::this_thread::sleep_for(2s);
    cluster.Start();
    const json job = WaitFinished(id, 60s);
    ASSERT_EQ(job["state"], "done") << job.dump();
    const int chunks = job["result"]["chunks"];
    const int maps = MapCalls(fake);
    EXPECT_LE(maps - chunks, 2 * config.ollama.num_parallel) << "committed steps were kept";
    std::printf("[ info ] %d chunks, %d map calls in all: %d redone after the restart\n", chunks, maps, maps - chunks);
    // The same summary as a run that never met the restart.
    fake.ClearRequests();
    auto reference = PostJson({{"text", text}, {"strategy", "map_reduce"}}, {{"Cache-Control", "no-cache"}});
    ASSERT_TRUE(reference);
    ASSERT_EQ(reference->status, 200);
    EXPECT_EQ(json::parse(reference->body)["summary"], job["result"]["summary"]);
}

}  // namespace
}  // namespace summarizer::testing
