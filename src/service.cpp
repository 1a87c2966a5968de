#include "summarizer/service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

#include "summarizer/extractive.hpp"
#include "summarizer/work_estimate.hpp"

namespace summarizer {
namespace {

using Clock = std::chrono::steady_clock;

double MsBetween(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

WorkTicket::WorkTicket(WorkTicket&& other) noexcept
    : service_(std::exchange(other.service_, nullptr)),
      key_(other.key_),
      cancel_(other.cancel_),
      batch_(other.batch_),
      admission_id_(other.admission_id_),
      plan_(std::move(other.plan_)),
      planned_for_(other.planned_for_) {}

namespace {

// What a plan depends on in a request (its id does not count).
size_t PlanKey(const SummarizeRequest& r) {
    size_t key = std::hash<std::string>{}(r.text);
    for (const size_t part : {std::hash<std::string>{}(r.language), static_cast<size_t>(r.style),
                              static_cast<size_t>(r.max_tokens), static_cast<size_t>(r.strategy)}) {
        key ^= part + 0x9e3779b97f4a7c15ULL + (key << 6) + (key >> 2);
    }
    return key;
}

}  // namespace

WorkTicket::~WorkTicket() {
    if (service_) service_->Release(key_, batch_, admission_id_);
}

Service::Service(const Config& config) : Service(config, nullptr, nullptr) {}

Service::Service(const Config& config, LlmEngine& engine, ModelHost* host) : Service(config, &engine, host) {}

Service::Service(const Config& config, LlmEngine* engine, ModelHost* host)
    : pool_(engine ? std::make_unique<UpstreamPool>(config, *engine, host, &metrics_)
                   : std::make_unique<UpstreamPool>(config, &metrics_)),
      config_(pool_->effective_config()),
      counter_(config_.pool.exact_tokens && pool_->CanCountTokens()
                   ? std::make_unique<TokenCounter>(*pool_, "", static_cast<size_t>(config_.pool.tokenize_cache_entries))
                   : nullptr),
      call_pool_("upstream call", std::max(16, 4 * config_.MaxInflight() * config_.MapConcurrency())),
      summarizer_(config_, *pool_, MakeObserver(), &call_pool_),
      admission_(config_.MaxInflight(), config_.server.max_queue, std::chrono::seconds(config_.server.queue_timeout_s),
                 &metrics_),
      batch_admission_(config_.MaxBatchInflight(), config_.server.max_batch_queue,
                       std::chrono::seconds(config_.server.queue_timeout_s), &metrics_),
      stream_pool_("stream", config_.MaxInflight() + config_.MaxBatchInflight()) {
    // Admission weighs the work ahead by the slots that will run it (Retry-After).
    admission_.SetParallelism(std::max(1, config_.PoolSlots(config_.buckets.front().name)));
    batch_admission_.SetParallelism(std::max(1, config_.PoolSlots(config_.MapBucket().name)));
}

Service::~Service() = default;

void Service::Start() { pool_->Start(); }

void Service::RefreshUpstreamState() { pool_->RefreshLoaded(); }

Result<WorkTicket> Service::Admit(const CancelToken& client_gone, const std::function<bool()>& still_wanted) {
    return Enter(admission_, false, 0, client_gone, still_wanted);
}

Result<WorkTicket> Service::Admit(const CancelToken& client_gone, const SummarizeRequest& request,
                                  const std::function<bool()>& still_wanted) {
    // A request that does not plan (bad max_tokens, too large for one pass) fails in Summarize;
    // it waits like a short one.
    auto plan = MakePlan(request);
    if (!plan.ok()) return Enter(admission_, false, 0, client_gone, still_wanted);
    const bool batch = plan->kind == RouteKind::kMapReduce;
    const auto planned = Clock::now();
    auto ticket =
        Enter(batch ? batch_admission_ : admission_, batch, EstimateWork(*plan, request), client_gone, still_wanted);
    // Summarize plans no second time when this plan still holds: the static policy's choice depends
    // on the request and the configuration alone; the cost policy's also on the moment's queues.
    constexpr auto kNoWait = std::chrono::milliseconds(5);
    if (ticket.ok() && (config_.routing.policy != "cost" || Clock::now() - planned < kNoWait)) {
        ticket->plan_ = std::move(plan.value());
        ticket->planned_for_ = PlanKey(request);
    }
    return ticket;
}

Result<WorkTicket> Service::Enter(Admission& lane, bool batch, double work_s, const CancelToken& client_gone,
                                  const std::function<bool()>& still_wanted) {
    auto wanted = [&] { return !client_gone.cancelled() && (!still_wanted || still_wanted()); };
    Admission::Id id = 0;
    switch (lane.Enter(work_s, &id, wanted)) {
        case AdmitResult::kAdmitted: break;
        case AdmitResult::kQueueFull:
        case AdmitResult::kTimedOut: {
            const int max_queue = batch ? config_.server.max_batch_queue : config_.server.max_queue;
            const std::string queue = batch ? "server.max_batch_queue" : "server.max_queue";
            const std::string what = batch ? "long work (map-reduce) " : "";
            const bool full = lane.queued() >= max_queue;
            Error e = MakeError(
                ErrorCode::kOverloaded,
                full
                    ? "the queue for " + what + "requests is full (" + queue + " = " + std::to_string(max_queue) +
                          "); retry after the Retry-After delay" + (batch ? ", or submit it as a job (POST /jobs)" : "")
                    : "no slot became free within server.queue_timeout_s = " +
                          std::to_string(config_.server.queue_timeout_s) + " s; retry after the Retry-After delay" +
                          (batch ? ", or submit it as a job (POST /jobs)" : ""));
            e.retry_after_s = lane.RetryAfterSeconds();
            return e;
        }
        case AdmitResult::kAbandoned: return MakeError(ErrorCode::kCancelled, "the client went away while queued");
        case AdmitResult::kShuttingDown:
            return MakeError(ErrorCode::kUpstreamUnavailable,
                             "summarizer is shutting down and takes no new requests; retry");
    }
    CancelToken cancel = client_gone.Child();
    std::lock_guard lock(active_mutex_);
    const uint64_t key = next_active_++;
    active_.emplace(key, cancel);
    return WorkTicket(this, key, cancel, batch, id);
}

std::optional<WorkTicket> Service::TryAdmitBatch() {
    Admission::Id id = 0;
    if (stopping_ || batch_admission_.TryEnter(0, &id) != AdmitResult::kAdmitted) return std::nullopt;
    CancelToken cancel;
    std::lock_guard lock(active_mutex_);
    const uint64_t key = next_active_++;
    active_.emplace(key, cancel);
    return WorkTicket(this, key, cancel, true, id);
}

void Service::SetWork(const WorkTicket& ticket, double work_s) {
    (ticket.batch_ ? batch_admission_ : admission_).SetWork(ticket.admission_id_, work_s);
}

double Service::EstimateWork(const Plan& plan, const SummarizeRequest& request) {
    return EstimateWorkSeconds(plan, config_, pool_->CurrentCosts(), request.max_tokens);
}

void Service::Release(uint64_t key, bool batch, uint64_t admission_id) {
    {
        std::lock_guard lock(active_mutex_);
        active_.erase(key);
    }
    (batch ? batch_admission_ : admission_).Leave(admission_id);
}

Error Service::ShutdownError() const {
    return MakeError(ErrorCode::kUpstreamUnavailable,
                     "summarizer is shutting down; the request was cancelled after server.shutdown_grace_s = " +
                         std::to_string(config_.server.shutdown_grace_s) + " s. Retry it");
}

Result<SummarizeResponse> Service::Summarize(const WorkTicket& ticket, const SummarizeRequest& request,
                                             const SummarizeEvents& events, Clock::time_point arrival,
                                             const ExecutionHooks* hooks) {
    const bool fallback = config_.degraded.extractive_fallback && (!hooks || hooks->allow_fallback);
    const auto started = Clock::now();
    if (fallback && pool_->AllDown()) {
        const std::string what = pool_->size() == 1 ? "the circuit to Ollama is open"
                                                    : "the circuit to every upstream is open";
        return Extractive(request, arrival, started, what + " (" + pool_->LastFailure() + ")", events);
    }
    Result<ExecutionState> state = MakeError(ErrorCode::kInternal, "not planned");
    if (hooks && hooks->prepare) {
        state = hooks->prepare();
    } else if (ticket.plan_ && ticket.planned_for_ == PlanKey(request)) {
        ExecutionState fresh;
        fresh.plan = *ticket.plan_;  // as Admit planned it (Summarizer::Start, safety 1)
        state = std::move(fresh);
    } else {
        state = summarizer_.Start(request);
    }
    if (!state.ok()) return state.error();
    std::atomic<bool> delta_sent{false};
    SummarizeEvents watched = events;
    if (events.on_delta) {
        watched.on_delta = [&](std::string_view piece) {
            delta_sent = true;
            events.on_delta(piece);
        };
    }
    if (hooks && hooks->on_step) {
        // The step is committed first; only then does its event go out.
        watched.on_step = [&](const StepId& step, const StepOutput& output, const ExecutionState& s) {
            hooks->on_step(step, output, s);
            if (events.on_step) events.on_step(step, output, s);
        };
    }
    const CancelToken& cancel = hooks && hooks->cancel ? *hooks->cancel : ticket.cancel();
    auto result = summarizer_.Execute(request, state.value(), watched, cancel, arrival);
    if (result.ok()) return result;
    Error error = result.error();
    if (ticket.cancel().cancelled()) {
        return stopping_ ? ShutdownError() : MakeError(ErrorCode::kCancelled, "the client went away");
    }
    if (fallback && IsUpstreamUnreachable(error) && !delta_sent) {
        return Extractive(request, arrival, started, error.message, events);
    }
    if ((error.code == ErrorCode::kUpstreamBusy || error.code == ErrorCode::kUpstreamUnreachable) &&
        error.retry_after_s == 0) {
        error.retry_after_s = (ticket.batch_ ? batch_admission_ : admission_).RetryAfterSeconds();
    }
    return error;
}

// The in-process answer when Ollama cannot be reached: extractive, marked degraded.
// `started`: when the request left the queue (queue_ms is the wait for a slot, as on the LLM route).
SummarizeResponse Service::Extractive(const SummarizeRequest& request, Clock::time_point arrival,
                                      Clock::time_point started, const std::string& why,
                                      const SummarizeEvents& events) {
    ExtractiveOptions options;
    options.style = request.style;
    options.max_chars = static_cast<size_t>(config_.degraded.extractive_max_chars);
    const TextStats stats = ComputeTextStats(request.text);
    if (request.max_tokens > 0) {
        // A client's token cap, in characters: ~2 per token for CJK text, ~4 otherwise.
        const size_t per_token = stats.CjkRatio() > 0.3 ? 2 : 4;
        options.max_chars = std::min(options.max_chars, static_cast<size_t>(request.max_tokens) * per_token);
    }
    auto extract = SummarizeExtractive(request.text, options);
    SummarizeResponse r;
    r.summary = std::move(extract.text);
    r.route = std::string(kExtractiveRoute);
    r.model = "none";
    r.request_id = request.request_id;
    r.degraded = true;
    r.language = Summarizer::ResolveLanguage(request, stats);
    r.reason = "extractive fallback: " + why;
    const auto finished = Clock::now();
    r.timings.total_ms = MsBetween(arrival, finished);
    r.timings.queue_ms = MsBetween(arrival, started);
    r.timings.ttft_ms = r.timings.total_ms;
    spdlog::warn("{}: answered with an extractive summary ({} of {} sentences): {}", request.request_id,
                 extract.picked.size(), extract.sentences, why);
    if (events.on_plan) {
        Plan plan;
        plan.kind = RouteKind::kExtractive;
        plan.model = r.model;
        events.on_plan(plan);
    }
    if (events.on_delta) events.on_delta(r.summary);
    return r;
}

Result<Plan> Service::MakePlan(const SummarizeRequest& request) const { return summarizer_.MakePlan(request); }

Result<ExecutionState> Service::Start(const SummarizeRequest& request, double safety) const {
    return summarizer_.Start(request, safety);
}

SummarizerObserver Service::MakeObserver() {
    SummarizerObserver o;
    o.on_upstream_call = [this](const GenerateRequest& g, const Result<GenerateResult>& r, double ms) {
        metrics_.ObserveUpstream(std::string(CallOutcome(r)), ms / 1000.0, r.ok() ? r->prompt_tokens : 0,
                                 r.ok() ? r->output_tokens : 0);
        // A warm model reports a load_duration of milliseconds; loading gemma3:4b takes seconds.
        constexpr auto kColdLoad = std::chrono::milliseconds(500);
        if (r.ok() && r->load >= kColdLoad) metrics_.ObserveLoad(g.model, std::chrono::duration<double>(r->load).count());
    };
    o.on_overflow = [this] { metrics_.CountOverflow(); };
    o.route_costs = [this] { return pool_->CurrentCosts(); };
    if (counter_) {
        o.exact_tokens = [this](std::string_view text, TokenCounter::Clock::time_point deadline) {
            return counter_->Count(text, deadline);
        };
    }
    return o;
}

Readiness Service::Ready() {
    Readiness r;
    const auto upstreams = config_.Upstreams();
    r.upstream_url = upstreams.front().url;
    if (stopping_) {
        r.shutting_down = true;
        r.reason = "shutting down";
        return r;
    }
    const PoolReadiness pool = pool_->Ready();
    r.circuit = std::string(CircuitStateName(pool_->AggregateCircuit()));
    r.ready = pool.ready;
    r.reason = pool.reason;
    r.missing_models = pool.missing_models;
    if (pool_->size() > 1) r.upstreams = pool.upstreams;
    r.extractive_instead = !r.ready && config_.degraded.extractive_fallback && !pool.reachable && pool.unreachable_only;
    return r;
}

ServiceStatus Service::Status() {
    ServiceStatus s;
    s.manager = pool_->PrimaryManagerStatus();
    s.upstreams = pool_->Status();
    if (counter_) s.token_counts = counter_->stats();
    s.inflight = metrics_.inflight();
    s.queued = metrics_.queued();
    return s;
}

std::string Service::RenderMetrics() {
    const CircuitState circuit = pool_->AggregateCircuit();
    std::string text = metrics_.Render();
    text += "# HELP summarizer_circuit_state Circuit to the upstreams: 0 closed (some upstream's is), 1 open (every "
            "upstream's: failing fast), 2 half-open.\n"
            "# TYPE summarizer_circuit_state gauge\n"
            "summarizer_circuit_state " +
            std::to_string(circuit == CircuitState::kClosed ? 0 : circuit == CircuitState::kOpen ? 1 : 2) +
            "\n# HELP summarizer_circuit_opens_total Times an upstream's circuit opened.\n"
            "# TYPE summarizer_circuit_opens_total counter\n"
            "summarizer_circuit_opens_total " + std::to_string(pool_->CircuitOpens()) + "\n";
    text += pool_->RenderMetrics();
    if (counter_) {
        const TokenCounterStats c = counter_->stats();
        text += "# HELP summarizer_token_counts_total Prompt token counts asked of the engines' tokenizers, by source "
                "(engine, cache, or estimated when the engine could not answer in time).\n"
                "# TYPE summarizer_token_counts_total counter\n"
                "summarizer_token_counts_total{source=\"engine\"} " + std::to_string(c.engine) + "\n"
                "summarizer_token_counts_total{source=\"cache\"} " + std::to_string(c.cached) + "\n"
                "summarizer_token_counts_total{source=\"estimated\"} " + std::to_string(c.estimated) + "\n";
    }
    return text;
}

void Service::BeginShutdown() {
    stopping_ = true;
    admission_.BeginShutdown();
    batch_admission_.BeginShutdown();
}

bool Service::WaitIdle(Clock::time_point deadline) {
    return admission_.WaitIdle(deadline) && batch_admission_.WaitIdle(deadline);
}

int Service::CancelAll() {
    admission_.Abort();
    batch_admission_.Abort();
    std::lock_guard lock(active_mutex_);
    for (auto& [key, token] : active_) token.Cancel();
    return static_cast<int>(active_.size());
}

}  // namespace summarizer
