#include "summarizer/jobs.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <sstream>

#include "jobs_internal.hpp"
#include "summarizer/api.hpp"
#include "summarizer/job_key.hpp"
#include "summarizer/task_pool.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Who runs a job: this host, this process, and 32 random bits (a pid is reused after a restart).
std::string MakeOwnerId() {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
    std::random_device random;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(random()));
    return std::string(host) + "-" + std::to_string(getpid()) + "-" + suffix;
}

std::chrono::milliseconds Lease(const Config& config) { return std::chrono::milliseconds(config.jobs.lease_ms); }
std::chrono::milliseconds Poll(const Config& config) { return std::chrono::milliseconds(config.jobs.poll_ms); }
// How often a request waiting for its own job, run by a runner, looks whether its client went away.
constexpr std::chrono::milliseconds kClientGoneCheck{20};

// Logs a store failure at most once per `every` per place, so a store that is down for minutes
// does not flood the log.
class RateLimitedLog {
public:
    void Warn(const std::string& message, std::chrono::seconds every = 30s) {
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < every) {
            ++suppressed_;
            return;
        }
        last_ = now;
        if (suppressed_ > 0) {
            spdlog::warn("{} ({} similar message(s) suppressed)", message, suppressed_);
        } else {
            spdlog::warn("{}", message);
        }
        suppressed_ = 0;
    }

private:
    std::mutex mutex_;
    std::chrono::steady_clock::time_point last_{};
    int suppressed_ = 0;
};

RateLimitedLog g_claim_log, g_heartbeat_log, g_cache_log;

// A plan good enough for the `meta` event of an answer that comes from a finished job.
Plan PlanOf(const SummarizeResponse& r) {
    Plan plan;
    plan.kind = r.route == kMapReduceRoute ? RouteKind::kMapReduce : RouteKind::kSingle;
    plan.bucket = r.route;
    plan.model = r.model;
    plan.chunks.resize(static_cast<size_t>(std::max(1, r.chunks)));
    return plan;
}

// The answer that ended without a result (failed, cancelled, deleted): the caller runs it itself.
Error EndedWithoutResult(const std::string& id, const std::string& why) {
    return MakeError(ErrorCode::kConflict, "job " + id + " ended without a result (" + why + ")");
}

}  // namespace

Error StoreErrorToError(const StoreError& error) {
    switch (error.kind) {
        case StoreFailure::kNotFound:
            return MakeError(ErrorCode::kNotFound, error.message);
        case StoreFailure::kUnavailable: {
            Error e = MakeError(ErrorCode::kStoreUnavailable,
                                "the job store cannot be used now: " + error.message + ". Retry later");
            e.retry_after_s = 5;
            return e;
        }
        case StoreFailure::kConflict:
            return MakeError(ErrorCode::kConflict, error.message);
        case StoreFailure::kCorrupt:
        case StoreFailure::kInternal:
            return MakeError(ErrorCode::kInternal, "job store: " + error.message);
    }
    return MakeError(ErrorCode::kInternal, error.message);
}

bool IsTerminalJobEvent(std::string_view name) { return name == "done" || name == "error" || name == "cancelled"; }

bool IsTransientUpstreamFailure(const Error& error) {
    switch (error.code) {
        case ErrorCode::kUpstreamUnreachable:
        case ErrorCode::kUpstreamBusy:
        case ErrorCode::kUpstreamTimeout:
        case ErrorCode::kOverloaded:
            return true;
        default:
            return false;
    }
}

std::string DescribeStoreError(const StoreError& error) {
    return std::string(StoreFailureName(error.kind)) + ": " + error.message;
}

std::string FormatJobEvent(const Event& event) {
    std::string out = "id: " + std::to_string(event.seq) + "\nevent: " + event.name + "\ndata: ";
    out += event.data_json.empty() ? "{}" : event.data_json;  // stored as one line of JSON
    out += "\n\n";
    return out;
}

Jobs::Jobs(const Config& config, Service& service, JobStoreOpener open)
    : config_(config),
      service_(service),
      open_(std::move(open)),
      owner_(MakeOwnerId()),
      event_pool_("job events", 256) {
    service_.AttachJobs(this);
}

Jobs::Jobs(const Config& config, Service& service, JobStore& store) : Jobs(config, service, JobStoreOpener{}) {
    store_ = &store;
}

Jobs::~Jobs() {
    Stop();
    service_.AttachJobs(nullptr);
    if (sole_owner_lock_ >= 0) close(sole_owner_lock_);
}

JobStore* Jobs::store() { return store_.load(); }

Error Jobs::Unavailable() const {
    std::lock_guard lock(store_mutex_);
    Error e =
        MakeError(ErrorCode::kStoreUnavailable, "the job store cannot be used now" +
                                                    (open_error_.empty() ? "" : ": " + open_error_) + ". Retry later");
    e.retry_after_s = 5;
    return e;
}

bool Jobs::TryOpen() {
    if (store() != nullptr) return true;
    if (!open_) return false;
    auto opened = open_();
    std::lock_guard lock(store_mutex_);
    if (!opened.ok()) {
        open_error_ = opened.error().message;
        return false;
    }
    own_store_ = std::move(opened.value());
    open_error_.clear();
    store_ = own_store_.get();
    spdlog::info("job store: {} (owner {})", own_store_->Describe(), owner_);
    return true;
}

// A process holding the lock beside a SQLite file is its only user: running jobs with another
// owner belong to processes that died, and need not wait for their leases.
void Jobs::ReclaimIfSoleOwner() {
    JobStore* s = store();
    if (s == nullptr) return;
    const std::string described = s->Describe();
    if (described.rfind("sqlite:", 0) != 0) return;
    const std::string lock_path = described.substr(7) + ".lock";
    const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        spdlog::warn("job store: cannot open {} ({}): jobs of a crashed process resume when their leases run out",
                     lock_path, std::strerror(errno));
        return;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        spdlog::info("job store: another process uses {}: jobs it ran resume when their leases run out", described);
        return;
    }
    sole_owner_lock_ = fd;
    auto expired = s->ExpireLeases(owner_);
    if (!expired.ok()) {
        spdlog::warn("job store: cannot reclaim the jobs of a previous process: {}",
                     DescribeStoreError(expired.error()));
    } else if (*expired > 0) {
        spdlog::info("job store: {} job(s) of a previous process resume now", *expired);
    }
}

StoreStatus Jobs::Start() {
    if (started_) return StoreOk();
    if (store() == nullptr && open_) {
        auto opened = open_();
        if (!opened.ok()) {
            const StoreError& e = opened.error();
            if (e.kind != StoreFailure::kUnavailable) return e;
            std::lock_guard lock(store_mutex_);
            open_error_ = e.message;
            spdlog::error("job store unavailable: {}; POST /jobs answers 503 until it can be opened (retried)",
                          e.message);
        } else {
            std::lock_guard lock(store_mutex_);
            own_store_ = std::move(opened.value());
            store_ = own_store_.get();
            spdlog::info("job store: {} (owner {})", own_store_->Describe(), owner_);
        }
    }
    ReclaimIfSoleOwner();
    started_ = true;
    // One exception boundary per thread: a stray exception is logged and the loop starts again
    // (a bug costs a round, not the process).
    auto guarded = [this](std::string name, std::function<void()> loop) {
        return std::thread([this, name = std::move(name), loop = std::move(loop)] {
            while (CatchAll(name, [&]() -> std::optional<Error> {
                       loop();
                       return std::nullopt;
                   }) &&
                   !stopping_) {
                std::this_thread::sleep_for(std::chrono::seconds(1));
            }
        });
    };
    for (int i = 0; i < config_.jobs.max_running; ++i) {
        runners_.push_back(guarded("job runner " + std::to_string(i), [this, i] { RunnerLoop(i); }));
    }
    heartbeat_ = guarded("job heartbeat", [this] { HeartbeatLoop(); });
    maintenance_ = guarded("job maintenance", [this] { MaintenanceLoop(); });
    return StoreOk();
}

void Jobs::Stop() {
    if (!started_ || stopping_.exchange(true)) return;
    {
        std::lock_guard lock(wake_mutex_);
        wake_ = true;
    }
    wake_cv_.notify_all();
    {
        std::lock_guard lock(held_mutex_);
        for (auto& [id, held] : held_) held->Stop(StopReason::kShutdown);
    }
    for (auto& t : runners_) t.join();
    runners_.clear();
    if (heartbeat_.joinable()) heartbeat_.join();
    if (maintenance_.joinable()) maintenance_.join();
}

void Jobs::Wake() {
    {
        std::lock_guard lock(wake_mutex_);
        wake_ = true;
    }
    wake_cv_.notify_all();
}

uint64_t Jobs::news() const {
    std::lock_guard lock(news_mutex_);
    return news_;
}

void Jobs::NotifyNews() {
    {
        std::lock_guard lock(news_mutex_);
        ++news_;
    }
    news_cv_.notify_all();
}

void Jobs::WaitForNews(uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(news_mutex_);
    news_cv_.wait_for(lock, timeout, [&] { return news_ != seen || stopping_; });
}

int Jobs::running_here() const {
    std::lock_guard lock(held_mutex_);
    return static_cast<int>(held_.size());
}

std::shared_ptr<Jobs::Held> Jobs::Hold(const std::string& id, const CancelToken& parent, bool sync) {
    auto held = std::make_shared<Held>();
    held->id = id;
    held->cancel = parent.Child();
    held->sync = sync;
    std::lock_guard lock(held_mutex_);
    held_[id] = held;
    if (stopping_ && !sync) held->Stop(StopReason::kShutdown);
    return held;
}

void Jobs::Drop(const std::string& id) {
    std::lock_guard lock(held_mutex_);
    held_.erase(id);
}

// --- Requests ----------------------------------------------------------------------------------

std::string Jobs::ContentHash(const SummarizeRequest& request) const {
    return summarizer::ContentHash(request, config_);
}

Result<Submission> Jobs::Submit(const SummarizeRequest& request, const std::string& idempotency_key, bool force_new) {
    JobStore* s = store();
    if (s == nullptr) return Unavailable();
    NewJob job;
    job.text = request.text;
    job.options_json = RequestOptionsJson(request);
    job.content_hash = ContentHash(request);
    job.idempotency_key = idempotency_key;
    job.force_new = force_new;
    auto submitted = s->Submit(job);
    if (!submitted.ok()) {
        if (submitted.error().kind == StoreFailure::kUnavailable) ++store_errors_;
        return StoreErrorToError(submitted.error());
    }
    if (submitted->created()) {
        ++submitted_;
        // The first event of the job's stream; a failure here only loses that event.
        if (auto seq = s->AppendEvent(submitted->job.id, NewEvent{"state", R"({"state":"queued"})"}); seq.ok()) {
            NotifyNews();
        }
        Wake();
    } else if (submitted->outcome == SubmitOutcome::kContentHash) {
        ++cache_hits_;
    }
    return std::move(submitted.value());
}

Result<Job> Jobs::Get(const std::string& id) {
    JobStore* s = store();
    if (s == nullptr) return Unavailable();
    auto job = s->GetJob(id);
    if (!job.ok()) return StoreErrorToError(job.error());
    return std::move(job.value());
}

Result<JobState> Jobs::Cancel(const std::string& id) {
    JobStore* s = store();
    if (s == nullptr) return Unavailable();
    auto before = s->GetJob(id);
    if (!before.ok()) return StoreErrorToError(before.error());
    auto state = s->RequestCancel(id);
    if (!state.ok()) return StoreErrorToError(state.error());
    if (before->state == JobState::kQueued && *state == JobState::kCancelled) {
        // Nobody runs it: its stream ends here.
        (void)s->AppendEvent(id, NewEvent{"cancelled", R"({"state":"cancelled","reason":"cancelled while queued"})"});
        NotifyNews();
    }
    std::shared_ptr<Held> held;
    {
        std::lock_guard lock(held_mutex_);
        if (auto it = held_.find(id); it != held_.end()) held = it->second;
    }
    // Ours: stop its calls now rather than at the next heartbeat.
    if (held) held->Stop(StopReason::kCancelRequested);
    return *state;
}

Result<std::vector<Event>> Jobs::Events(const std::string& id, int64_t after_seq, int limit) {
    JobStore* s = store();
    if (s == nullptr) return Unavailable();
    auto events = s->ListEvents(id, after_seq, limit);
    if (!events.ok()) return StoreErrorToError(events.error());
    return std::move(events.value());
}

// --- POST /summarize through the store ----------------------------------------------------------

std::optional<Job> Jobs::FindReusable(const SummarizeRequest& request) {
    JobStore* s = store();
    if (s == nullptr) return std::nullopt;
    auto found = s->FindByContentHash(ContentHash(request));
    if (!found.ok()) {
        ++store_errors_;
        g_cache_log.Warn("result cache: the job store cannot be read (" + DescribeStoreError(found.error()) +
                         "); summarizing without it");
        return std::nullopt;
    }
    return std::move(found.value());
}

Result<SummarizeResponse> Jobs::Summarize(const SummarizeRequest& request, const SummarizeEvents& events,
                                          const CancelToken& client_gone, bool force_new,
                                          const std::optional<Job>& existing, const WorkTicket* ticket,
                                          Clock::time_point arrival) {
    if (existing) {
        auto answer = Await(existing->id, request, events, client_gone, arrival);
        if (answer.ok() || answer.error().code != ErrorCode::kConflict) return answer;
        spdlog::info("{}: {}; summarizing it anew", request.request_id, answer.error().message);
    }
    if (ticket != nullptr) return RunSynchronously(*ticket, request, events, force_new, arrival);
    auto admitted = service_.Admit(client_gone, request);
    if (!admitted.ok()) return admitted.error();
    return RunSynchronously(*admitted, request, events, force_new, arrival);
}

Result<SummarizeResponse> Jobs::Await(const std::string& id, const SummarizeRequest& request,
                                      const SummarizeEvents& events, const CancelToken& client_gone,
                                      Clock::time_point arrival, bool own_run) {
    int64_t seen_seq = 0;
    for (;;) {
        const uint64_t seen_news = news();
        JobStore* s = store();
        if (s == nullptr) return EndedWithoutResult(id, "the job store is unavailable");
        auto job = s->GetJob(id);
        if (!job.ok()) return EndedWithoutResult(id, DescribeStoreError(job.error()));
        if (job->state == JobState::kDone) {
            SummarizeResponse r;
            try {
                r = ResponseFromJson(json::parse(job->result_json));
            } catch (const json::exception& e) {
                return EndedWithoutResult(id, std::string("its result is not readable: ") + e.what());
            }
            r.request_id = request.request_id;
            const double ms = std::chrono::duration<double, std::milli>(Clock::now() - arrival).count();
            if (own_run) {
                // This request's own work, run by a runner: its timings, from this request's arrival
                // (the wait for the runner is queueing).
                const double before_run = std::max(0.0, ms - r.timings.total_ms);
                r.timings.queue_ms += before_run;
                r.timings.ttft_ms += before_run;
                r.timings.total_ms = ms;
            } else {
                // Its summary and what it cost when it was written; this answer's own timings.
                r.cached = true;
                r.timings.total_ms = r.timings.ttft_ms = r.timings.queue_ms = ms;
                r.timings.load_ms = 0;
                ++cache_hits_;
            }
            if (events.on_plan) events.on_plan(PlanOf(r));
            if (events.on_delta) events.on_delta(r.summary);
            return r;
        }
        if (IsFinished(job->state)) return EndedWithoutResult(id, "it " + std::string(JobStateName(job->state)));
        // Relay its progress meanwhile.
        if (events.on_progress) {
            auto news = s->ListEvents(id, seen_seq, 1000);
            if (news.ok()) {
                for (const Event& e : *news) {
                    seen_seq = e.seq;
                    if (e.name != "progress") continue;
                    try {
                        const json d = json::parse(e.data_json);
                        const std::string phase = d.value("phase", "map");
                        events.on_progress(ProgressUpdate{.phase = phase,
                                                          .done = d.value("done", 0),
                                                          .total = d.value("total", 0),
                                                          .level = d.value("level", 0),
                                                          .remaining_ms = d.value("remaining_ms", int64_t{0})});
                    } catch (const json::exception&) {
                    }
                }
            }
        }
        if (client_gone.cancelled()) {
            // Its own run stops, as it does when run here (requests that share it summarize anew).
            if (own_run) (void)Cancel(id);
            return MakeError(ErrorCode::kCancelled, "the client went away");
        }
        if (service_.stopping()) {
            return MakeError(ErrorCode::kUpstreamUnavailable, "summarizer is shutting down; retry the request");
        }
        // Until news or jobs.poll_ms (or shutdown, when WaitForNews no longer waits). Its own run
        // is cancelled when its client goes away, and the flag is only seen here: meanwhile, that
        // is looked at every kClientGoneCheck (the store is read at the pace of news and polls only).
        const auto until = Clock::now() + Poll(config_);
        for (auto now = Clock::now(); now < until && news() == seen_news; now = Clock::now()) {
            if ((own_run && client_gone.cancelled()) || stopping_) break;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now) + 1ms;
            WaitForNews(seen_news, own_run ? std::min(left, kClientGoneCheck) : left);
        }
    }
}

Result<SummarizeResponse> Jobs::RunSynchronously(const WorkTicket& ticket, const SummarizeRequest& request,
                                                 const SummarizeEvents& events, bool force_new,
                                                 Clock::time_point arrival) {
    JobStore* s = store();
    auto in_memory = [&](const std::string& why) {
        g_cache_log.Warn("result cache: " + why + "; summarizing without the job store");
        return service_.Summarize(ticket, request, events, arrival);
    };
    if (s == nullptr) return in_memory("the job store is unavailable");
    NewJob job;
    job.text = request.text;
    job.options_json = RequestOptionsJson(request);
    job.content_hash = ContentHash(request);
    job.force_new = force_new;
    auto submitted = s->Submit(job);
    if (!submitted.ok()) {
        ++store_errors_;
        return in_memory("cannot submit (" + DescribeStoreError(submitted.error()) + ")");
    }
    const std::string id = submitted->job.id;
    if (!submitted->created() && submitted->job.state != JobState::kQueued) {
        // An identical request got there first: share its run.
        auto answer = Await(id, request, events, ticket.cancel(), arrival);
        if (answer.ok() || answer.error().code != ErrorCode::kConflict) return answer;
        return service_.Summarize(ticket, request, events, arrival);
    }
    // Ours, or a queued job of the same content: run it here, under the ticket this request holds
    // (a runner may need this very slot to run it).
    if (submitted->created()) ++submitted_;
    auto claimed = s->Claim(id, owner_, Lease(config_));
    if (!claimed.ok()) {
        ++store_errors_;
        if (submitted->created()) (void)s->RequestCancel(id);
        return in_memory("cannot claim job " + id + " (" + DescribeStoreError(claimed.error()) + ")");
    }
    if (!*claimed) {
        // A runner took it between the two calls: wait for it instead (this request's own work if
        // it created the job).
        auto answer = Await(id, request, events, ticket.cancel(), arrival, submitted->created());
        if (answer.ok() || answer.error().code != ErrorCode::kConflict) return answer;
        return service_.Summarize(ticket, request, events, arrival);
    }
    return Run(std::move(**claimed), ticket, &request, events, arrival, !submitted->created());
}

// --- Runners, heartbeat, maintenance -------------------------------------------------------------

void Jobs::RunnerLoop(int index) {
    std::chrono::milliseconds backoff{0};
    uint64_t seen_wake = 0;
    auto wait = [&](std::chrono::milliseconds timeout) {
        std::unique_lock lock(wake_mutex_);
        wake_cv_.wait_for(lock, timeout, [&] { return wake_ || stopping_; });
        wake_ = false;
        (void)seen_wake;
    };
    while (!stopping_) {
        if (backoff.count() > 0) {
            wait(backoff);
            if (stopping_) break;
        }
        JobStore* s = store();
        if (s == nullptr) {
            wait(Poll(config_));
            continue;
        }
        auto ticket = service_.TryAdmitBatch();
        if (!ticket) {
            wait(Poll(config_));
            continue;
        }
        auto claimed = s->ClaimNext(owner_, Lease(config_));
        if (!claimed.ok()) {
            ++store_errors_;
            g_claim_log.Warn("job runner: cannot look for jobs: " + DescribeStoreError(claimed.error()));
            ticket.reset();
            wait(Poll(config_));
            continue;
        }
        if (!*claimed) {
            ticket.reset();
            wait(Poll(config_));
            continue;
        }
        Job job = std::move(**claimed);
        spdlog::info("job {}: claimed by runner {} (attempt {})", job.id, index, job.claims);
        auto result = Run(std::move(job), *ticket, nullptr, {}, Clock::now());
        ticket.reset();
        if (!result.ok() && IsTransientUpstreamFailure(result.error()) && !stopping_) {
            backoff = std::min<std::chrono::milliseconds>(std::max<std::chrono::milliseconds>(backoff * 2, 1s), 60s);
        } else {
            backoff = 0ms;
        }
    }
}

void Jobs::HeartbeatLoop() {
    const auto interval = std::max<std::chrono::milliseconds>(Lease(config_) / 3, 20ms);
    auto next = Clock::now() + interval;
    for (;;) {
        while (Clock::now() < next) {
            if (stopping_ && running_here() == 0) return;
            std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(interval, 20ms));
        }
        next += interval;
        if (Clock::now() > next) next = Clock::now() + interval;  // late (a slow store): no burst
        JobStore* s = store();
        if (s == nullptr) continue;
        std::vector<std::shared_ptr<Held>> held;
        {
            std::lock_guard lock(held_mutex_);
            for (auto& [id, h] : held_) held.push_back(h);
        }
        for (auto& h : held) {
            auto lease = s->RenewLease(h->id, owner_, Lease(config_));
            if (lease.ok()) {
                if (lease->cancel_requested) h->Stop(StopReason::kCancelRequested);
                continue;
            }
            const StoreError& e = lease.error();
            if (e.kind == StoreFailure::kConflict || e.kind == StoreFailure::kNotFound) {
                spdlog::warn("job {}: lost its lease ({}): another replica continues it", h->id, e.message);
                h->Stop(StopReason::kLeaseLost);
            } else {
                ++store_errors_;
                g_heartbeat_log.Warn("job heartbeat: cannot renew the lease of job " + h->id + ": " +
                                     DescribeStoreError(e));
            }
        }
    }
}

void Jobs::MaintenanceLoop() {
    const auto retention_every = std::chrono::seconds(config_.jobs.retention_interval_s);
    auto next_retention = Clock::now() + std::min<std::chrono::seconds>(retention_every, 10s);
    auto next_open = Clock::now() + 5s;
    while (!stopping_) {
        std::this_thread::sleep_for(100ms);
        const auto now = Clock::now();
        if (store() == nullptr && now >= next_open) {
            next_open = now + 5s;
            if (TryOpen()) {
                ReclaimIfSoleOwner();
                Wake();
            }
        }
        JobStore* s = store();
        if (s == nullptr || now < next_retention) continue;
        next_retention = now + retention_every;
        const auto age = std::chrono::hours(config_.jobs.retention_hours);
        const int64_t bytes = config_.jobs.retention_max_mb * 1024 * 1024;
        auto report = s->EnforceRetention(age, bytes);
        if (!report.ok()) {
            ++store_errors_;
            spdlog::warn("job retention: {}", DescribeStoreError(report.error()));
        } else if (report->deleted_by_age + report->deleted_by_size > 0) {
            spdlog::info("job retention: deleted {} job(s) older than {} h and {} more over {} MiB; {} bytes kept",
                         report->deleted_by_age, config_.jobs.retention_hours, report->deleted_by_size,
                         config_.jobs.retention_max_mb, report->after.content_bytes);
        }
    }
}

// --- Operations ----------------------------------------------------------------------------------

json Jobs::StatusJson() {
    json doc = {{"owner", owner_}, {"running_here", running_here()}, {"cache", config_.jobs.cache}};
    JobStore* s = store();
    if (s == nullptr) {
        std::lock_guard lock(store_mutex_);
        doc["database"] = RedactPassword(config_.jobs.database);
        doc["available"] = false;
        doc["error"] = open_error_;
        return doc;
    }
    doc["database"] = s->Describe();
    auto stats = s->Stats();
    doc["available"] = stats.ok();
    if (!stats.ok()) {
        doc["error"] = DescribeStoreError(stats.error());
        return doc;
    }
    json by_state = json::object();
    for (int i = 0; i < kJobStateCount; ++i) {
        by_state[std::string(JobStateName(static_cast<JobState>(i)))] = stats->jobs[static_cast<size_t>(i)];
    }
    doc["jobs"] = by_state;
    doc["content_bytes"] = stats->content_bytes;
    doc["database_bytes"] = stats->database_bytes;
    return doc;
}

std::string Jobs::RenderMetrics() {
    std::ostringstream out;
    JobStore* s = store();
    std::optional<StoreStats> stats;
    if (s != nullptr) {
        if (auto st = s->Stats(); st.ok()) stats = *st;
    }
    out << "# HELP summarizer_jobs_store_up 1 when the job store answers.\n# TYPE summarizer_jobs_store_up gauge\n"
        << "summarizer_jobs_store_up " << (stats ? 1 : 0) << "\n";
    if (stats) {
        out << "# HELP summarizer_jobs Jobs in the store by state.\n# TYPE summarizer_jobs gauge\n";
        for (int i = 0; i < kJobStateCount; ++i) {
            out << "summarizer_jobs{state=\"" << JobStateName(static_cast<JobState>(i)) << "\"} "
                << stats->jobs[static_cast<size_t>(i)] << "\n";
        }
        out << "# HELP summarizer_jobs_store_bytes Size of the job store: content (texts, steps, results: what "
               "retention counts) and database (on disk).\n# TYPE summarizer_jobs_store_bytes gauge\n"
            << "summarizer_jobs_store_bytes{kind=\"content\"} " << stats->content_bytes << "\n"
            << "summarizer_jobs_store_bytes{kind=\"database\"} " << stats->database_bytes << "\n";
    }
    auto counter = [&](const char* name, const char* help, int64_t value) {
        out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n" << name << " " << value << "\n";
    };
    counter("summarizer_jobs_submitted_total", "Jobs created here (POST /jobs and /summarize through the store).",
            submitted_);
    counter("summarizer_jobs_cache_hits_total", "Requests answered by an earlier or running job of the same content.",
            cache_hits_);
    counter("summarizer_jobs_resumed_total", "Jobs continued here from committed steps (after a restart or takeover).",
            resumed_);
    counter("summarizer_jobs_replanned_total", "Resumed jobs whose input no longer planned the same.", replanned_);
    counter("summarizer_jobs_steps_recorded_total", "Finished steps committed to the store.", steps_recorded_);
    counter("summarizer_jobs_released_total", "Running jobs given back to the queue (shutdown, upstream unreachable).",
            released_);
    counter("summarizer_jobs_store_errors_total", "Job store calls that failed (unavailable, locked, full).",
            store_errors_);
    out << "# HELP summarizer_jobs_running_here Jobs this process runs now.\n# TYPE summarizer_jobs_running_here "
           "gauge\nsummarizer_jobs_running_here "
        << running_here() << "\n";
    return out.str();
}

}  // namespace summarizer
