// One run of a claimed job: its state (fresh, resumed from committed steps, or re-planned), the
// commit of every finished step before its event goes out, and how the job ends.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "jobs_internal.hpp"
#include "summarizer/api.hpp"
#include "summarizer/job_key.hpp"

namespace summarizer {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The state without its outputs (they are the steps): plan with chunk offsets, groups, safety,
// re-plans and what was spent, as SavePlan stores it.
std::string SkeletonJson(const ExecutionState& state) {
    json doc = StateToJson(state);
    for (auto& level : doc["levels"]) {
        for (auto& slot : level) slot = nullptr;
    }
    doc["final"] = nullptr;
    return doc.dump();
}

json SpentJson(const Spent& s) {
    return {{"prompt_tokens", s.prompt_tokens}, {"output_tokens", s.output_tokens}, {"calls", s.calls},
            {"prefill_ns", s.prefill.count()},  {"decode_ns", s.decode.count()},    {"load_ns", s.load.count()}};
}

Spent SpentFromJson(const json& j) {
    Spent s;
    s.prompt_tokens = j.value("prompt_tokens", int64_t{0});
    s.output_tokens = j.value("output_tokens", int64_t{0});
    s.calls = j.value("calls", 0);
    s.prefill = std::chrono::nanoseconds(j.value("prefill_ns", int64_t{0}));
    s.decode = std::chrono::nanoseconds(j.value("decode_ns", int64_t{0}));
    s.load = std::chrono::nanoseconds(j.value("load_ns", int64_t{0}));
    return s;
}

// A finished step as the store keeps it. Its metadata carries the timings, what the execution had
// spent so far (resume continues the account), and for a merge the groups of its level (so a
// resumed state places it where it was).
Step ToStep(const StepId& id, const StepOutput& output, const ExecutionState& state) {
    Step step;
    step.key = StepKey{std::string(StepKindName(id.kind)), id.level, id.index};
    step.output = output.text;
    step.prompt_tokens = output.prompt_tokens;
    step.output_tokens = output.output_tokens;
    json meta = {{"prefill_ns", output.prefill.count()},
                 {"decode_ns", output.decode.count()},
                 {"load_ns", output.load.count()},
                 {"spent", SpentJson(state.spent)}};
    if (id.kind == StepKind::kMerge && static_cast<size_t>(id.level) < state.groups.size()) {
        json groups = json::array();
        for (const auto& [first, last] : state.groups[static_cast<size_t>(id.level)]) groups.push_back({first, last});
        meta["groups"] = groups;
    }
    step.metadata_json = meta.dump();
    return step;
}

StepOutput OutputOf(const Step& step, const json& meta) {
    StepOutput o;
    o.text = step.output;
    o.prompt_tokens = step.prompt_tokens;
    o.output_tokens = step.output_tokens;
    o.prefill = std::chrono::nanoseconds(meta.value("prefill_ns", int64_t{0}));
    o.decode = std::chrono::nanoseconds(meta.value("decode_ns", int64_t{0}));
    o.load = std::chrono::nanoseconds(meta.value("load_ns", int64_t{0}));
    return o;
}

bool LevelComplete(const std::vector<std::optional<StepOutput>>& level) {
    return std::all_of(level.begin(), level.end(), [](const auto& o) { return o.has_value(); });
}

// Puts the committed steps into the saved skeleton. Levels above the first incomplete one are
// dropped (they cannot have been reached); the account is the latest step's.
ExecutionState Restore(ExecutionState state, const std::vector<Step>& steps, int* restored) {
    *restored = 0;
    const bool map_reduce = state.plan.kind == RouteKind::kMapReduce;
    if (map_reduce && state.levels.empty()) {
        state.levels.emplace_back(state.plan.chunks.size());
        state.groups.assign(1, {});
    }
    for (const Step& step : steps) {
        json meta;
        try {
            meta = json::parse(step.metadata_json);
        } catch (const json::exception&) {
            meta = json::object();
        }
        if (meta.contains("spent") && meta["spent"].value("calls", 0) >= state.spent.calls) {
            state.spent = SpentFromJson(meta["spent"]);
        }
        const StepOutput output = OutputOf(step, meta);
        const auto& k = step.key;
        if (k.kind == "single" || k.kind == "final") {
            state.final = output;
        } else if (k.kind == "map" && map_reduce && k.index >= 0 &&
                   static_cast<size_t>(k.index) < state.levels[0].size()) {
            state.levels[0][static_cast<size_t>(k.index)] = output;
        } else if (k.kind == "merge" && map_reduce && k.level >= 1 && meta.contains("groups")) {
            const auto level = static_cast<size_t>(k.level);
            if (state.levels.size() <= level) {
                state.levels.resize(level + 1);
                state.groups.resize(level + 1);
            }
            if (state.levels[level].empty()) {
                for (const auto& g : meta["groups"])
                    state.groups[level].emplace_back(g.at(0).get<int>(), g.at(1).get<int>());
                state.levels[level].resize(state.groups[level].size());
            }
            if (static_cast<size_t>(k.index) < state.levels[level].size())
                state.levels[level][static_cast<size_t>(k.index)] = output;
        } else {
            continue;
        }
        ++*restored;
    }
    for (size_t l = 0; l + 1 < state.levels.size(); ++l) {
        if (!LevelComplete(state.levels[l]) || state.levels[l + 1].empty()) {
            state.levels.resize(l + 1);
            state.groups.resize(l + 1);
            break;
        }
    }
    return state;
}

bool SamePlan(const Plan& a, const Plan& b) {
    if (a.kind != b.kind || a.bucket != b.bucket || a.model != b.model || a.num_ctx != b.num_ctx ||
        a.chunks.size() != b.chunks.size()) {
        return false;
    }
    for (size_t i = 0; i < a.chunks.size(); ++i) {
        if (a.chunks[i].begin != b.chunks[i].begin || a.chunks[i].end != b.chunks[i].end) return false;
    }
    return true;
}

std::string DescribePlan(const Plan& p) {
    if (p.kind == RouteKind::kMapReduce) {
        return "map-reduce of " + std::to_string(p.chunks.size()) + " chunks on " + p.bucket + " (" + p.model + ")";
    }
    return "one pass on " + p.bucket + " (" + p.model + ", num_ctx " + std::to_string(p.num_ctx) + ")";
}

// Progress within the level a step belongs to (0: the map; the final merge is the level above
// the last merge level).
JobProgress ProgressOf(const StepId& id, const ExecutionState& state) {
    JobProgress p;
    if (id.kind == StepKind::kSingle) return JobProgress{1, 1, 0};
    if (id.kind == StepKind::kFinal) return JobProgress{1, 1, static_cast<int>(state.levels.size())};
    const auto& level = state.levels[static_cast<size_t>(id.level)];
    p.done = std::count_if(level.begin(), level.end(), [](const auto& o) { return o.has_value(); });
    p.total = static_cast<int64_t>(level.size());
    p.level = id.level;
    return p;
}

json ProgressEventJson(const StepId& id, const JobProgress& p, int64_t remaining_ms) {
    return {{"phase", id.kind == StepKind::kMap      ? "map"
                      : id.kind == StepKind::kSingle ? "single"
                                                     : "reduce"},
            {"done", p.done},
            {"total", p.total},
            {"level", p.level},
            {"remaining_ms", remaining_ms},
            {"step", {{"kind", StepKindName(id.kind)}, {"level", id.level}, {"index", id.index}}}};
}

}  // namespace

class Jobs::Execution {
public:
    Execution(Jobs& jobs, JobStore& store, Job job, const WorkTicket& ticket, const SummarizeRequest* sync_request,
              bool adopted)
        : jobs_(jobs),
          store_(store),
          job_(std::move(job)),
          ticket_(ticket),
          sync_(sync_request != nullptr),
          adopted_(adopted) {
        if (sync_request) request_ = *sync_request;
    }

    Result<SummarizeResponse> Run(const SummarizeEvents& events, Clock::time_point arrival) {
        if (!sync_) {
            auto request = RequestFromStored(job_.text, job_.options_json, job_.id);
            if (!request.ok()) {
                Finish(JobState::kFailed, request.error());
                return request.error();
            }
            request_ = std::move(request.value());
        }
        held_ = jobs_.Hold(job_.id, ticket_.cancel(), sync_);
        if (job_.cancel_requested) {
            // Cancelled while nobody ran it (its owner died, or it was released).
            held_->Stop(StopReason::kCancelRequested);
            Result<SummarizeResponse> cancelled = MakeError(ErrorCode::kCancelled, "cancelled by request");
            Conclude(cancelled);
            jobs_.Drop(job_.id);
            jobs_.NotifyNews();
            return cancelled;
        }
        ExecutionHooks hooks;
        hooks.prepare = [this] { return Prepare(); };
        hooks.on_step = [this](const StepId& step, const StepOutput& output, const ExecutionState& state) {
            Persist(step, output, state);
        };
        hooks.cancel = &held_->cancel;
        hooks.allow_fallback = sync_;  // a job waits for its upstream; a client wants an answer now
        // The executor's estimate of the time left goes into the job's progress events too (as of
        // the step before: a step is committed before its own progress is announced).
        SummarizeEvents relayed = events;
        relayed.on_progress = [this, inner = events.on_progress](const ProgressUpdate& p) {
            remaining_ms_ = p.remaining_ms;
            if (inner) inner(p);
        };
        auto result = jobs_.service_.Summarize(ticket_, request_, relayed, arrival, &hooks);
        Conclude(result);
        jobs_.Drop(job_.id);
        jobs_.NotifyNews();
        return result;
    }

private:
    const std::string& id() const { return job_.id; }
    const std::string& owner() const { return jobs_.owner_; }

    // Retries a write the store could not take now (a blip: a lock, a reconnect) a few times.
    template <typename Call>
    auto WithRetry(Call&& call) {
        auto result = call();
        for (auto delay : {100ms, 300ms, 900ms}) {
            if (result.ok() || result.error().kind != StoreFailure::kUnavailable ||
                held_->stopped() != StopReason::kNone) {
                break;
            }
            ++jobs_.store_errors_;
            std::this_thread::sleep_for(delay);
            result = call();
        }
        return result;
    }

    void Announce(const std::string& name, const json& data) {
        if (auto seq =
                store_.AppendEvent(id(), NewEvent{name, data.dump(-1, ' ', false, json::error_handler_t::replace)});
            seq.ok()) {
            jobs_.NotifyNews();
        }
    }

    Error StoreFailed(const StoreError& e, const std::string& during) {
        held_->Stop(e.kind == StoreFailure::kConflict || e.kind == StoreFailure::kNotFound ? StopReason::kLeaseLost
                                                                                           : StopReason::kStoreFailed);
        Error error = StoreErrorToError(e);
        error.message = "job " + id() + ": " + during + ": " + error.message;
        return error;
    }

    StoreStatus SaveSkeleton(const ExecutionState& state, bool discard_steps) {
        return WithRetry([&] {
            return store_.SavePlan(id(), owner(), PlanUpdate{SkeletonJson(state), replanned_, discard_steps});
        });
    }

    // Records every finished output of `state` again (after SavePlan discarded the steps).
    StoreStatus RecordAll(const ExecutionState& state) {
        auto record = [&](const StepId& step, const StepOutput& output) -> StoreStatus {
            auto r = WithRetry([&] { return store_.RecordStep(id(), owner(), ToStep(step, output, state)); });
            if (!r.ok()) return r.error();
            return StoreOk();
        };
        for (size_t l = 0; l < state.levels.size(); ++l) {
            for (size_t i = 0; i < state.levels[l].size(); ++i) {
                if (!state.levels[l][i]) continue;
                const StepId step{l == 0 ? StepKind::kMap : StepKind::kMerge, static_cast<int>(l), static_cast<int>(i)};
                if (auto s = record(step, *state.levels[l][i]); !s.ok()) return s;
            }
        }
        return StoreOk();
    }

    // The state this run starts from: fresh (and saved), or resumed from the committed steps.
    Result<ExecutionState> Prepare() {
        if (job_.plan_json.empty()) return Fresh("");
        return Resume();
    }

    Result<ExecutionState> Fresh(const std::string& replanned) {
        auto state = jobs_.service_.Start(request_);
        if (!state.ok()) return state.error();
        replanned_ = replanned;
        // A client's one-pass request needs no saved plan: its only step ends it.
        if (!sync_ || adopted_ || state->plan.kind == RouteKind::kMapReduce || !replanned.empty()) {
            if (auto s = SaveSkeleton(*state, true); !s.ok()) return StoreFailed(s.error(), "saving its plan");
        }
        jobs_.service_.SetWork(ticket_, jobs_.service_.EstimateWork(state->plan, request_));
        if (!sync_ || adopted_) {  // someone may follow its events
            Announce("state", {{"state", "running"}, {"owner", owner()}, {"attempt", job_.claims}});
            json meta = MetaEventJson(state->plan, id());
            if (!replanned.empty()) meta["replanned"] = replanned;
            Announce("meta", meta);
        }
        return state;
    }

    Result<ExecutionState> Resume() {
        Result<ExecutionState> skeleton = MakeError(ErrorCode::kInternal, "no plan");
        try {
            skeleton = StateFromJson(json::parse(job_.plan_json));
        } catch (const json::exception& e) {
            skeleton = MakeError(ErrorCode::kInvalidRequest, e.what());
        }
        if (!skeleton.ok()) {
            ++jobs_.replanned_;
            return Fresh("its saved plan could not be read (" + skeleton.error().message + "); planned again");
        }
        auto steps = store_.ListSteps(id());
        if (!steps.ok()) return StoreFailed(steps.error(), "reading its steps");
        auto fresh = jobs_.service_.Start(request_, skeleton->safety);
        if (!fresh.ok()) return fresh.error();
        if (!SamePlan(skeleton->plan, fresh->plan)) return Replan(*skeleton, *steps, std::move(fresh.value()));
        int restored = 0;
        ExecutionState state = Restore(std::move(skeleton.value()), *steps, &restored);
        replanned_ = job_.replanned;
        saved_replans_ = state.replans;
        ++jobs_.resumed_;
        spdlog::info("job {}: resumed with {} of its steps committed ({})", id(), restored, DescribePlan(state.plan));
        jobs_.service_.SetWork(ticket_, jobs_.service_.EstimateWork(state.plan, request_));
        Announce("state",
                 {{"state", "running"}, {"owner", owner()}, {"attempt", job_.claims}, {"resumed_steps", restored}});
        return state;
    }

    // The input no longer plans the same (the config changed): plan again, keep the map partials
    // of the chunks that did not change, and say so.
    Result<ExecutionState> Replan(const ExecutionState& old, const std::vector<Step>& steps, ExecutionState state) {
        ++jobs_.replanned_;
        int kept = 0, had = 0;
        if (state.plan.kind == RouteKind::kMapReduce) {
            state.levels.assign(1, std::vector<std::optional<StepOutput>>(state.plan.chunks.size()));
            state.groups.assign(1, {});
            for (const Step& step : steps) {
                if (step.key.kind != "map" || step.key.index < 0 ||
                    static_cast<size_t>(step.key.index) >= old.plan.chunks.size()) {
                    continue;
                }
                ++had;
                const Chunk& was = old.plan.chunks[static_cast<size_t>(step.key.index)];
                for (size_t i = 0; i < state.plan.chunks.size(); ++i) {
                    if (state.plan.chunks[i].begin == was.begin && state.plan.chunks[i].end == was.end) {
                        json meta;
                        try {
                            meta = json::parse(step.metadata_json);
                        } catch (const json::exception&) {
                            meta = json::object();
                        }
                        state.levels[0][i] = OutputOf(step, meta);
                        ++kept;
                    }
                }
            }
        }
        replanned_ = "the configuration changed since this job was planned (" + DescribePlan(old.plan) + ", now " +
                     DescribePlan(state.plan) + "); re-planned, keeping " + std::to_string(kept) + " of " +
                     std::to_string(had) + " finished map partials";
        state.replan_notes += "; " + replanned_;
        spdlog::warn("job {}: {}", id(), replanned_);
        if (auto s = SaveSkeleton(state, true); !s.ok()) return StoreFailed(s.error(), "saving its new plan");
        if (auto s = RecordAll(state); !s.ok()) return StoreFailed(s.error(), "keeping its map partials");
        saved_replans_ = state.replans;
        jobs_.service_.SetWork(ticket_, jobs_.service_.EstimateWork(state.plan, request_));
        Announce("state",
                 {{"state", "running"}, {"owner", owner()}, {"attempt", job_.claims}, {"resumed_steps", kept}});
        json meta = MetaEventJson(state.plan, id());
        meta["replanned"] = replanned_;
        Announce("meta", meta);
        return state;
    }

    // Called with the executor's lock held, once the step's output is in `state`: the step and
    // its progress event are committed here, before the executor lets the event out.
    void Persist(const StepId& step, const StepOutput& output, const ExecutionState& state) {
        if (held_->stopped() != StopReason::kNone) return;
        if (state.replans != saved_replans_) {
            // An overflow re-planned (or regrouped) the execution: the saved plan and steps are
            // stale. Save the new skeleton and record what the state holds now, this step included.
            if (auto s = SaveSkeleton(state, true); !s.ok()) return (void)StoreFailed(s.error(), "saving its new plan");
            if (auto s = RecordAll(state); !s.ok()) return (void)StoreFailed(s.error(), "recording its steps");
            saved_replans_ = state.replans;
            if (step.kind == StepKind::kMap || step.kind == StepKind::kMerge) return;
        }
        // A client's one-pass summary is stored with the result, a moment later.
        if (sync_ && step.kind == StepKind::kSingle) return;
        const JobProgress progress = ProgressOf(step, state);
        const NewEvent event{"progress", ProgressEventJson(step, progress, remaining_ms_.load()).dump()};
        auto recorded =
            WithRetry([&] { return store_.RecordStep(id(), owner(), ToStep(step, output, state), event, progress); });
        if (!recorded.ok()) {
            const Error e =
                StoreFailed(recorded.error(), "recording step " + std::string(StepKindName(step.kind)) + " " +
                                                  std::to_string(step.level) + "." + std::to_string(step.index));
            spdlog::warn("{}; the job stops and resumes from its last committed step", e.message);
            return;
        }
        ++jobs_.steps_recorded_;
        jobs_.NotifyNews();
    }

    void Finish(JobState state, const Error& error, const std::string& event_name = "error",
                const json& event_data = nullptr) {
        JobOutcome outcome;
        outcome.state = state;
        const json body = ErrorJson(error, id());
        if (state == JobState::kFailed) outcome.error_json = body.dump();
        const NewEvent event{event_name, (event_data.is_null() ? body : event_data).dump()};
        auto finished = WithRetry([&] { return store_.Finish(id(), owner(), outcome, event); });
        if (!finished.ok()) {
            spdlog::warn("job {}: cannot record that it {}: {}", id(), JobStateName(state),
                         DescribeStoreError(finished.error()));
        }
    }

    void Release(const std::string& why) {
        auto released = store_.ReleaseLease(id(), owner());
        if (!released.ok()) {
            spdlog::warn("job {}: cannot give it back ({}): it resumes when its lease runs out", id(),
                         DescribeStoreError(released.error()));
            return;
        }
        ++jobs_.released_;
        Announce("state", {{"state", "queued"}, {"reason", why}});
        spdlog::info("job {}: back in the queue: {}", id(), why);
    }

    void Conclude(const Result<SummarizeResponse>& result) {
        const StopReason reason = held_->stopped();
        if (reason == StopReason::kLeaseLost) return;  // not ours any more
        if (reason == StopReason::kStoreFailed) {
            Release("the job store failed while it ran");
            return;
        }
        if (result.ok()) {
            if (result->degraded) {
                // The client got an extractive answer; that is no result to keep.
                if (adopted_) return Release("upstream unreachable; answered its client without it");
                Finish(JobState::kFailed, MakeError(ErrorCode::kUpstreamUnreachable, result->reason));
                return;
            }
            SummarizeResponse stored = *result;
            stored.request_id = id();
            stored.cached = false;
            JobOutcome outcome{JobState::kDone, ResponseJson(stored).dump(), ""};
            auto finished = WithRetry([&] {
                return store_.Finish(id(), owner(), outcome, NewEvent{"done", outcome.result_json});
            });
            if (!finished.ok()) {
                spdlog::warn("job {}: cannot store its result: {}", id(), DescribeStoreError(finished.error()));
            } else {
                spdlog::info("job {}: done ({}, {} upstream calls)", id(), stored.route,
                             stored.usage.upstream_requests);
            }
            return;
        }
        const Error& e = result.error();
        if (reason == StopReason::kCancelRequested) {
            Finish(JobState::kCancelled, e, "cancelled", {{"state", "cancelled"}, {"reason", "cancelled by request"}});
        } else if (reason == StopReason::kShutdown || jobs_.service_.stopping()) {
            Release("this process is shutting down");
        } else if (sync_ && ticket_.cancel().cancelled()) {
            if (adopted_) return Release("the client that ran it went away");
            Finish(JobState::kCancelled, e, "cancelled", {{"state", "cancelled"}, {"reason", "the client went away"}});
        } else if (e.code == ErrorCode::kStoreUnavailable) {
            Release("the job store failed while it started");
        } else if ((!sync_ || adopted_) && IsTransientUpstreamFailure(e)) {
            Release("upstream: " + e.message);
        } else {
            Finish(JobState::kFailed, e);
            spdlog::warn("job {}: failed: {}", id(), e.message);
        }
    }

    Jobs& jobs_;
    JobStore& store_;
    Job job_;
    const WorkTicket& ticket_;
    const bool sync_;
    const bool adopted_;  // someone else's queued job, run for a /summarize client
    SummarizeRequest request_;
    std::shared_ptr<Held> held_;
    std::string replanned_;  // why the job was re-planned (kept in the saved plan)
    int saved_replans_ = 0;  // the state's re-plans when its skeleton was last saved
    std::atomic<int64_t> remaining_ms_{0};  // the executor's latest estimate of the time left
};

Result<SummarizeResponse> Jobs::Run(Job job, const WorkTicket& ticket, const SummarizeRequest* sync_request,
                                    const SummarizeEvents& events, Clock::time_point arrival, bool adopted) {
    JobStore* s = store();
    if (s == nullptr) return Unavailable();
    Execution execution(*this, *s, std::move(job), ticket, sync_request, adopted);
    return execution.Run(events, arrival);
}

}  // namespace summarizer
