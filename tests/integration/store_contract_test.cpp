// The JobStore contract, run against both implementations: a real SQLite file in a temporary
// directory and a real PostgreSQL server (a schema of its own per test). What the job runner,
// the routes and resume will rely on, whichever database holds the jobs.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store_test_env.hpp"
#include "summarizer/job_store.hpp"

namespace summarizer {
namespace {

using namespace std::chrono_literals;
using testing::MakeJob;
using testing::MakeStep;
using testing::PgSchema;
using testing::PgTestUrl;
using testing::StepBytesForTest;
using testing::TempDir;

struct SqliteBackend {
    static constexpr const char* kName = "Sqlite";
    bool available() const { return true; }
    std::string database() const { return dir.File("jobs.db"); }
    TempDir dir;
};

struct PostgresBackend {
    static constexpr const char* kName = "Postgres";
    PostgresBackend() {
        if (PgTestUrl() != nullptr) schema = std::make_unique<PgSchema>(PgTestUrl());
    }
    bool available() const { return schema != nullptr; }
    std::string database() const { return schema->Url(); }
    std::unique_ptr<PgSchema> schema;
};

template <typename Backend>
class JobStoreContract : public ::testing::Test {
protected:
    void SetUp() override {
        if (!backend_.available()) GTEST_SKIP() << testing::kPgSkipMessage;
        // Through the dispatcher: a path opens SQLite, a postgresql:// URL PostgreSQL.
        StoreResult<std::unique_ptr<JobStore>> opened = OpenJobStore(backend_.database());
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        store_ = std::move(opened).value();
    }

    // Another store on the same database: another process or replica, as the database sees it.
    std::unique_ptr<JobStore> OpenAnother() {
        StoreResult<std::unique_ptr<JobStore>> opened = OpenJobStore(backend_.database());
        EXPECT_TRUE(opened.ok()) << opened.error().message;
        return opened.ok() ? std::move(opened).value() : nullptr;
    }

    JobStore& store() { return *store_; }

    Job Submitted(const std::string& hash, const std::string& text = "the input text") {
        StoreResult<Submission> submitted = store().Submit(MakeJob(hash, text));
        EXPECT_TRUE(submitted.ok()) << submitted.error().message;
        return submitted.ok() ? submitted->job : Job{};
    }

    // Submits a job and claims it for `owner`.
    Job Running(const std::string& hash, const std::string& owner, std::chrono::milliseconds lease = 60s) {
        const Job queued = Submitted(hash);
        StoreResult<std::optional<Job>> claimed = store().Claim(queued.id, owner, lease);
        EXPECT_TRUE(claimed.ok()) << claimed.error().message;
        if (!claimed.ok() || !*claimed) return Job{};
        EXPECT_EQ((*claimed)->id, queued.id);
        return **claimed;
    }

    Job Done(const std::string& hash, const std::string& result = R"({"summary":"s"})") {
        const Job job = Running(hash, "owner-done");
        EXPECT_TRUE(store().Finish(job.id, "owner-done", JobOutcome{JobState::kDone, result, ""}).ok());
        return job;
    }

    Backend backend_;
    std::unique_ptr<JobStore> store_;
};

struct BackendNames {
    template <typename Backend>
    static std::string GetName(int /*index*/) {
        return Backend::kName;
    }
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;
TYPED_TEST_SUITE(JobStoreContract, Backends, BackendNames);

TEST(JobIds, AreThirtyTwoHexDigitsAndNeverRepeat) {
    std::set<std::string> ids;
    for (int i = 0; i < 10000; ++i) {
        StoreResult<std::string> id = NewJobId();
        ASSERT_OK(id);
        ASSERT_EQ(id->size(), 32u);
        ASSERT_EQ(id->find_first_not_of("0123456789abcdef"), std::string::npos) << *id;
        ids.insert(*id);
    }
    EXPECT_EQ(ids.size(), 10000u);
}

TEST(JobStates, NamesRoundTrip) {
    for (int i = 0; i < kJobStateCount; ++i) {
        const auto state = static_cast<JobState>(i);
        EXPECT_EQ(ParseJobState(JobStateName(state)), state);
    }
    EXPECT_FALSE(ParseJobState("paused").has_value());
}

TYPED_TEST(JobStoreContract, SubmitCreatesAQueuedJob) {
    NewJob request = MakeJob("hash-1", "a long input", "key-1");
    StoreResult<Submission> submitted = this->store().Submit(request);
    ASSERT_OK(submitted);
    EXPECT_TRUE(submitted->created());
    const Job& job = submitted->job;
    EXPECT_EQ(job.id.size(), 32u);
    EXPECT_EQ(job.state, JobState::kQueued);
    EXPECT_EQ(job.content_hash, "hash-1");
    EXPECT_EQ(job.idempotency_key, "key-1");
    EXPECT_EQ(job.options_json, request.options_json);
    EXPECT_GT(job.created.time_since_epoch().count(), 0);
    EXPECT_FALSE(job.started.has_value());
    EXPECT_FALSE(job.finished.has_value());
    EXPECT_EQ(job.bytes, static_cast<int64_t>(request.text.size() + request.options_json.size()));

    StoreResult<Job> status = this->store().GetJob(job.id);
    ASSERT_OK(status);
    EXPECT_EQ(status->state, JobState::kQueued);
    EXPECT_EQ(status->text, "") << "the status view leaves the input out";
    StoreResult<Job> full = this->store().GetJob(job.id, JobView::kFull);
    ASSERT_OK(full);
    EXPECT_EQ(full->text, "a long input");
}

TYPED_TEST(JobStoreContract, AnIdempotencyKeyReturnsItsJob) {
    StoreResult<Submission> first = this->store().Submit(MakeJob("hash-1", "text", "key-1"));
    ASSERT_OK(first);
    NewJob again = MakeJob("hash-1", "text", "key-1");
    again.force_new = true;  // the key wins over no-cache: it names one request
    StoreResult<Submission> second = this->store().Submit(again);
    ASSERT_OK(second);
    EXPECT_EQ(second->outcome, SubmitOutcome::kIdempotencyKey);
    EXPECT_EQ(second->job.id, first->job.id);

    EXPECT_FAILS_WITH(this->store().Submit(MakeJob("hash-2", "other text", "key-1")), StoreFailure::kConflict);
}

TYPED_TEST(JobStoreContract, TheSameContentReturnsTheQueuedRunningOrDoneJob) {
    const Job queued = this->Submitted("hash-q");
    StoreResult<Submission> again = this->store().Submit(MakeJob("hash-q"));
    ASSERT_OK(again);
    EXPECT_EQ(again->outcome, SubmitOutcome::kContentHash);
    EXPECT_EQ(again->job.id, queued.id);

    const Job running = this->Running("hash-r", "owner-a");
    again = this->store().Submit(MakeJob("hash-r"));
    ASSERT_OK(again);
    EXPECT_EQ(again->job.id, running.id);
    EXPECT_EQ(again->job.state, JobState::kRunning);

    const Job done = this->Done("hash-d", R"({"summary":"cached"})");
    again = this->store().Submit(MakeJob("hash-d"));
    ASSERT_OK(again);
    EXPECT_EQ(again->job.id, done.id);
    EXPECT_EQ(again->job.state, JobState::kDone);
    EXPECT_EQ(again->job.result_json, R"({"summary":"cached"})");

    StoreResult<std::optional<Job>> found = this->store().FindByContentHash("hash-d");
    ASSERT_OK(found);
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->id, done.id);
    found = this->store().FindByContentHash("hash-unknown");
    ASSERT_OK(found);
    EXPECT_FALSE(found->has_value());
}

TYPED_TEST(JobStoreContract, FailedAndCancelledJobsAreNotReused) {
    const Job failed = this->Running("hash-f", "owner-a");
    ASSERT_OK(this->store().Finish(failed.id, "owner-a", JobOutcome{JobState::kFailed, "", R"({"code":"x"})"}));
    StoreResult<Submission> again = this->store().Submit(MakeJob("hash-f"));
    ASSERT_OK(again);
    EXPECT_TRUE(again->created());
    EXPECT_NE(again->job.id, failed.id);

    const Job queued = this->Submitted("hash-c");
    ASSERT_OK(this->store().RequestCancel(queued.id));
    again = this->store().Submit(MakeJob("hash-c"));
    ASSERT_OK(again);
    EXPECT_TRUE(again->created());
}

TYPED_TEST(JobStoreContract, ForceNewCreatesWorkThatLaterSubmissionsFind) {
    const Job done = this->Done("hash-1");
    NewJob fresh = MakeJob("hash-1");
    fresh.force_new = true;
    StoreResult<Submission> forced = this->store().Submit(fresh);
    ASSERT_OK(forced);
    EXPECT_TRUE(forced->created());
    EXPECT_NE(forced->job.id, done.id);

    StoreResult<Submission> later = this->store().Submit(MakeJob("hash-1"));
    ASSERT_OK(later);
    EXPECT_EQ(later->outcome, SubmitOutcome::kContentHash);
    EXPECT_EQ(later->job.id, forced->job.id) << "the newest work is the one reused";
    StoreResult<Job> old = this->store().GetJob(done.id);
    ASSERT_OK(old);
    EXPECT_EQ(old->state, JobState::kDone) << "still readable by its id";
}

TYPED_TEST(JobStoreContract, AnUnknownJobIsNotFound) {
    const std::string id = "0123456789abcdef0123456789abcdef";
    EXPECT_FAILS_WITH(this->store().GetJob(id), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().ListSteps(id), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().ListEvents(id, 0), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().AppendEvent(id, NewEvent{"x", "{}"}), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().RequestCancel(id), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().IsCancelRequested(id), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().RenewLease(id, "owner", 1s), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().Claim(id, "owner", 1s), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().RecordStep(id, "owner", MakeStep("map", 0, 0)), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().Finish(id, "owner", JobOutcome{}), StoreFailure::kNotFound);
}

TYPED_TEST(JobStoreContract, BugsInTheCallAreInternalErrors) {
    EXPECT_FAILS_WITH(this->store().Submit(MakeJob("")), StoreFailure::kInternal);
    EXPECT_FAILS_WITH(this->store().ClaimNext("", 1s), StoreFailure::kInternal);
    EXPECT_FAILS_WITH(this->store().ClaimNext("owner", 0ms), StoreFailure::kInternal);
    const Job job = this->Running("hash-1", "owner-a");
    EXPECT_FAILS_WITH(this->store().Finish(job.id, "owner-a", JobOutcome{JobState::kRunning, "", ""}),
                      StoreFailure::kInternal);
    EXPECT_FAILS_WITH(this->store().RecordStep(job.id, "owner-a", MakeStep("", 0, 0)), StoreFailure::kInternal);
    EXPECT_FAILS_WITH(this->store().ListEvents(job.id, 0, 0), StoreFailure::kInternal);
}

TYPED_TEST(JobStoreContract, AClaimedJobRecordsStepsEventsProgressAndItsResult) {
    const Job queued = this->Submitted("hash-1", "the whole input");
    StoreResult<std::optional<Job>> claimed = this->store().ClaimNext("owner-a", 30s);
    ASSERT_OK(claimed);
    ASSERT_TRUE(claimed->has_value());
    const Job& job = **claimed;
    EXPECT_EQ(job.id, queued.id);
    EXPECT_EQ(job.state, JobState::kRunning);
    EXPECT_EQ(job.owner, "owner-a");
    EXPECT_EQ(job.text, "the whole input") << "a claim returns what the runner needs";
    EXPECT_EQ(job.claims, 1);
    ASSERT_TRUE(job.started.has_value());
    ASSERT_TRUE(job.lease_expires.has_value());
    EXPECT_GE(*job.lease_expires, *job.started + 29s);

    ASSERT_OK(this->store().SavePlan(job.id, "owner-a", PlanUpdate{R"({"chunks":[[0,100],[100,200]]})", "", false}));
    StoreResult<int64_t> seq = this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 1, "second"),
                                                        NewEvent{"step", R"({"index":1})"}, JobProgress{1, 3, 0});
    ASSERT_OK(seq);
    EXPECT_EQ(*seq, 1);
    seq = this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 0, "first"),
                                   NewEvent{"step", R"({"index":0})"}, JobProgress{2, 3, 0});
    ASSERT_OK(seq);
    EXPECT_EQ(*seq, 2);
    seq = this->store().RecordStep(job.id, "owner-a", MakeStep("final", 1, 0, "the summary"));
    ASSERT_OK(seq);
    EXPECT_EQ(*seq, 0) << "no event, no seq";
    EXPECT_FAILS_WITH(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 1, "again")),
                      StoreFailure::kConflict);

    StoreResult<std::vector<Step>> steps = this->store().ListSteps(job.id);
    ASSERT_OK(steps);
    ASSERT_EQ(steps->size(), 3u);
    EXPECT_EQ((*steps)[0].key, (StepKey{"map", 0, 0}));
    EXPECT_EQ((*steps)[0].output, "first");
    EXPECT_EQ((*steps)[1].key, (StepKey{"map", 0, 1}));
    EXPECT_EQ((*steps)[1].output, "second") << "the duplicate did not overwrite it";
    EXPECT_EQ((*steps)[1].prompt_tokens, 1001);
    EXPECT_EQ((*steps)[1].output_tokens, 101);
    EXPECT_EQ((*steps)[1].metadata_json, R"({"model":"m"})");
    EXPECT_EQ((*steps)[2].key, (StepKey{"final", 1, 0}));

    StoreResult<Job> status = this->store().GetJob(job.id);
    ASSERT_OK(status);
    EXPECT_EQ(status->progress.done, 2);
    EXPECT_EQ(status->progress.total, 3);
    ASSERT_OK(this->store().UpdateProgress(job.id, "owner-a", JobProgress{3, 3, 1}));

    seq = this->store().Finish(job.id, "owner-a", JobOutcome{JobState::kDone, R"({"summary":"the summary"})", ""},
                               NewEvent{"done", R"({"ok":true})"});
    ASSERT_OK(seq);
    EXPECT_EQ(*seq, 3);
    StoreResult<Job> done = this->store().GetJob(job.id, JobView::kFull);
    ASSERT_OK(done);
    EXPECT_EQ(done->state, JobState::kDone);
    EXPECT_EQ(done->result_json, R"({"summary":"the summary"})");
    EXPECT_EQ(done->progress.level, 1);
    EXPECT_EQ(done->plan_json, R"({"chunks":[[0,100],[100,200]]})");
    EXPECT_TRUE(done->finished.has_value());
    EXPECT_FALSE(done->lease_expires.has_value());
    EXPECT_EQ(done->last_event_seq, 3);

    // Finished: the owner's writes are refused, the job stays as it ended.
    EXPECT_FAILS_WITH(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 2)), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().Finish(job.id, "owner-a", JobOutcome{JobState::kFailed, "", "{}"}),
                      StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().RenewLease(job.id, "owner-a", 1s), StoreFailure::kConflict);
}

TYPED_TEST(JobStoreContract, ClaimNextTakesTheOldestJobFirst) {
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
        ids.push_back(this->Submitted("hash-" + std::to_string(i)).id);
        std::this_thread::sleep_for(5ms);  // distinct creation times
    }
    for (int i = 0; i < 3; ++i) {
        StoreResult<std::optional<Job>> claimed = this->store().ClaimNext("owner-a", 10s);
        ASSERT_OK(claimed);
        ASSERT_TRUE(claimed->has_value());
        EXPECT_EQ((*claimed)->id, ids[static_cast<size_t>(i)]);
    }
    StoreResult<std::optional<Job>> none = this->store().ClaimNext("owner-a", 10s);
    ASSERT_OK(none);
    EXPECT_FALSE(none->has_value());
}

TYPED_TEST(JobStoreContract, ClaimTakesTheJobItNamesOnce) {
    this->Submitted("older");
    const Job job = this->Submitted("newer");
    StoreResult<std::optional<Job>> claimed = this->store().Claim(job.id, "owner-a", 10s);
    ASSERT_OK(claimed);
    ASSERT_TRUE(claimed->has_value());
    EXPECT_EQ((*claimed)->id, job.id);
    EXPECT_EQ((*claimed)->state, JobState::kRunning);
    claimed = this->store().Claim(job.id, "owner-b", 10s);
    ASSERT_OK(claimed);
    EXPECT_FALSE(claimed->has_value()) << "held by owner-a";
}

TYPED_TEST(JobStoreContract, EventsAreNumberedFromOneAndReplayAfterASeq) {
    const Job job = this->Submitted("hash-1");
    for (int i = 1; i <= 5; ++i) {
        StoreResult<int64_t> seq =
            this->store().AppendEvent(job.id, NewEvent{"progress", "{\"n\":" + std::to_string(i) + "}"});
        ASSERT_OK(seq);
        EXPECT_EQ(*seq, i);
    }
    StoreResult<std::vector<Event>> events = this->store().ListEvents(job.id, 2);
    ASSERT_OK(events);
    ASSERT_EQ(events->size(), 3u);
    EXPECT_EQ((*events)[0].seq, 3);
    EXPECT_EQ((*events)[0].name, "progress");
    EXPECT_EQ((*events)[0].data_json, R"({"n":3})");
    EXPECT_EQ((*events)[2].seq, 5);
    events = this->store().ListEvents(job.id, 0, 2);
    ASSERT_OK(events);
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ((*events)[1].seq, 2);
    events = this->store().ListEvents(job.id, 5);
    ASSERT_OK(events);
    EXPECT_TRUE(events->empty());
}

TYPED_TEST(JobStoreContract, OnlyTheOwnerWritesToARunningJob) {
    const Job job = this->Running("hash-1", "owner-a");
    ASSERT_OK(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 0)));
    EXPECT_FAILS_WITH(this->store().RenewLease(job.id, "owner-b", 1s), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().RecordStep(job.id, "owner-b", MakeStep("map", 0, 1)), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().SavePlan(job.id, "owner-b", PlanUpdate{"{}", "", true}), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().UpdateProgress(job.id, "owner-b", JobProgress{}), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().Finish(job.id, "owner-b", JobOutcome{}), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().ReleaseLease(job.id, "owner-b"), StoreFailure::kConflict);
    StoreResult<std::vector<Step>> steps = this->store().ListSteps(job.id);
    ASSERT_OK(steps);
    EXPECT_EQ(steps->size(), 1u) << "owner-b's SavePlan discarded nothing";

    StoreResult<LeaseState> renewed = this->store().RenewLease(job.id, "owner-a", 10s);
    ASSERT_OK(renewed);
    EXPECT_FALSE(renewed->cancel_requested);
}

TYPED_TEST(JobStoreContract, AReleasedJobIsClaimedAgainWithItsSteps) {
    const Job job = this->Running("hash-1", "owner-a");
    ASSERT_OK(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 0, "kept")));
    ASSERT_OK(this->store().ReleaseLease(job.id, "owner-a"));
    StoreResult<Job> released = this->store().GetJob(job.id);
    ASSERT_OK(released);
    EXPECT_EQ(released->state, JobState::kQueued);
    EXPECT_EQ(released->owner, "");

    StoreResult<std::optional<Job>> again = this->store().ClaimNext("owner-b", 10s);
    ASSERT_OK(again);
    ASSERT_TRUE(again->has_value());
    EXPECT_EQ((*again)->id, job.id);
    EXPECT_EQ((*again)->claims, 2);
    StoreResult<std::vector<Step>> steps = this->store().ListSteps(job.id);
    ASSERT_OK(steps);
    ASSERT_EQ(steps->size(), 1u);
    EXPECT_EQ((*steps)[0].output, "kept");
    EXPECT_FAILS_WITH(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 1)), StoreFailure::kConflict);
}

TYPED_TEST(JobStoreContract, ExpireLeasesFreesOtherOwnersJobsAtOnce) {
    const Job dead = this->Running("hash-1", "owner-dead", 1h);
    const Job mine = this->Running("hash-2", "owner-me", 1h);
    StoreResult<int64_t> expired = this->store().ExpireLeases("owner-me");
    ASSERT_OK(expired);
    EXPECT_EQ(*expired, 1);
    StoreResult<std::optional<Job>> taken = this->store().ClaimNext("owner-me", 10s);
    ASSERT_OK(taken);
    ASSERT_TRUE(taken->has_value());
    EXPECT_EQ((*taken)->id, dead.id) << "the dead owner's job is claimable now";
    EXPECT_EQ((*taken)->claims, 2);
    StoreResult<std::optional<Job>> none = this->store().ClaimNext("owner-other", 10s);
    ASSERT_OK(none);
    EXPECT_FALSE(none->has_value()) << "our own lease (" << mine.id << ") was left alone";
    StoreResult<int64_t> again = this->store().ExpireLeases("owner-me");
    ASSERT_OK(again);
    EXPECT_EQ(*again, 0);
}

TYPED_TEST(JobStoreContract, AnExpiredLeaseIsTakenOverWithTheCommittedSteps) {
    // Another replica (connected before the clock starts: connecting may take a while on a busy
    // machine, and the lease is short to keep the test short).
    std::unique_ptr<JobStore> replica = this->OpenAnother();
    ASSERT_NE(replica, nullptr);
    const Job job = this->Running("hash-1", "owner-a", 2s);
    ASSERT_OK(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 0, "from a"), NewEvent{"step", "{}"}));
    ASSERT_OK(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 1, "from a too"), NewEvent{"step", "{}"}));

    // While owner-a's lease holds: nothing to claim.
    StoreResult<std::optional<Job>> none = replica->ClaimNext("owner-b", 10s);
    ASSERT_OK(none);
    EXPECT_FALSE(none->has_value());

    std::this_thread::sleep_for(2200ms);  // owner-a died: no heartbeat
    StoreResult<std::optional<Job>> taken = replica->ClaimNext("owner-b", 10s);
    ASSERT_OK(taken);
    ASSERT_TRUE(taken->has_value());
    EXPECT_EQ((*taken)->id, job.id);
    EXPECT_EQ((*taken)->owner, "owner-b");
    EXPECT_EQ((*taken)->claims, 2);
    StoreResult<std::vector<Step>> steps = replica->ListSteps(job.id);
    ASSERT_OK(steps);
    ASSERT_EQ(steps->size(), 2u);
    EXPECT_EQ((*steps)[0].output, "from a");
    EXPECT_EQ((*steps)[1].output, "from a too");

    // owner-a comes back to life: every write of its is refused.
    EXPECT_FAILS_WITH(this->store().RenewLease(job.id, "owner-a", 10s), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 2)), StoreFailure::kConflict);
    EXPECT_FAILS_WITH(this->store().Finish(job.id, "owner-a", JobOutcome{}), StoreFailure::kConflict);

    StoreResult<int64_t> seq =
        replica->RecordStep(job.id, "owner-b", MakeStep("map", 0, 2, "from b"), NewEvent{"step", "{}"});
    ASSERT_OK(seq);
    EXPECT_EQ(*seq, 3) << "the event log goes on where owner-a left it";
    ASSERT_OK(replica->Finish(job.id, "owner-b", JobOutcome{JobState::kDone, R"({"summary":"s"})", ""}));
}

TYPED_TEST(JobStoreContract, ALiveLeaseIsNotTakenOver) {
    const Job job = this->Running("hash-1", "owner-a", 1500ms);
    for (int i = 0; i < 4; ++i) {
        std::this_thread::sleep_for(500ms);  // 2 s in all: beyond the first lease
        ASSERT_OK(this->store().RenewLease(job.id, "owner-a", 1500ms));
        StoreResult<std::optional<Job>> none = this->store().ClaimNext("owner-b", 10s);
        ASSERT_OK(none);
        EXPECT_FALSE(none->has_value()) << "renewed at " << i;
    }
}

TYPED_TEST(JobStoreContract, CancellingAQueuedJobEndsIt) {
    const Job job = this->Submitted("hash-1");
    StoreResult<JobState> state = this->store().RequestCancel(job.id);
    ASSERT_OK(state);
    EXPECT_EQ(*state, JobState::kCancelled);
    StoreResult<std::optional<Job>> none = this->store().ClaimNext("owner-a", 10s);
    ASSERT_OK(none);
    EXPECT_FALSE(none->has_value());
    StoreResult<Job> cancelled = this->store().GetJob(job.id);
    ASSERT_OK(cancelled);
    EXPECT_TRUE(cancelled->finished.has_value());
}

TYPED_TEST(JobStoreContract, CancellingARunningJobAsksItsOwner) {
    const Job job = this->Running("hash-1", "owner-a");
    StoreResult<bool> requested = this->store().IsCancelRequested(job.id);
    ASSERT_OK(requested);
    EXPECT_FALSE(*requested);

    std::unique_ptr<JobStore> other_replica = this->OpenAnother();
    ASSERT_NE(other_replica, nullptr);
    StoreResult<JobState> state = other_replica->RequestCancel(job.id);
    ASSERT_OK(state);
    EXPECT_EQ(*state, JobState::kRunning) << "the owner stops its upstream calls, then ends it";

    requested = this->store().IsCancelRequested(job.id);
    ASSERT_OK(requested);
    EXPECT_TRUE(*requested);
    StoreResult<LeaseState> lease = this->store().RenewLease(job.id, "owner-a", 10s);
    ASSERT_OK(lease);
    EXPECT_TRUE(lease->cancel_requested);
    ASSERT_OK(
        this->store().Finish(job.id, "owner-a", JobOutcome{JobState::kCancelled, "", ""}, NewEvent{"cancelled", "{}"}));

    state = other_replica->RequestCancel(job.id);
    ASSERT_OK(state);
    EXPECT_EQ(*state, JobState::kCancelled) << "a finished job stays as it is";
    const Job done = this->Done("hash-2");
    state = this->store().RequestCancel(done.id);
    ASSERT_OK(state);
    EXPECT_EQ(*state, JobState::kDone);
}

TYPED_TEST(JobStoreContract, ReleasingAJobWithACancelRequestCancelsIt) {
    const Job job = this->Running("hash-1", "owner-a");
    ASSERT_OK(this->store().RequestCancel(job.id));
    ASSERT_OK(this->store().ReleaseLease(job.id, "owner-a"));
    StoreResult<Job> after = this->store().GetJob(job.id);
    ASSERT_OK(after);
    EXPECT_EQ(after->state, JobState::kCancelled);
}

TYPED_TEST(JobStoreContract, ARePlanKeepsOrDiscardsTheSteps) {
    const Job job = this->Running("hash-1", "owner-a");
    ASSERT_OK(this->store().SavePlan(job.id, "owner-a", PlanUpdate{R"({"v":1})", "", false}));
    ASSERT_OK(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 0, "old plan's")));
    const int64_t bytes_with_step = this->store().GetJob(job.id)->bytes;

    ASSERT_OK(this->store().SavePlan(job.id, "owner-a", PlanUpdate{R"({"v":2})", "chunk size changed", true}));
    StoreResult<Job> replanned = this->store().GetJob(job.id, JobView::kFull);
    ASSERT_OK(replanned);
    EXPECT_EQ(replanned->plan_json, R"({"v":2})");
    EXPECT_EQ(replanned->replanned, "chunk size changed");
    StoreResult<std::vector<Step>> steps = this->store().ListSteps(job.id);
    ASSERT_OK(steps);
    EXPECT_TRUE(steps->empty());
    EXPECT_EQ(replanned->bytes, bytes_with_step - StepBytesForTest(MakeStep("map", 0, 0, "old plan's")) +
                                    static_cast<int64_t>(std::string("chunk size changed").size()));
}

TYPED_TEST(JobStoreContract, BytesCountWhatIsStored) {
    const Job job = this->Running("hash-1", "owner-a");
    const Step step = MakeStep("map", 0, 0, std::string(1000, 'x'));
    const NewEvent event{"step", R"({"i":0})"};
    ASSERT_OK(this->store().RecordStep(job.id, "owner-a", step, event));
    ASSERT_OK(this->store().AppendEvent(job.id, NewEvent{"note", "{}"}));
    const std::string result = R"({"summary":")" + std::string(500, 'y') + "\"}";
    ASSERT_OK(this->store().Finish(job.id, "owner-a", JobOutcome{JobState::kDone, result, ""}));

    const int64_t expected = static_cast<int64_t>(job.text.size() + job.options_json.size() + step.output.size() +
                                                  step.metadata_json.size() + event.name.size() +
                                                  event.data_json.size() + 4 + 2 + result.size());
    StoreResult<Job> after = this->store().GetJob(job.id);
    ASSERT_OK(after);
    EXPECT_EQ(after->bytes, expected);
    StoreResult<StoreStats> stats = this->store().Stats();
    ASSERT_OK(stats);
    EXPECT_EQ(stats->content_bytes, expected);
    EXPECT_EQ(stats->jobs_in(JobState::kDone), 1);
    EXPECT_GT(stats->database_bytes, 0);
}

TYPED_TEST(JobStoreContract, StatsCountJobsByState) {
    this->Submitted("q1");
    this->Submitted("q2");
    this->Running("r1", "owner-a");
    this->Done("d1");
    const Job failed = this->Running("f1", "owner-f");
    ASSERT_OK(this->store().Finish(failed.id, "owner-f", JobOutcome{JobState::kFailed, "", "{}"}));
    StoreResult<StoreStats> stats = this->store().Stats();
    ASSERT_OK(stats);
    EXPECT_EQ(stats->jobs_in(JobState::kQueued), 2);
    EXPECT_EQ(stats->jobs_in(JobState::kRunning), 1);
    EXPECT_EQ(stats->jobs_in(JobState::kDone), 1);
    EXPECT_EQ(stats->jobs_in(JobState::kFailed), 1);
    EXPECT_EQ(stats->jobs_in(JobState::kCancelled), 0);
}

TYPED_TEST(JobStoreContract, RetentionDeletesFinishedJobsOlderThanTheMaximumAge) {
    const Job old_job = this->Done("old");
    ASSERT_OK(this->store().AppendEvent(old_job.id, NewEvent{"late", "{}"}));
    const Job queued = this->Submitted("queued");
    std::this_thread::sleep_for(1500ms);
    const Job recent = this->Done("recent");
    const Job running = this->Running("running", "owner-a");

    StoreResult<RetentionReport> report = this->store().EnforceRetention(1000ms, 0);
    ASSERT_OK(report);
    EXPECT_EQ(report->deleted_by_age, 1);
    EXPECT_EQ(report->deleted_by_size, 0);
    EXPECT_FAILS_WITH(this->store().GetJob(old_job.id), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().ListEvents(old_job.id, 0), StoreFailure::kNotFound);
    EXPECT_OK_JOB(this->store(), recent.id);
    EXPECT_OK_JOB(this->store(), queued.id);
    EXPECT_OK_JOB(this->store(), running.id);
    EXPECT_EQ(report->after.jobs_in(JobState::kDone), 1);
    StoreResult<std::optional<Job>> cached = this->store().FindByContentHash("old");
    ASSERT_OK(cached);
    EXPECT_FALSE(cached->has_value()) << "a deleted job is no longer a cached result";
}

TYPED_TEST(JobStoreContract, RetentionDeletesTheOldestFinishedJobsBeyondTheTotalSize) {
    std::vector<Job> done;
    for (int i = 0; i < 4; ++i) {
        const Job job = this->Running("done-" + std::to_string(i), "owner-" + std::to_string(i));
        ASSERT_OK(this->store().Finish(job.id, "owner-" + std::to_string(i),
                                       JobOutcome{JobState::kDone, std::string(1000, 'r'), ""}));
        done.push_back(job);
        std::this_thread::sleep_for(15ms);  // distinct finishing times: the order is the test's
    }
    const Job running = this->Running("running", "owner-r");
    const Job queued = this->Submitted("queued");
    StoreResult<StoreStats> before = this->store().Stats();
    ASSERT_OK(before);
    const int64_t per_done_job = this->store().GetJob(done[0].id)->bytes;

    // Room for the two unfinished jobs and two finished ones: the two oldest go.
    const int64_t limit = before->content_bytes - 2 * per_done_job;
    StoreResult<RetentionReport> report = this->store().EnforceRetention(0ms, limit);
    ASSERT_OK(report);
    EXPECT_EQ(report->deleted_by_size, 2);
    EXPECT_LE(report->after.content_bytes, limit);
    EXPECT_FAILS_WITH(this->store().GetJob(done[0].id), StoreFailure::kNotFound);
    EXPECT_FAILS_WITH(this->store().GetJob(done[1].id), StoreFailure::kNotFound);
    EXPECT_OK_JOB(this->store(), done[2].id);
    EXPECT_OK_JOB(this->store(), done[3].id);

    // Over any limit, unfinished jobs stay.
    report = this->store().EnforceRetention(0ms, 1);
    ASSERT_OK(report);
    EXPECT_EQ(report->deleted_by_size, 2);
    EXPECT_EQ(report->after.jobs_in(JobState::kRunning), 1);
    EXPECT_EQ(report->after.jobs_in(JobState::kQueued), 1);
    EXPECT_EQ(report->after.jobs_in(JobState::kDone), 0);
    EXPECT_GT(report->after.content_bytes, 1);
    EXPECT_OK_JOB(this->store(), running.id);
    EXPECT_OK_JOB(this->store(), queued.id);
}

TYPED_TEST(JobStoreContract, CommittedStepsSurviveReopening) {
    const Job job = this->Running("hash-1", "owner-a");
    ASSERT_OK(this->store().RecordStep(job.id, "owner-a", MakeStep("map", 0, 0, "durable"), NewEvent{"step", "{}"}));
    this->store_.reset();  // the process ends

    std::unique_ptr<JobStore> reopened = this->OpenAnother();
    ASSERT_NE(reopened, nullptr);
    StoreResult<std::vector<Step>> steps = reopened->ListSteps(job.id);
    ASSERT_OK(steps);
    ASSERT_EQ(steps->size(), 1u);
    EXPECT_EQ((*steps)[0].output, "durable");
    StoreResult<std::vector<Event>> events = reopened->ListEvents(job.id, 0);
    ASSERT_OK(events);
    EXPECT_EQ(events->size(), 1u);
}

TYPED_TEST(JobStoreContract, IdenticalSubmissionsFromThreadsAndStoresCreateOneJob) {
    std::unique_ptr<JobStore> second = this->OpenAnother();
    ASSERT_NE(second, nullptr);
    constexpr int kThreads = 8;
    std::latch start(kThreads);
    std::mutex mutex;
    std::vector<Submission> results;
    std::vector<std::string> errors;
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
        JobStore* store = i % 2 == 0 ? &this->store() : second.get();
        threads.emplace_back([&, store] {
            start.arrive_and_wait();
            StoreResult<Submission> submitted = store->Submit(MakeJob("same-content"));
            std::lock_guard lock(mutex);
            if (submitted.ok()) {
                results.push_back(*submitted);
            } else {
                errors.push_back(submitted.error().message);
            }
        });
    }
    for (std::thread& t : threads) t.join();
    ASSERT_TRUE(errors.empty()) << errors.front();
    ASSERT_EQ(results.size(), static_cast<size_t>(kThreads));
    int created = 0;
    for (const Submission& s : results) {
        created += s.created() ? 1 : 0;
        EXPECT_EQ(s.job.id, results.front().job.id);
    }
    EXPECT_EQ(created, 1);
    EXPECT_EQ(this->store().Stats()->jobs_in(JobState::kQueued), 1);
}

TYPED_TEST(JobStoreContract, IdenticalSubmissionsFromProcessesCreateOneJob) {
    constexpr int kProcesses = 4;
    int go[2];
    int report[2];
    ASSERT_EQ(pipe(go), 0);
    ASSERT_EQ(pipe(report), 0);
    std::vector<pid_t> children;
    for (int i = 0; i < kProcesses; ++i) {
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            // The child: its own store (own connections), then all submit when the pipe closes.
            close(go[1]);
            StoreResult<std::unique_ptr<JobStore>> store = OpenJobStore(this->backend_.database());
            char ignored = 0;
            (void)!read(go[0], &ignored, 1);
            std::string line = "error\n";
            if (store.ok()) {
                StoreResult<Submission> submitted = (*store)->Submit(MakeJob("process-content", "text", "key-p"));
                if (submitted.ok()) line = submitted->job.id + (submitted->created() ? " created\n" : " found\n");
            }
            (void)!write(report[1], line.data(), line.size());
            _exit(0);  // no destructors: the parent's copies of its connections are not ours to close
        }
        children.push_back(pid);
    }
    close(go[0]);
    close(report[1]);
    std::this_thread::sleep_for(300ms);  // the children connect
    close(go[1]);
    for (pid_t pid : children) waitpid(pid, nullptr, 0);
    std::string output;
    char buffer[256];
    ssize_t n = 0;
    while ((n = read(report[0], buffer, sizeof buffer)) > 0) output.append(buffer, static_cast<size_t>(n));
    close(report[0]);

    std::map<std::string, int> ids;
    int created = 0;
    size_t begin = 0;
    int lines = 0;
    for (size_t end = output.find('\n'); end != std::string::npos; begin = end + 1, end = output.find('\n', begin)) {
        const std::string line = output.substr(begin, end - begin);
        ++lines;
        ASSERT_NE(line, "error");
        ++ids[line.substr(0, 32)];
        created += line.ends_with("created") ? 1 : 0;
    }
    EXPECT_EQ(lines, kProcesses) << output;
    EXPECT_EQ(ids.size(), 1u) << output;
    EXPECT_EQ(created, 1) << output;
}

TYPED_TEST(JobStoreContract, EachJobIsClaimedByOneOwner) {
    constexpr int kJobs = 24;
    for (int i = 0; i < kJobs; ++i) this->Submitted("job-" + std::to_string(i));
    std::unique_ptr<JobStore> second = this->OpenAnother();
    ASSERT_NE(second, nullptr);

    constexpr int kOwners = 6;
    std::latch start(kOwners);
    std::mutex mutex;
    std::map<std::string, std::vector<std::string>> owners_of;
    std::vector<std::string> errors;
    std::vector<std::thread> threads;
    for (int i = 0; i < kOwners; ++i) {
        JobStore* store = i % 2 == 0 ? &this->store() : second.get();
        const std::string owner = "owner-" + std::to_string(i);
        threads.emplace_back([&, store, owner] {
            start.arrive_and_wait();
            for (;;) {
                StoreResult<std::optional<Job>> claimed = store->ClaimNext(owner, 60s);
                std::lock_guard lock(mutex);
                if (!claimed.ok()) {
                    errors.push_back(claimed.error().message);
                    return;
                }
                if (!*claimed) return;
                owners_of[(*claimed)->id].push_back(owner);
            }
        });
    }
    for (std::thread& t : threads) t.join();
    ASSERT_TRUE(errors.empty()) << errors.front();
    EXPECT_EQ(owners_of.size(), static_cast<size_t>(kJobs));
    for (const auto& [id, owners] : owners_of) EXPECT_EQ(owners.size(), 1u) << id;
}

}  // namespace
}  // namespace summarizer
