#include "summarizer/service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>

#include "summarizer/extractive.hpp"
#include "summarizer/ollama_client.hpp"
#include "summarizer/work_estimate.hpp"

namespace summarizer {
namespace {

using Clock = std::chrono::steady_clock;

double MsBetween(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// An engine without residency control: nothing to load, nothing listed.
class NoModelHost : public ModelHost {
public:
    Result<std::vector<LoadedModel>> ListLoaded() override {
        return MakeError(ErrorCode::kUnsupported, "this engine does not list loaded models");
    }
    Result<GenerateResult> Load(const std::string&, int, const std::string&) override {
        return MakeError(ErrorCode::kUnsupported, "this engine does not load models on request");
    }
};

std::string_view OutcomeOf(const Result<GenerateResult>& r) {
    if (r.ok()) return "ok";
    switch (r.error().code) {
        case ErrorCode::kUpstreamTimeout: return "timeout";
        case ErrorCode::kUpstreamUnreachable:
        case ErrorCode::kUpstreamUnavailable:
        case ErrorCode::kUpstreamBusy: return "unavailable";
        case ErrorCode::kCancelled: return "cancelled";
        case ErrorCode::kContextOverflow: return "overflow";
        default: return "error";
    }
}

CircuitBreakerOptions BreakerOptions(const Config& c) {
    return CircuitBreakerOptions{c.ollama.circuit_failure_threshold, std::chrono::milliseconds(c.ollama.circuit_open_ms),
                                 "Ollama at " + c.ollama.url};
}

}  // namespace

WorkTicket::WorkTicket(WorkTicket&& other) noexcept
    : service_(std::exchange(other.service_, nullptr)),
      key_(other.key_),
      cancel_(other.cancel_),
      batch_(other.batch_),
      admission_id_(other.admission_id_) {}

WorkTicket::~WorkTicket() {
    if (service_) service_->Release(key_, batch_, admission_id_);
}

Service::Service(const Config& config)
    : Service(config, std::make_unique<OllamaClient>(OllamaClientOptions::FromConfig(config.ollama)), nullptr,
              nullptr) {}

Service::Service(const Config& config, LlmEngine& engine, ModelHost* host) : Service(config, nullptr, &engine, host) {}

Service::Service(const Config& config, std::unique_ptr<OllamaClient> own, LlmEngine* engine, ModelHost* host)
    : config_(config),
      own_client_(std::move(own)),
      no_host_(host == nullptr && !own_client_ ? std::make_unique<NoModelHost>() : nullptr),
      engine_(own_client_ ? *own_client_ : *engine),
      host_(host          ? *host
            : own_client_ ? static_cast<ModelHost&>(*own_client_)
                          : *no_host_),
      has_host_(host != nullptr || own_client_ != nullptr),
      breaker_(engine_, BreakerOptions(config)),
      scheduler_(SchedulerOptionsFromConfig(config)),
      scheduled_(breaker_, scheduler_),
      manager_(config, host_, &metrics_),
      tracked_(scheduled_, manager_),
      call_pool_("upstream call", std::max(16, 4 * config.MaxInflight() * config.MapConcurrency())),
      summarizer_(config, tracked_, MakeObserver(), &call_pool_),
      admission_(config.MaxInflight(), config.server.max_queue, std::chrono::seconds(config.server.queue_timeout_s),
                 &metrics_),
      batch_admission_(config.MaxBatchInflight(), config.server.max_batch_queue,
                       std::chrono::seconds(config.server.queue_timeout_s), &metrics_),
      stream_pool_("stream", config.MaxInflight() + config.MaxBatchInflight()) {
    admission_.SetParallelism(config.ollama.num_parallel);
    batch_admission_.SetParallelism(config.ollama.num_parallel);
}

Service::~Service() = default;

void Service::Start() {
    if (has_host_) manager_.Start();
}

void Service::RefreshUpstreamState() {
    if (has_host_) manager_.RefreshLoaded();
}

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
    return Enter(batch ? batch_admission_ : admission_, batch, EstimateWork(*plan, request), client_gone, still_wanted);
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
    return EstimateWorkSeconds(plan, config_, manager_.CurrentCosts(), request.max_tokens);
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
    if (fallback && breaker_.state() == CircuitState::kOpen) {
        return Extractive(request, arrival, started, "the circuit to Ollama is open (" + breaker_.last_failure() + ")",
                          events);
    }
    auto state = hooks && hooks->prepare ? hooks->prepare() : summarizer_.Start(request);
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
        metrics_.ObserveUpstream(std::string(OutcomeOf(r)), ms / 1000.0, r.ok() ? r->prompt_tokens : 0,
                                 r.ok() ? r->output_tokens : 0);
        // A warm model reports a load_duration of milliseconds; loading gemma3:4b takes seconds.
        constexpr auto kColdLoad = std::chrono::milliseconds(500);
        if (r.ok() && r->load >= kColdLoad) metrics_.ObserveLoad(g.model, std::chrono::duration<double>(r->load).count());
    };
    o.on_overflow = [this] { metrics_.CountOverflow(); };
    o.route_costs = [this] { return manager_.CurrentCosts(); };
    return o;
}

Readiness Service::Ready() {
    Readiness r;
    r.upstream_url = config_.ollama.url;
    if (stopping_) {
        r.shutting_down = true;
        r.reason = "shutting down";
        return r;
    }
    // Through the breaker: an open circuit answers at once (and a half-open one probes).
    auto health = breaker_.Health();
    r.circuit = std::string(CircuitStateName(breaker_.state()));
    if (!health.ok()) {
        r.reason = health.error().message;
        r.extractive_instead = config_.degraded.extractive_fallback && IsUpstreamUnreachable(health.error());
        return r;
    }
    std::string fix;
    for (const auto& bucket : config_.buckets) {
        const bool found = std::any_of(health->models.begin(), health->models.end(), [&](const std::string& name) {
            return name == bucket.model || name == bucket.model + ":latest";
        });
        if (found) continue;
        r.missing_models.push_back(bucket.model);
        fix += (fix.empty() ? "" : " && ") + ("ollama create " + bucket.model + " -f config/Modelfile." + bucket.name);
    }
    if (!r.missing_models.empty()) {
        std::string list;
        for (const auto& m : r.missing_models) list += (list.empty() ? "" : ", ") + m;
        r.reason = "bucket model(s) missing on the Ollama server: " + list + ". Run: ollama pull gemma3:4b && " + fix;
        return r;
    }
    r.ready = true;
    return r;
}

ServiceStatus Service::Status() {
    ServiceStatus s;
    s.manager = manager_.Status();
    s.inflight = metrics_.inflight();
    s.queued = metrics_.queued();
    return s;
}

std::string Service::RenderMetrics() {
    const CircuitState circuit = breaker_.state();
    std::string text = metrics_.Render();
    text += "# HELP summarizer_circuit_state Circuit to Ollama: 0 closed, 1 open (failing fast), 2 half-open.\n"
            "# TYPE summarizer_circuit_state gauge\n"
            "summarizer_circuit_state " +
            std::to_string(circuit == CircuitState::kClosed ? 0 : circuit == CircuitState::kOpen ? 1 : 2) +
            "\n# HELP summarizer_circuit_opens_total Times the circuit to Ollama opened.\n"
            "# TYPE summarizer_circuit_opens_total counter\n"
            "summarizer_circuit_opens_total " + std::to_string(breaker_.opens()) + "\n";
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
