// The jobs API against the real server, a real SQLite store and the fake Ollama: POST /jobs, GET
// /jobs/{id} with its result, the event stream replayed and resumed with Last-Event-ID, DELETE
// stopping the upstream calls, 404s, the API key, Idempotency-Key, the content-hash cache for
// POST /jobs and POST /summarize (and Cache-Control: no-cache), identical submissions at once
// making one job, and the store in /status and /metrics.
#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>

#include "forwarding_job_store.hpp"
#include "jobs_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const char* kShort = "The museum reopens on Saturday after two years of work. Entry is free for the first week.";

TEST_F(JobsTest, SubmittedJobRunsAndItsResultIsTheSummarizeResponse) {
    StartJobs();
    auto res = Submit({{"text", kShort}, {"style", "bullets"}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 202) << res->body;
    const json body = json::parse(res->body);
    const std::string id = body["id"];
    EXPECT_EQ(id.size(), 32u);
    EXPECT_EQ(body["state"], "queued");
    EXPECT_EQ(body["status_url"], "/jobs/" + id);
    EXPECT_EQ(body["events_url"], "/jobs/" + id + "/events");
    EXPECT_EQ(res->get_header_value("Location"), "/jobs/" + id);

    const json job = WaitFinished(id);
    ASSERT_EQ(job["state"], "done") << job.dump();
    EXPECT_EQ(job["result"]["summary"], "Summary: " + std::string(kShort).substr(0, 60));
    EXPECT_EQ(job["result"]["route"], "16k");
    EXPECT_EQ(job["result"]["request_id"], id);
    EXPECT_EQ(job["result"]["cached"], false);
    EXPECT_EQ(job["progress"]["done"], 1);
    EXPECT_EQ(job["progress"]["total"], 1);
    EXPECT_GE(job["elapsed_ms"].get<int64_t>(), 0);
    EXPECT_EQ(job["attempts"], 1);
    ASSERT_EQ(fake.Requests().size(), 1u);
    EXPECT_NE(fake.Requests()[0].body.dump().find("bullet"), std::string::npos) << "the options reach the prompt";
}

TEST_F(JobsTest, EventsReplayEverythingInOrderAndResumeAfterLastEventId) {
    StartJobs();
    const std::string id = SubmitOk({{"text", MarkedText(30)}, {"strategy", "map_reduce"}});
    ASSERT_EQ(WaitFinished(id)["state"], "done");
    const auto events = Events(id);
    ASSERT_GE(events.size(), 6u);
    EXPECT_EQ(events.front().event, "state");
    EXPECT_EQ(events.front().data["state"], "queued");
    EXPECT_EQ(events.back().event, "done");
    std::set<std::string> names;
    int maps = 0;
    for (size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].seq, static_cast<int64_t>(i + 1)) << "ids count up from 1";
        names.insert(events[i].event);
        if (events[i].event == "progress" && events[i].data["phase"] == "map") ++maps;
    }
    EXPECT_TRUE(names.count("meta") && names.count("progress"));
    const int chunks = GetJob(id)["result"]["chunks"];
    EXPECT_EQ(maps, chunks) << "one progress event per map step";
    // Reconnecting after event 3: the rest, and nothing twice.
    const auto rest = Events(id, "3");
    ASSERT_EQ(rest.size(), events.size() - 3);
    EXPECT_EQ(rest.front().seq, 4);
    // ?after= does the same for clients that cannot send headers.
    auto res = Http().Get("/jobs/" + id + "/events?after=" + std::to_string(events.size() - 1));
    ASSERT_TRUE(res);
    EXPECT_EQ(SseReader().Feed(res->body).size(), 1u);
}

TEST_F(JobsTest, LiveEventsArriveWhileTheJobRuns) {
    FakeBehavior slow;
    slow.piece_delay_ms = 20;
    slow.reply = "A partial summary that takes a moment to write.";
    fake.SetBehavior(slow);
    StartJobs();
    const std::string id = SubmitOk({{"text", MarkedText(30)}, {"strategy", "map_reduce"}});
    std::vector<std::string> seen;
    std::string received;
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30s);
    auto res = client.Get("/jobs/" + id + "/events", [&](const char* data, size_t n) {
        received.append(data, n);
        return true;
    });
    ASSERT_TRUE(res);
    auto items = ParseSse(received);
    ASSERT_FALSE(items.empty());
    EXPECT_EQ(items.back().first, "done");
    EXPECT_EQ(items.back().second["summary"], slow.reply);
}

TEST_F(JobsTest, UnknownJobsAre404AndBadIdsToo) {
    StartJobs();
    for (const char* path :
         {"/jobs/0123456789abcdef0123456789abcdef", "/jobs/nope", "/jobs/0123456789abcdef0123456789abcdef/events"}) {
        auto res = Http().Get(path);
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 404) << path;
        EXPECT_EQ(json::parse(res->body)["error"]["code"], "not_found") << path;
    }
    auto res = Http().Delete("/jobs/0123456789abcdef0123456789abcdef");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 404);
    res = Http().Put("/jobs/0123456789abcdef0123456789abcdef", "", "text/plain");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 405);
    EXPECT_EQ(res->get_header_value("Allow"), "GET, DELETE");
}

TEST_F(JobsTest, JobsNeedTheApiKeyWhenOneIsSet) {
    config.server.api_key = "sekrit";
    StartJobs();
    auto res = Submit({{"text", kShort}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401);
    const std::string id = SubmitOk({{"text", kShort}}, {{"Authorization", "Bearer sekrit"}});
    ASSERT_FALSE(id.empty());
    for (const std::string& path : {"/jobs/" + id, "/jobs/" + id + "/events"}) {
        auto get = Http().Get(path);
        ASSERT_TRUE(get);
        EXPECT_EQ(get->status, 401) << path;
    }
    auto del = Http().Delete("/jobs/" + id);
    ASSERT_TRUE(del);
    EXPECT_EQ(del->status, 401);
}

TEST_F(JobsTest, BadRequestsAreRefusedBeforeAJobExists) {
    StartJobs();
    auto res = Submit({{"text", ""}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    res = Submit({{"text", MarkedText(2000)}, {"strategy", "single"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 422) << "a text no bucket takes in one pass";
    res = Submit({{"text", kShort}}, {{"Idempotency-Key", std::string(300, 'k')}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400);
    auto stats = store_->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->jobs_in(JobState::kQueued) + stats->jobs_in(JobState::kDone), 0);
}

TEST_F(JobsTest, IdempotencyKeyReturnsTheSameJobAndRefusesAnotherText) {
    StartJobs();
    auto first = Submit({{"text", kShort}}, {{"Idempotency-Key", "upload-42"}});
    ASSERT_TRUE(first);
    ASSERT_EQ(first->status, 202);
    auto again = Submit({{"text", kShort}}, {{"Idempotency-Key", "upload-42"}, {"Cache-Control", "no-cache"}});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200) << "an existing job";
    EXPECT_EQ(json::parse(again->body)["id"], json::parse(first->body)["id"]);
    auto other = Submit({{"text", "A different text altogether."}}, {{"Idempotency-Key", "upload-42"}});
    ASSERT_TRUE(other);
    EXPECT_EQ(other->status, 409) << other->body;
    EXPECT_EQ(json::parse(other->body)["error"]["code"], "conflict");
}

TEST_F(JobsTest, SameContentReturnsTheExistingJobUnlessNoCache) {
    StartJobs();
    const std::string id = SubmitOk({{"text", kShort}});
    ASSERT_EQ(WaitFinished(id)["state"], "done");
    auto again = Submit({{"text", kShort}});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 200);
    const json body = json::parse(again->body);
    EXPECT_EQ(body["id"], id);
    EXPECT_EQ(body["state"], "done");
    EXPECT_EQ(body["cached"], true);
    // Other options are other content.
    EXPECT_NE(SubmitOk({{"text", kShort}, {"style", "bullets"}}), id);
    // no-cache: new work, which later submissions then find.
    auto fresh = Submit({{"text", kShort}}, {{"Cache-Control", "no-cache"}});
    ASSERT_TRUE(fresh);
    EXPECT_EQ(fresh->status, 202);
    const std::string fresh_id = json::parse(fresh->body)["id"];
    EXPECT_NE(fresh_id, id);
    EXPECT_EQ(json::parse(Submit({{"text", kShort}})->body)["id"], fresh_id);
}

TEST_F(JobsTest, IdenticalSubmissionsAtOnceMakeOneJob) {
    FakeBehavior slow;
    slow.piece_delay_ms = 10;
    fake.SetBehavior(slow);
    StartJobs();
    std::vector<std::future<std::string>> submitted;
    for (int i = 0; i < 8; ++i) {
        submitted.push_back(std::async(std::launch::async, [&] { return SubmitOk({{"text", kShort}}); }));
    }
    std::set<std::string> ids;
    for (auto& f : submitted) ids.insert(f.get());
    ASSERT_EQ(ids.size(), 1u);
    ASSERT_EQ(WaitFinished(*ids.begin())["state"], "done");
    EXPECT_EQ(fake.Requests().size(), 1u) << "one job, one upstream call";
}

TEST_F(JobsTest, DeleteStopsARunningJobsUpstreamCalls) {
    FakeBehavior endless;
    endless.reply = std::string(4000, 'w');
    endless.piece_chars = 4;
    endless.piece_delay_ms = 10;  // ~10 s per call
    fake.SetBehavior(endless);
    StartJobs();
    const std::string id = SubmitOk({{"text", MarkedText(30)}, {"strategy", "map_reduce"}});
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    std::this_thread::sleep_for(100ms);
    const auto asked = std::chrono::steady_clock::now();
    auto res = Http().Delete("/jobs/" + id);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 202) << res->body;
    EXPECT_EQ(json::parse(res->body)["cancel_requested"], true);
    const json job = WaitFinished(id, 5s);
    EXPECT_EQ(job["state"], "cancelled");
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 3s);
    EXPECT_TRUE(Eventually([&] { return fake.ActiveCalls() == 0; }, 3000ms)) << "its upstream calls stopped";
    EXPECT_GE(fake.ClientDisconnects(), 1);
    const auto events = Events(id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().event, "cancelled");
    // A finished job stays as it is.
    res = Http().Delete("/jobs/" + id);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["state"], "cancelled");
}

TEST_F(JobsTest, DeleteCancelsAQueuedJobAtOnce) {
    FakeBehavior slow;
    slow.reply = std::string(400, 'q');
    slow.piece_chars = 4;
    slow.piece_delay_ms = 10;  // ~1 s
    fake.SetBehavior(slow);
    config.server.max_batch_inflight = 1;  // one job at a time: the second waits in the store
    StartJobs();
    const std::string running = SubmitOk({{"text", "first " + std::string(kShort)}});
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    const std::string queued = SubmitOk({{"text", "second " + std::string(kShort)}});
    EXPECT_EQ(GetJob(queued)["state"], "queued");
    auto res = Http().Delete("/jobs/" + queued);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["state"], "cancelled");
    EXPECT_EQ(Events(queued).back().event, "cancelled");
    EXPECT_EQ(WaitFinished(running)["state"], "done");
    EXPECT_EQ(fake.Requests().size(), 1u) << "the cancelled job never ran";
}

TEST_F(JobsTest, RepeatedSummarizeIsAnsweredFromTheCacheWithoutAnUpstreamCall) {
    StartJobs();
    auto first = PostJson({{"text", kShort}});
    ASSERT_TRUE(first);
    ASSERT_EQ(first->status, 200);
    EXPECT_EQ(json::parse(first->body)["cached"], false);
    ASSERT_EQ(fake.Requests().size(), 1u);
    auto second = PostJson({{"text", kShort}}, {{"X-Request-Id", "again-1"}});
    ASSERT_TRUE(second);
    ASSERT_EQ(second->status, 200);
    const json cached = json::parse(second->body);
    EXPECT_EQ(cached["cached"], true);
    EXPECT_EQ(cached["summary"], json::parse(first->body)["summary"]);
    EXPECT_EQ(cached["request_id"], "again-1");
    EXPECT_EQ(fake.Requests().size(), 1u) << "no upstream call for a cached answer";
    // Streamed: meta, the summary as one delta, done.
    std::string received;
    StreamSummarize(port, {{"text", kShort}, {"stream", true}}, received);
    const auto events = ParseSse(received);
    ASSERT_EQ(events.size(), 3u) << received;
    EXPECT_EQ(events[0].first, "meta");
    EXPECT_EQ(events[1].first, "delta");
    EXPECT_EQ(events[2].first, "done");
    EXPECT_EQ(events[2].second["cached"], true);
    EXPECT_EQ(fake.Requests().size(), 1u);
    // Cache-Control: no-cache forces new work.
    auto forced = PostJson({{"text", kShort}}, {{"Cache-Control", "no-cache"}});
    ASSERT_TRUE(forced);
    EXPECT_EQ(json::parse(forced->body)["cached"], false);
    EXPECT_EQ(fake.Requests().size(), 2u);
    // Other options: other content.
    auto bullets = PostJson({{"text", kShort}, {"style", "bullets"}});
    ASSERT_TRUE(bullets);
    EXPECT_EQ(json::parse(bullets->body)["cached"], false);
    EXPECT_EQ(fake.Requests().size(), 3u);
}

// POST /summarize submits its job, then claims it; a runner polling the store can claim it in
// between. This store's Claim waits until the runner has (the race made certain) and remembers the job.
class RunnerClaimsFirstStore : public ForwardingJobStore {
public:
    using ForwardingJobStore::ForwardingJobStore;
    StoreResult<std::optional<Job>> Claim(const std::string& job_id, const std::string& owner,
                                          std::chrono::milliseconds lease) override {
        {
            std::lock_guard lock(mutex_);
            job_id_ = job_id;
        }
        runner_first = Eventually([&] {
            auto job = inner().GetJob(job_id);
            return job.ok() && job->state != JobState::kQueued;
        });
        return ForwardingJobStore::Claim(job_id, owner, lease);
    }
    std::string job_id() {
        std::lock_guard lock(mutex_);
        return job_id_;
    }
    std::atomic<bool> runner_first{false};

private:
    std::mutex mutex_;
    std::string job_id_;
};

// The job store at `db_path` with the race above.
std::unique_ptr<RunnerClaimsFirstStore> RunnerClaimsFirst(const std::string& db_path) {
    auto opened = OpenSqliteJobStore(db_path);
    if (!opened.ok()) throw std::runtime_error(opened.error().message);
    return std::make_unique<RunnerClaimsFirstStore>(std::move(opened.value()));
}

TEST_F(JobsTest, SummarizeWhoseJobARunnerClaimedFirstIsAnsweredAsFreshWork) {
    auto store = RunnerClaimsFirst(db_path);
    RunnerClaimsFirstStore& racing = *store;
    StartJobs(std::move(store));
    auto first = PostJson({{"text", kShort}});
    ASSERT_TRUE(first);
    ASSERT_EQ(first->status, 200) << first->body;
    ASSERT_TRUE(racing.runner_first) << "the runner did not claim the request's job";
    const json answer = json::parse(first->body);
    EXPECT_EQ(answer["cached"], false) << "this request's own work, run by a runner, is no cached answer";
    EXPECT_EQ(answer["summary"], "Summary: " + std::string(kShort).substr(0, 60));
    EXPECT_EQ(answer["usage"]["upstream_requests"], 1);
    EXPECT_GE(answer["timings"]["total_ms"].get<double>(), answer["timings"]["ttft_ms"].get<double>());
    EXPECT_EQ(GetJob(racing.job_id())["state"], "done");
    EXPECT_EQ(fake.Requests().size(), 1u);
    // The next one is the cached answer.
    auto second = PostJson({{"text", kShort}});
    ASSERT_TRUE(second);
    EXPECT_EQ(json::parse(second->body)["cached"], true);
    EXPECT_EQ(fake.Requests().size(), 1u);
}

TEST_F(JobsTest, SummarizeWhoseJobARunnerClaimedFirstIsCancelledWhenItsClientGoesAway) {
    FakeBehavior slow;
    slow.reply = "A summary that takes its time, piece after piece, while nobody waits for it any more.";
    slow.piece_chars = 4;
    slow.piece_delay_ms = 100;
    fake.SetBehavior(slow);
    config.jobs.poll_ms = 500;  // the default: the client's going away is not seen at that pace
    auto store = RunnerClaimsFirst(db_path);
    RunnerClaimsFirstStore& racing = *store;
    StartJobs(std::move(store));
    {
        httplib::Client client = Http();
        client.set_read_timeout(std::chrono::milliseconds(1200));
        auto gave_up = client.Post("/summarize", json{{"text", kShort}}.dump(), "application/json");
        EXPECT_FALSE(gave_up) << "the client was meant to give up before the answer";
    }
    const auto gone = std::chrono::steady_clock::now();
    ASSERT_TRUE(racing.runner_first) << "the runner did not claim the request's job";
    ASSERT_TRUE(Eventually([&] { return fake.ActiveCalls() == 0; }, 2s)) << "its upstream call was not closed";
    const auto requests = fake.Requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_TRUE(requests[0].client_disconnected);
    const auto lag = std::chrono::duration_cast<std::chrono::milliseconds>(requests[0].finished - gone);
    EXPECT_LT(lag.count(), 150) << "upstream closed " << lag.count() << " ms after the client left";
    const json job = WaitFinished(racing.job_id(), 5s);
    EXPECT_EQ(job["state"], "cancelled") << job.dump();
}

TEST_F(JobsTest, IdenticalSummarizeRequestsAtOnceShareOneRun) {
    FakeBehavior slow;
    slow.reply = "One summary for both callers, written slowly.";
    slow.piece_chars = 4;
    slow.piece_delay_ms = 30;
    fake.SetBehavior(slow);
    StartJobs();
    auto first = std::async(std::launch::async, [&] { return PostJson({{"text", kShort}}); });
    ASSERT_TRUE(fake.WaitForRequests(1, 5s));
    auto second = std::async(std::launch::async, [&] { return PostJson({{"text", kShort}}); });
    auto a = first.get();
    auto b = second.get();
    ASSERT_TRUE(a && b);
    ASSERT_EQ(a->status, 200);
    ASSERT_EQ(b->status, 200);
    EXPECT_EQ(json::parse(a->body)["summary"], slow.reply);
    EXPECT_EQ(json::parse(b->body)["summary"], slow.reply);
    EXPECT_EQ(json::parse(b->body)["cached"], true) << "the second waited for the first's run";
    EXPECT_EQ(fake.Requests().size(), 1u);
}

TEST_F(JobsTest, AFailedRunIsNotCached) {
    FakeBehavior failing;
    failing.fail_status = 500;
    failing.fail_message = "model crashed";
    fake.SetBehavior(failing);
    config.ollama.max_retries = 0;
    StartJobs();
    auto res = PostJson({{"text", kShort}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 502);
    fake.SetBehavior(FakeBehavior{});
    res = PostJson({{"text", kShort}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["cached"], false);
}

TEST_F(JobsTest, ExtractiveFallbackAnswersButIsNotCached) {
    StartJobs();
    fake.Stop();
    auto res = PostJson({{"text", kShort}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    EXPECT_EQ(json::parse(res->body)["route"], "extractive");
    fake.Restart();
    res = PostJson({{"text", kShort}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    const json body = json::parse(res->body);
    EXPECT_EQ(body["route"], "16k");
    EXPECT_EQ(body["cached"], false);
}

TEST_F(JobsTest, StatusAndMetricsShowTheStore) {
    StartJobs();
    ASSERT_EQ(WaitFinished(SubmitOk({{"text", kShort}}))["state"], "done");
    ASSERT_EQ(PostJson({{"text", kShort}})->status, 200);  // a cache hit
    auto status = Http().Get("/status");
    ASSERT_TRUE(status);
    const json jobs_status = json::parse(status->body)["jobs"];
    EXPECT_EQ(jobs_status["available"], true);
    EXPECT_EQ(jobs_status["jobs"]["done"], 1);
    EXPECT_GT(jobs_status["content_bytes"].get<int64_t>(), 0);
    EXPECT_GT(jobs_status["database_bytes"].get<int64_t>(), 0);
    EXPECT_EQ(jobs_status["database"], "sqlite:" + db_path);
    auto metrics = Http().Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("summarizer_jobs{state=\"done\"} 1"), std::string::npos) << metrics->body;
    EXPECT_NE(metrics->body.find("summarizer_jobs_store_bytes{kind=\"database\"}"), std::string::npos);
    EXPECT_NE(metrics->body.find("summarizer_jobs_cache_hits_total 1"), std::string::npos);
    EXPECT_NE(metrics->body.find("summarizer_jobs_store_up 1"), std::string::npos);
}

TEST_F(JobsTest, RetentionDeletesFinishedJobsInTheBackground) {
    config.jobs.retention_max_mb = 1;
    config.jobs.retention_interval_s = 1;
    config.ollama.max_retries = 0;
    FakeBehavior failing;  // the job fails at once; a failed job is finished, so retention may delete it
    failing.fail_status = 500;
    fake.SetBehavior(failing);
    StartJobs();
    const std::string id = SubmitOk({{"text", MarkedText(4000)}});  // ~1.2 MB: over the 1 MiB limit
    ASSERT_EQ(WaitFinished(id)["state"], "failed");
    EXPECT_TRUE(Eventually([&] { return GetJob(id).value("http_status", 0) == 404; }, 15000ms))
        << "retention did not delete the job";
}

TEST(JobsOff, JobsAnswer503WhenTheServerHasNoStore) {
    FakeOllama fake;
    Config config;
    config.server.port = 0;
    config.ollama.url = fake.url();
    config.vram.preload_hot_bucket = false;
    Service service(config);
    HttpServer server(config, service);
    auto bound = server.Bind();
    ASSERT_TRUE(bound.ok());
    std::thread run([&] { server.Run(); });
    httplib::Client client("127.0.0.1", *bound);
    auto res = client.Post("/jobs", R"({"text": "A text."})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);
    EXPECT_EQ(json::parse(res->body)["error"]["code"], "store_unavailable");
    res = client.Post("/summarize", R"({"text": "A text."})", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << "summaries need no store";
    server.Stop();
    run.join();
}

}  // namespace
}  // namespace summarizer::testing
