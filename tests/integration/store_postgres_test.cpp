// The PostgreSQL store's faults, against a real server: a server that is not there, restarted
// mid-use, a backend killed with a call in flight, a lock held beyond the lock timeout, replicas
// claiming past each other's locks. A call that fails is reported as unavailable and changes
// nothing; the next call reconnects; committed steps survive.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "eventually.hpp"
#include "free_port.hpp"
#include "store_test_env.hpp"
#include "summarizer/job_store.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;
using testing::MakeJob;
using testing::MakeStep;
using testing::PgAdmin;
using testing::PgSchema;
using testing::PgTestUrl;
using testing::PrivatePgCluster;

class PgJobStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (PgTestUrl() == nullptr) GTEST_SKIP() << testing::kPgSkipMessage;
        schema_ = std::make_unique<PgSchema>(PgTestUrl());
    }

    std::unique_ptr<JobStore> Open(const JobStoreOptions& options = {}) {
        StoreResult<std::unique_ptr<JobStore>> store = OpenPgJobStore(schema_->Url(), options);
        EXPECT_TRUE(store.ok()) << store.error().message;
        return store.ok() ? std::move(store).value() : nullptr;
    }

    // A running job of owner-a with one committed step.
    std::string RunningJobWithAStep(JobStore& store) {
        StoreResult<Submission> submitted = store.Submit(MakeJob("hash-1"));
        EXPECT_TRUE(submitted.ok());
        const std::string id = submitted->job.id;
        EXPECT_TRUE(store.Claim(id, "owner-a", 60s).ok());
        EXPECT_TRUE(store.RecordStep(id, "owner-a", MakeStep("map", 0, 0, "committed")).ok());
        return id;
    }

    // The table as the admin connection (no search_path of the store) names it.
    std::string Table(const std::string& name) const { return schema_->name() + "." + name; }

    // Backends of the store under test (its connections carry the schema's name).
    std::string StoreBackends() const {
        return "SELECT pid FROM pg_stat_activity WHERE application_name = '" + schema_->name() + "'";
    }

    std::unique_ptr<PgSchema> schema_;
};

TEST(PgJobStoreUnreachable, AServerThatIsNotThereIsUnavailableWithoutThePassword) {
    const std::string url = "postgresql://summarizer:s3cret@127.0.0.1:" + std::to_string(testing::FreePort()) + "/jobs";
    JobStoreOptions options;
    options.pg_connect_timeout = 2s;
    StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(url, options);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.error().kind, StoreFailure::kUnavailable);
    EXPECT_NE(store.error().message.find("cannot connect"), std::string::npos) << store.error().message;
    EXPECT_NE(store.error().message.find("127.0.0.1"), std::string::npos) << store.error().message;
    EXPECT_EQ(store.error().message.find("s3cret"), std::string::npos) << store.error().message;
}

TEST_F(PgJobStoreTest, DescribeNamesTheServerWithoutThePassword) {
    // Trust authentication ignores the password; Describe must not repeat it.
    std::string url = schema_->Url();
    url.replace(url.find("postgres@"), 9, "postgres:s3cret@");
    StoreResult<std::unique_ptr<JobStore>> store = OpenPgJobStore(url);
    ASSERT_OK(store);
    const std::string described = (*store)->Describe();
    EXPECT_TRUE(described.starts_with("postgresql://postgres@127.0.0.1:")) << described;
    EXPECT_EQ(described.find("s3cret"), std::string::npos) << described;
}

TEST_F(PgJobStoreTest, KilledBackendsAreReplacedWithoutFailingACall) {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    const std::string id = RunningJobWithAStep(*store);
    const std::string killed =
        schema_->admin().Exec("SELECT count(pg_terminate_backend(pid)) FROM (" + StoreBackends() + ") AS b");
    ASSERT_NE(killed, "0");
    ASSERT_TRUE(Eventually(
        [&] { return schema_->admin().Exec("SELECT count(*) FROM (" + StoreBackends() + ") AS b") == "0"; }));

    // The pooled connection is dead; nothing had been sent on it, so the call reconnects.
    StoreResult<std::vector<Step>> steps = store->ListSteps(id);
    ASSERT_OK(steps);
    ASSERT_EQ(steps->size(), 1u);
    EXPECT_EQ((*steps)[0].output, "committed");
    ASSERT_OK(store->RecordStep(id, "owner-a", MakeStep("map", 0, 1)));
}

TEST_F(PgJobStoreTest, ACallWhoseBackendDiesIsUnavailableAndChangesNothing) {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    const std::string id = RunningJobWithAStep(*store);

    // Hold the job's row so the store's RecordStep waits inside its transaction, then kill the
    // backend that runs it.
    PgAdmin holder(PgTestUrl());
    holder.Exec("BEGIN");
    holder.Exec("SELECT 1 FROM " + Table("jobs") + " WHERE id = '" + id + "' FOR UPDATE");
    auto in_flight = std::async(std::launch::async, [&] {
        return store->RecordStep(id, "owner-a", MakeStep("map", 0, 1, "never committed"), NewEvent{"step", "{}"});
    });
    ASSERT_TRUE(Eventually(
        [&] {
            return schema_->admin().Exec("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                                         schema_->name() + "' AND wait_event_type = 'Lock'") == "1";
        },
        10s));
    schema_->admin().Exec("SELECT pg_terminate_backend(pid) FROM (" + StoreBackends() + ") AS b");
    StoreResult<int64_t> failed = in_flight.get();
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.error().kind, StoreFailure::kUnavailable) << failed.error().message;
    holder.Exec("ROLLBACK");

    StoreResult<std::vector<Step>> steps = store->ListSteps(id);
    ASSERT_OK(steps);
    ASSERT_EQ(steps->size(), 1u) << "the killed transaction left nothing";
    StoreResult<std::vector<Event>> events = store->ListEvents(id, 0);
    ASSERT_OK(events);
    EXPECT_TRUE(events->empty());
    StoreResult<int64_t> seq =
        store->RecordStep(id, "owner-a", MakeStep("map", 0, 1, "committed now"), NewEvent{"step", "{}"});
    ASSERT_OK(seq);
    EXPECT_EQ(*seq, 1) << "the failed call took no seq";
}

TEST_F(PgJobStoreTest, ALockHeldBeyondTheLockTimeoutIsUnavailable) {
    JobStoreOptions options;
    options.busy_timeout = 200ms;
    std::unique_ptr<JobStore> store = Open(options);
    ASSERT_NE(store, nullptr);
    const std::string id = RunningJobWithAStep(*store);
    PgAdmin holder(PgTestUrl());
    holder.Exec("BEGIN");
    holder.Exec("SELECT 1 FROM " + Table("jobs") + " WHERE id = '" + id + "' FOR UPDATE");

    const auto started = std::chrono::steady_clock::now();
    StoreResult<int64_t> blocked = store->RecordStep(id, "owner-a", MakeStep("map", 0, 1));
    const auto waited = std::chrono::steady_clock::now() - started;
    ASSERT_FALSE(blocked.ok());
    EXPECT_EQ(blocked.error().kind, StoreFailure::kUnavailable) << blocked.error().message;
    EXPECT_NE(blocked.error().message.find("55P03"), std::string::npos) << blocked.error().message;
    EXPECT_GE(waited, 190ms);
    EXPECT_LT(waited, 3s);

    holder.Exec("ROLLBACK");
    ASSERT_OK(store->RecordStep(id, "owner-a", MakeStep("map", 0, 1)));
}

TEST_F(PgJobStoreTest, ClaimNextSkipsAJobAnotherReplicaIsClaiming) {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    const std::string first = store->Submit(MakeJob("hash-1"))->job.id;
    std::this_thread::sleep_for(5ms);
    const std::string second = store->Submit(MakeJob("hash-2"))->job.id;

    PgAdmin other_replica(PgTestUrl());
    other_replica.Exec("BEGIN");
    other_replica.Exec("SELECT 1 FROM " + Table("jobs") + " WHERE id = '" + first + "' FOR UPDATE");
    const auto started = std::chrono::steady_clock::now();
    StoreResult<std::optional<Job>> claimed = store->ClaimNext("owner-a", 10s);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 1s) << "it did not wait for the lock";
    ASSERT_OK(claimed);
    ASSERT_TRUE(claimed->has_value());
    EXPECT_EQ((*claimed)->id, second) << "the older job is locked: skipped, not waited for";
    other_replica.Exec("ROLLBACK");
}

TEST_F(PgJobStoreTest, ANulByteIsRefusedNotCut) {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_FAILS_WITH(store->Submit(MakeJob("hash-1", std::string("before\0after", 12))), StoreFailure::kInternal);
    StoreResult<StoreStats> stats = store->Stats();
    ASSERT_OK(stats);
    EXPECT_EQ(stats->jobs_in(JobState::kQueued), 0);
}

TEST_F(PgJobStoreTest, StatsReportTheTablesSizeOnDisk) {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    RunningJobWithAStep(*store);
    StoreResult<StoreStats> stats = store->Stats();
    ASSERT_OK(stats);
    const std::string expected =
        schema_->admin().Exec("SELECT pg_total_relation_size('" + Table("jobs") + "') + pg_total_relation_size('" +
                              Table("job_steps") + "') + pg_total_relation_size('" + Table("job_events") + "')");
    EXPECT_EQ(stats->database_bytes, std::stoll(expected));
    EXPECT_GT(stats->database_bytes, 0);
}

// A server of the test's own, stopped and started again: the shared one stays up for the
// tests running beside this one.
TEST(PgJobStoreRestart, ARestartedServerIsUnavailableThenRecoveredWithTheCommittedSteps) {
    if (PgTestUrl() == nullptr) GTEST_SKIP() << testing::kPgSkipMessage;
    PrivatePgCluster cluster;
    ASSERT_FALSE(cluster.url().empty());
    JobStoreOptions options;
    options.pg_connect_timeout = 2s;
    StoreResult<std::unique_ptr<JobStore>> opened = OpenPgJobStore(cluster.url(), options);
    ASSERT_OK(opened);
    JobStore& store = **opened;
    const std::string id = store.Submit(MakeJob("hash-1"))->job.id;
    ASSERT_OK(store.Claim(id, "owner-a", 60s));
    ASSERT_OK(store.RecordStep(id, "owner-a", MakeStep("map", 0, 0, "before the restart"), NewEvent{"step", "{}"}));

    cluster.Halt();
    EXPECT_FAILS_WITH(store.RecordStep(id, "owner-a", MakeStep("map", 0, 1)), StoreFailure::kUnavailable);
    EXPECT_FAILS_WITH(store.GetJob(id), StoreFailure::kUnavailable);
    EXPECT_FAILS_WITH(store.Submit(MakeJob("hash-2")), StoreFailure::kUnavailable);
    EXPECT_FAILS_WITH(OpenPgJobStore(cluster.url(), options), StoreFailure::kUnavailable);

    cluster.Start();
    StoreResult<int64_t> seq =
        store.RecordStep(id, "owner-a", MakeStep("map", 0, 1, "after the restart"), NewEvent{"step", "{}"});
    ASSERT_OK(seq);
    EXPECT_EQ(*seq, 2);
    StoreResult<std::vector<Step>> steps = store.ListSteps(id);
    ASSERT_OK(steps);
    ASSERT_EQ(steps->size(), 2u);
    EXPECT_EQ((*steps)[0].output, "before the restart");
    EXPECT_EQ((*steps)[1].output, "after the restart");
    StoreResult<Job> job = store.GetJob(id);
    ASSERT_OK(job);
    EXPECT_EQ(job->state, JobState::kRunning);
    EXPECT_EQ(job->owner, "owner-a");
    ASSERT_OK(store.Finish(id, "owner-a", JobOutcome{JobState::kDone, "{}", ""}));
}

}  // namespace
}  // namespace summarizer
