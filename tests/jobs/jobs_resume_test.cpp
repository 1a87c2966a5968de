// Resume after a crash, in-process: a job left running by an owner that died, with some of its map
// steps committed, is taken over when its lease runs out and continues from those steps (none is
// recomputed) to the result an uninterrupted run gives; one whose input no longer plans the same
// (the config changed) is re-planned, keeps the partials of unchanged chunks, and says so; a
// prompt over num_ctx during a job re-plans it and leaves the store consistent.
#include "jobs_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kDeadOwner = "crashed-host-1-deadbeef";

// What an uninterrupted run of `text` gives, and the steps it committed (a store of its own).
struct Reference {
    std::string summary;
    int chunks = 0;
    int calls = 0;
    Job job;                  // JobView::kFull: its plan
    std::vector<Step> steps;  // in (level, index, kind) order
};

class JobsResumeTest : public JobsTest {
protected:
    Reference RunReference(const std::string& text) {
        Reference ref;
        StartJobs();
        const std::string id = SubmitOk({{"text", text}, {"strategy", "map_reduce"}});
        const json job = WaitFinished(id);
        EXPECT_EQ(job["state"], "done") << job.dump();
        ref.summary = job["result"]["summary"];
        ref.chunks = job["result"]["chunks"];
        ref.calls = static_cast<int>(fake.Requests().size());
        auto full = store_->GetJob(id, JobView::kFull);
        EXPECT_TRUE(full.ok());
        if (full.ok()) ref.job = *full;
        auto steps = store_->ListSteps(id);
        EXPECT_TRUE(steps.ok());
        if (steps.ok()) ref.steps = *steps;
        StopAll();
        fake.ClearRequests();
        return ref;
    }

    // A store holding what a process that died after committing the first `maps` map steps of
    // `ref` left: the job running for kDeadOwner under a lease of `lease`, its plan and those steps.
    std::string CrashedJob(JobStore& store, const Reference& ref, int maps, std::chrono::milliseconds lease) {
        NewJob job;
        job.text = ref.job.text;
        job.options_json = ref.job.options_json;
        job.content_hash = ref.job.content_hash;
        auto submitted = store.Submit(job);
        EXPECT_TRUE(submitted.ok());
        const std::string id = submitted->job.id;
        auto claimed = store.ClaimNext(kDeadOwner, lease);
        EXPECT_TRUE(claimed.ok() && *claimed);
        EXPECT_TRUE(store.SavePlan(id, kDeadOwner, PlanUpdate{ref.job.plan_json, "", false}).ok());
        int recorded = 0;
        for (const Step& step : ref.steps) {
            if (step.key.kind != "map" || recorded == maps) continue;
            EXPECT_TRUE(store.RecordStep(id, kDeadOwner, step).ok());
            ++recorded;
        }
        return id;
    }

    std::unique_ptr<JobStore> FreshStore(const std::string& name) {
        auto opened = OpenSqliteJobStore(dir.File(name));
        EXPECT_TRUE(opened.ok());
        return std::move(opened.value());
    }
};

TEST_F(JobsResumeTest, ATakenOverJobContinuesFromItsCommittedStepsToTheSameResult) {
    const std::string text = MarkedText(40);
    const Reference ref = RunReference(text);
    ASSERT_GE(ref.chunks, 6);
    auto store = FreshStore("crashed.db");
    const int committed = ref.chunks / 2;
    const std::string id = CrashedJob(*store, ref, committed, 300ms);
    StartJobs(std::move(store));
    const json job = WaitFinished(id);
    ASSERT_EQ(job["state"], "done") << job.dump();
    EXPECT_EQ(job["result"]["summary"], ref.summary) << "the result of an uninterrupted run";
    EXPECT_EQ(job["attempts"], 2);
    EXPECT_EQ(MapCalls(fake), ref.chunks - committed) << "committed map partials are never recomputed";
    EXPECT_EQ(static_cast<int>(fake.Requests().size()), ref.calls - committed);
    bool resumed = false;
    for (const auto& e : Events(id)) {
        if (e.event == "state" && e.data.value("resumed_steps", -1) == committed) resumed = true;
    }
    EXPECT_TRUE(resumed) << "its events say it resumed with its committed steps";
}

TEST_F(JobsResumeTest, AJobWithEveryStepCommittedEndsWithoutAnUpstreamCall) {
    const Reference ref = RunReference(MarkedText(20));
    auto store = FreshStore("crashed.db");
    const std::string id = CrashedJob(*store, ref, ref.chunks, 300ms);
    // The merge steps too: the process died between the last step and Finish.
    for (const Step& step : ref.steps) {
        if (step.key.kind != "map") {
            ASSERT_TRUE(store->RecordStep(id, kDeadOwner, step).ok());
        }
    }
    StartJobs(std::move(store));
    const json job = WaitFinished(id);
    ASSERT_EQ(job["state"], "done");
    EXPECT_EQ(job["result"]["summary"], ref.summary);
    EXPECT_EQ(fake.Requests().size(), 0u);
}

TEST_F(JobsResumeTest, ASoleOwnerOfTheFileResumesAtOnceWithoutWaitingForTheLease) {
    const Reference ref = RunReference(MarkedText(20));
    {
        auto store = FreshStore("crashed.db");
        CrashedJob(*store, ref, 2, std::chrono::hours(1));
    }
    // This process holds crashed.db.lock: the dead owner's lease of an hour is ended at start.
    auto opened = OpenSqliteJobStore(dir.File("crashed.db"));
    ASSERT_TRUE(opened.ok());
    StartJobs(std::move(opened.value()));
    auto stats = store_->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_TRUE(Eventually(
        [&] {
            auto s = store_->Stats();
            return s.ok() && s->jobs_in(JobState::kDone) == 1;
        },
        20000ms));
}

TEST_F(JobsResumeTest, AnInputThatNoLongerPlansTheSameIsReplannedAndSaysSo) {
    const std::string text = MarkedText(40);
    const Reference ref = RunReference(text);
    auto store = FreshStore("crashed.db");
    const std::string id = CrashedJob(*store, ref, ref.chunks / 2, 300ms);
    config.routing.hierarchical_chunk_max_chars = 2500;  // the config changed: bigger chunks
    StartJobs(std::move(store));
    const json job = WaitFinished(id);
    ASSERT_EQ(job["state"], "done") << job.dump();
    ASSERT_TRUE(job.contains("replanned"));
    const std::string why = job["replanned"];
    EXPECT_NE(why.find("configuration changed"), std::string::npos) << why;
    EXPECT_NE(job["result"]["reason"].get<std::string>().find("configuration changed"), std::string::npos);
    EXPECT_LT(job["result"]["chunks"].get<int>(), ref.chunks);
    bool announced = false;
    for (const auto& e : Events(id)) announced = announced || (e.event == "meta" && e.data.contains("replanned"));
    EXPECT_TRUE(announced);
    // The store holds the new plan's steps only.
    auto steps = store_->ListSteps(id);
    ASSERT_TRUE(steps.ok());
    int maps = 0;
    for (const Step& s : *steps) maps += s.key.kind == "map" ? 1 : 0;
    EXPECT_EQ(maps, job["result"]["chunks"].get<int>());
}

TEST_F(JobsResumeTest, UnchangedChunksKeepTheirPartialsWhenAJobIsReplanned) {
    const Reference ref = RunReference(MarkedText(40));
    auto store = FreshStore("crashed.db");
    const std::string id = CrashedJob(*store, ref, ref.chunks, 300ms);
    // A change that plans the same chunks on another model: every chunk's partial is kept, none redone.
    config.buckets[0].model = "gemma3-4b-16k-v2";
    fake.SetModels({{"gemma3-4b-16k-v2", 16384}, {"gemma3-4b-60k", 61440}});
    StartJobs(std::move(store));
    const json job = WaitFinished(id);
    ASSERT_EQ(job["state"], "done") << job.dump();
    const std::string why = job.value("replanned", "");
    EXPECT_NE(why.find("keeping " + std::to_string(ref.chunks) + " of " + std::to_string(ref.chunks)),
              std::string::npos)
        << why;
    EXPECT_EQ(MapCalls(fake), 0);
}

TEST_F(JobsResumeTest, AnOverflowDuringAJobReplansItAndTheStoreFollows) {
    // The fake's tokenizer counts 1.6x what the service estimates: map prompts are refused, the job
    // re-plans with smaller chunks, and its saved plan and steps are the new plan's.
    FakeBehavior dense;
    dense.token_scale = 1.6;
    fake.SetBehavior(dense);
    config.routing.hierarchical_chunk_max_chars = 60000;
    StartJobs();
    const std::string id = SubmitOk({{"text", MarkedText(600)}, {"strategy", "map_reduce"}});
    const json job = WaitFinished(id, 60s);
    ASSERT_EQ(job["state"], "done") << job.dump();
    EXPECT_NE(job["result"]["reason"].get<std::string>().find("re-planned"), std::string::npos) << job.dump();
    auto full = store_->GetJob(id, JobView::kFull);
    ASSERT_TRUE(full.ok());
    auto state = StateFromJson(json::parse(full->plan_json));
    ASSERT_TRUE(state.ok()) << state.error().message;
    EXPECT_GE(state->replans, 1) << "the saved plan is the re-planned one";
    auto steps = store_->ListSteps(id);
    ASSERT_TRUE(steps.ok());
    int maps = 0;
    for (const Step& s : *steps) maps += s.key.kind == "map" ? 1 : 0;
    EXPECT_EQ(maps, static_cast<int>(state->plan.chunks.size()));
    EXPECT_EQ(maps, job["result"]["chunks"].get<int>());
}

}  // namespace
}  // namespace summarizer::testing
