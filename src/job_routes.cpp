// The routes of durable jobs (POST /jobs, GET and DELETE /jobs/{id}, GET /jobs/{id}/events) and
// POST /summarize through the job store (the result cache). The route table is in routes.cpp.
#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "jobs_internal.hpp"
#include "route_helpers.hpp"
#include "summarizer/api.hpp"
#include "summarizer/jobs.hpp"
#include "summarizer/routes.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using route_helpers::ErrorResponse;
using route_helpers::InputOf;
using route_helpers::JsonResponse;

constexpr auto kKeepAliveEvery = std::chrono::seconds(15);

// Ids are 32 lowercase hex digits (NewJobId); anything else is no job.
bool IsJobId(std::string_view id) {
    return id.size() == 32 &&
           std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Error NoSuchJob(const std::string& id) {
    return MakeError(ErrorCode::kNotFound,
                     "no job " + id + " (never created, or deleted by retention: jobs.retention_*)");
}

Error JobsOff() {
    return MakeError(ErrorCode::kStoreUnavailable,
                     "durable jobs are off on this server (jobs.database = off); summarize with POST /summarize");
}

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// `Cache-Control: no-cache` (or no-store): new work, not an earlier job's result.
bool NoCache(const HttpRequest& request) {
    const std::string value = Lower(request.Header("Cache-Control"));
    return value.find("no-cache") != std::string::npos || value.find("no-store") != std::string::npos;
}

std::string Rfc3339(StoreTime t) {
    const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
    const auto ms = t.time_since_epoch().count() % 1000;
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03lldZ", buf, static_cast<long long>(ms));
    return out;
}

json ParsedOrNull(const std::string& text) {
    if (text.empty()) return nullptr;
    try {
        return json::parse(text);
    } catch (const json::exception&) {
        return text;
    }
}

// GET /jobs/{id}'s body.
json JobJson(const Job& job) {
    const StoreTime end = job.finished.value_or(
        std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
    json doc = {
        {"id", job.id},
        {"state", JobStateName(job.state)},
        {"progress", {{"done", job.progress.done}, {"total", job.progress.total}, {"level", job.progress.level}}},
        {"elapsed_ms", std::max<int64_t>(0, (end - job.created).count())},
        {"created_at", Rfc3339(job.created)},
        {"attempts", job.claims},
        {"cancel_requested", job.cancel_requested}};
    if (job.started) doc["started_at"] = Rfc3339(*job.started);
    if (job.finished) doc["finished_at"] = Rfc3339(*job.finished);
    if (!job.owner.empty()) doc["owner"] = job.owner;
    if (!job.replanned.empty()) doc["replanned"] = job.replanned;
    if (job.state == JobState::kDone) doc["result"] = ParsedOrNull(job.result_json);
    if (job.state == JobState::kFailed) {
        json error = ParsedOrNull(job.error_json);
        doc["error"] = error.is_object() && error.contains("error") ? error["error"] : error;
    }
    return doc;
}

// An Idempotency-Key is up to 255 printable ASCII characters.
Result<std::string> IdempotencyKey(const HttpRequest& request) {
    std::string key = request.Header("Idempotency-Key");
    const bool ok =
        key.size() <= 255 && std::all_of(key.begin(), key.end(), [](unsigned char c) { return c >= 0x20 && c < 0x7f; });
    if (!ok)
        return MakeError(ErrorCode::kInvalidRequest, "Idempotency-Key must be at most 255 printable ASCII characters");
    return key;
}

// Where a stream of events resumes: Last-Event-ID (as EventSource sends it on reconnect), or
// ?after=N. 0: from the first event.
Result<int64_t> ResumeAfter(const HttpRequest& request) {
    std::string value = request.Header("Last-Event-ID");
    if (value.empty()) {
        if (auto it = request.query.find("after"); it != request.query.end()) value = it->second;
    }
    if (value.empty()) return int64_t{0};
    int64_t seq = 0;
    for (char c : value) {
        if (c < '0' || c > '9' || seq > (INT64_MAX - 9) / 10) {
            return MakeError(ErrorCode::kInvalidRequest, "Last-Event-ID (or ?after=) must be an event id such as 12");
        }
        seq = seq * 10 + (c - '0');
    }
    return seq;
}

}  // namespace

HttpResponse ApiRoutes::PostJob(HttpRequest& request, Context& context) {
    Jobs* jobs = service_.jobs();
    if (jobs == nullptr) return ErrorResponse(JobsOff(), context.id);
    auto parsed = ParseSummarizeRequest(InputOf(request), config_);
    if (!parsed.ok()) return ErrorResponse(parsed.error(), context.id);
    parsed->request.request_id = context.id;
    // Refused now rather than failed later: a request that cannot be planned (422, bad max_tokens).
    auto plan = service_.MakePlan(parsed->request);
    if (!plan.ok()) return ErrorResponse(plan.error(), context.id);
    context.line.route = RouteName(*plan);
    auto key = IdempotencyKey(request);
    if (!key.ok()) return ErrorResponse(key.error(), context.id);
    auto submitted = jobs->Submit(parsed->request, *key, NoCache(request));
    if (!submitted.ok()) return ErrorResponse(submitted.error(), context.id);
    const Job& job = submitted->job;
    const std::string url = "/jobs/" + job.id;
    HttpResponse res =
        JsonResponse(submitted->created() ? 202 : 200, {{"id", job.id},
                                                        {"state", JobStateName(job.state)},
                                                        {"status_url", url},
                                                        {"events_url", url + "/events"},
                                                        {"cached", submitted->outcome == SubmitOutcome::kContentHash}});
    res.SetHeader("Location", url);
    return res;
}

HttpResponse ApiRoutes::GetJob(HttpRequest&, Context& context) {
    Jobs* jobs = service_.jobs();
    if (jobs == nullptr) return ErrorResponse(JobsOff(), context.id);
    if (!IsJobId(context.path_id)) return ErrorResponse(NoSuchJob(context.path_id), context.id);
    auto job = jobs->Get(context.path_id);
    if (!job.ok()) return ErrorResponse(job.error(), context.id);
    return JsonResponse(200, JobJson(*job));
}

HttpResponse ApiRoutes::DeleteJob(HttpRequest&, Context& context) {
    Jobs* jobs = service_.jobs();
    if (jobs == nullptr) return ErrorResponse(JobsOff(), context.id);
    if (!IsJobId(context.path_id)) return ErrorResponse(NoSuchJob(context.path_id), context.id);
    auto state = jobs->Cancel(context.path_id);
    if (!state.ok()) return ErrorResponse(state.error(), context.id);
    const bool stopping = *state == JobState::kRunning;
    // 202 while its owner stops it (its events end with `cancelled`); 200 once it is over.
    return JsonResponse(stopping ? 202 : 200,
                        {{"id", context.path_id}, {"state", JobStateName(*state)}, {"cancel_requested", stopping}});
}

// Every past event of the job, then the live ones, until one that ends it (done, error,
// cancelled). This process's own events wake the stream at once; other replicas' are found by
// polling every jobs.poll_ms. A comment line every 15 s keeps proxies from timing it out.
HttpResponse ApiRoutes::JobEvents(HttpRequest& request, Context& context) {
    Jobs* jobs = service_.jobs();
    if (jobs == nullptr) return ErrorResponse(JobsOff(), context.id);
    if (!IsJobId(context.path_id)) return ErrorResponse(NoSuchJob(context.path_id), context.id);
    auto after = ResumeAfter(request);
    if (!after.ok()) return ErrorResponse(after.error(), context.id);
    if (auto job = jobs->Get(context.path_id); !job.ok()) return ErrorResponse(job.error(), context.id);
    auto stream = std::make_shared<EventStream>();
    const CancelToken client_gone = request.client_gone;
    const auto poll = std::chrono::milliseconds(jobs->settings().poll_ms);
    jobs->event_pool().Post([jobs, stream, client_gone, poll, id = context.path_id, after = *after]() mutable {
        auto last_write = Clock::now();
        auto failing_since = Clock::time_point{};
        // A shutdown ends the stream: the client reconnects (to another replica) with Last-Event-ID.
        while (!client_gone.cancelled() && !jobs->shutting_down()) {
            const uint64_t seen = jobs->news();
            auto events = jobs->Events(id, after, 500);
            if (!events.ok()) {
                const Error& e = events.error();
                if (failing_since == Clock::time_point{}) failing_since = Clock::now();
                // A job deleted while watched, or a store down for a minute, ends the stream.
                if (e.code == ErrorCode::kNotFound || Clock::now() - failing_since > std::chrono::seconds(60)) {
                    stream->Push(FormatSseEvent("error", ErrorJson(e, id)));
                    break;
                }
                jobs->WaitForNews(seen, poll);
                continue;
            }
            failing_since = Clock::time_point{};
            bool ended = false;
            for (const Event& e : *events) {
                stream->Push(FormatJobEvent(e));
                after = e.seq;
                ended = ended || IsTerminalJobEvent(e.name);
                last_write = Clock::now();
            }
            if (ended) break;
            if (events->size() == 500) continue;  // more to read now
            if (Clock::now() - last_write >= kKeepAliveEvery) {
                stream->Push(": keep-alive\n\n");
                last_write = Clock::now();
            }
            jobs->WaitForNews(seen, poll);
        }
        stream->Finish();
    });
    HttpResponse res;
    res.status = 200;
    res.content_type = "text/event-stream";
    res.stream = stream;
    res.SetHeader("Cache-Control", "no-cache");
    res.SetHeader("X-Accel-Buffering", "no");
    context.line.stream = true;
    Finish(res, context);  // the access log line, once the transport is done with the stream
    res.on_complete = [log = std::move(res.on_complete), client_gone](const ResponseOutcome& outcome) {
        if (!outcome.completed) client_gone.Cancel();
        if (log) log(outcome);
    };
    return res;
}

// POST /summarize with jobs.cache: an earlier or running job of the same content answers it, or it
// runs as a job of its own (jobs.hpp). Admission comes first, as without the cache, so that a
// refusal is still an HTTP status; an answer from a job needs no slot.
HttpResponse ApiRoutes::SummarizeThroughJobs(HttpRequest& request, Context& context, Jobs& jobs, ParsedRequest parsed) {
    const bool force_new = NoCache(request);
    std::optional<Job> existing = force_new ? std::nullopt : jobs.FindReusable(parsed.request);
    std::unique_ptr<WorkTicket> ticket;
    if (!existing) {
        auto admitted = service_.Admit(request.client_gone, parsed.request);
        if (!admitted.ok()) return NotAdmitted(admitted.error(), context);
        ticket = std::make_unique<WorkTicket>(std::move(admitted.value()));
    }
    const CancelToken client_gone = request.client_gone;
    if (parsed.stream) {
        const WorkTicket* held = ticket.get();  // Stream() holds it until the work ends
        return Stream(request, context, std::move(ticket), std::move(parsed.request),
                      [&jobs, held, existing, force_new, client_gone](
                          const SummarizeRequest& r, const SummarizeEvents& events, Clock::time_point arrival) {
                          return jobs.Summarize(r, events, client_gone, force_new, existing, held, arrival);
                      });
    }
    return SummaryResponse(
        jobs.Summarize(parsed.request, {}, client_gone, force_new, existing, ticket.get(), context.arrival), context);
}

}  // namespace summarizer
