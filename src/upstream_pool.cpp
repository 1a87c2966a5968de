#include "summarizer/upstream_pool.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include <spdlog/spdlog.h>

#include "summarizer/ollama_client.hpp"
#include "summarizer/openai_client.hpp"

namespace summarizer {
namespace {

using Clock = std::chrono::steady_clock;

// A host that failed a call is probed this often until it answers.
constexpr auto kAvoidedProbeInterval = std::chrono::milliseconds(250);

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

// Failures another upstream (or, once none is left, the same one after a backoff) may not have.
bool RetryableElsewhere(const Error& e) {
    switch (e.code) {
        case ErrorCode::kUpstreamUnreachable:
        case ErrorCode::kUpstreamBusy:
        case ErrorCode::kUpstreamUnavailable: return true;  // a model missing here may be there
        case ErrorCode::kUpstreamError:
        case ErrorCode::kUpstreamTimeout: return e.retryable;
        default: return false;
    }
}

std::string Escape(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        out += c == '\n' ? 'n' : c;
    }
    return out;
}

bool SameModel(const std::string& wanted, const std::string& name) {
    return name == wanted || name == wanted + ":latest" ||
           (wanted.ends_with(":latest") && name == wanted.substr(0, wanted.size() - 7));
}

}  // namespace

struct UpstreamPool::Host {
    UpstreamConfig spec;        // slots resolved
    bool slots_configured = false;
    Config host_config;         // the config as this host sees it: its buckets, its slots and URL
    std::unique_ptr<OllamaClient> ollama;
    std::unique_ptr<OpenAiClient> openai;
    std::unique_ptr<ModelHost> no_host;
    LlmEngine* engine = nullptr;
    ModelHost* model_host = nullptr;
    bool has_model_host = false;  // loads and /api/ps reads mean something
    bool residency = true;        // Ollama: the host swaps models (OpenAI-compatible: resident)
    std::unique_ptr<CircuitBreaker> breaker;
    std::unique_ptr<ModelManager> manager;

    std::atomic<bool> avoided{false};
    std::atomic<bool> probed{false};
    std::atomic<bool> probe_soon{false};

    mutable std::mutex mutex;  // the fields below
    std::string last_error;
    std::string served_model;  // openai: what it serves ("" until known)
    int64_t context = 0;       // openai: its context
    std::string flavor = "ollama";
    bool counts_tokens = false;
    int64_t calls = 0, failures = 0;
    UpstreamCounters counters;
    Clock::time_point next_probe{};

    bool Serves(const std::string& bucket) const { return Config::Serves(spec, bucket); }
    std::string Label() const { return "upstream " + spec.name; }
};

std::string BucketKey(const Config& config, const GenerateRequest& request) {
    if (!request.bucket.empty()) return request.bucket;
    for (const auto& b : config.buckets) {
        if (SameModel(b.model, request.model)) return b.name;
    }
    return request.model;
}

UpstreamPool::UpstreamPool(const Config& config, Metrics* metrics) : config_(config), metrics_(metrics) {
    Build(config, nullptr, nullptr);
}

UpstreamPool::UpstreamPool(const Config& config, LlmEngine& engine, ModelHost* host, Metrics* metrics)
    : config_(config), metrics_(metrics) {
    Build(config, &engine, host);
}

UpstreamPool::~UpstreamPool() {
    {
        std::lock_guard lock(probe_mutex_);
        stopping_ = true;
    }
    probe_cv_.notify_all();
    if (prober_.joinable()) prober_.join();
}

void UpstreamPool::Build(const Config& config, LlmEngine* engine, ModelHost* model_host) {
    rides_ = ComputeRides(config_);
    const std::vector<UpstreamConfig> upstreams = config.Upstreams();
    const bool implicit = config.upstreams.empty();
    for (size_t i = 0; i < upstreams.size(); ++i) {
        auto host = std::make_unique<Host>();
        host->spec = upstreams[i];
        host->slots_configured = implicit || config.upstreams[i].slots > 0;
        Config& hc = host->host_config;
        hc = config;
        hc.upstreams.clear();
        hc.ollama.num_parallel = host->spec.slots;
        if (host->spec.kind == "ollama") hc.ollama.url = host->spec.url;
        std::erase_if(hc.buckets, [&](const BucketConfig& b) { return !host->Serves(b.name); });
        if (engine) {  // an injected engine: one upstream, residency control only with a ModelHost
            host->engine = engine;
            host->has_model_host = model_host != nullptr;
            if (!model_host) host->no_host = std::make_unique<NoModelHost>();
            host->model_host = model_host ? model_host : host->no_host.get();
        } else if (host->spec.kind == "openai") {
            OpenAiClientOptions o;
            o.name = host->spec.name;
            o.url = host->spec.url;
            o.api_key = host->spec.api_key;
            o.connect_timeout_ms = config.ollama.connect_timeout_ms;
            o.first_token_timeout_s = config.ollama.first_token_timeout_s;
            o.idle_timeout_s = config.ollama.idle_timeout_s;
            o.total_timeout_s = config.ollama.total_timeout_s;
            o.tokenize_timeout_ms = config.pool.tokenize_timeout_ms;
            host->openai = std::make_unique<OpenAiClient>(o);
            host->engine = host->openai.get();
            host->no_host = std::make_unique<NoModelHost>();
            host->model_host = host->no_host.get();
            host->residency = false;
            host->flavor = "unknown";
            host->served_model = host->spec.model;
        } else {
            OllamaClientOptions o = OllamaClientOptions::FromConfig(hc.ollama);
            o.max_retries = 0;  // the pool retries, on another upstream when it can
            o.api_key = host->spec.api_key;
            host->ollama = std::make_unique<OllamaClient>(o);
            host->engine = host->ollama.get();
            host->model_host = host->ollama.get();
            host->has_model_host = true;
        }
        const std::string who = implicit ? "Ollama at " + host->spec.url
                                         : "upstream " + host->spec.name + " (" + host->spec.url + ")";
        host->breaker = std::make_unique<CircuitBreaker>(
            *host->engine, CircuitBreakerOptions{config.ollama.circuit_failure_threshold,
                                                 std::chrono::milliseconds(config.ollama.circuit_open_ms), who});
        hosts_.push_back(std::move(host));
    }
    DiscoverOpenAi();
    MakeEffectiveConfig();

    SchedulerOptions so = SchedulerOptionsFromConfig(config);
    for (const auto& host : hosts_) {
        const bool gate = host->residency ? config.scheduler.prefill_gate : config.pool.openai_prefill_gate;
        so.hosts.push_back(SchedulerHost{host->spec.name, host->spec.slots, gate, !host->residency, host->spec.buckets});
    }
    so.condition = [this](size_t h) { return ConditionOf(h); };
    scheduler_ = std::make_unique<UpstreamScheduler>(so);

    for (size_t h = 0; h < hosts_.size(); ++h) {
        Host& host = *hosts_[h];
        host.host_config.ollama.num_parallel = host.spec.slots;
        ModelManagerHooks hooks;
        hooks.waiting = [this](const std::string& bucket) { return scheduler_->Waiting(bucket); };
        if (hosts_.size() > 1) hooks.hot_kept_elsewhere = [this, h] { return HotKeptElsewhere(h); };
        hooks.on_loaded = [this, h](const std::string& bucket) { scheduler_->NoteLoaded(h, bucket); };
        hooks.residency = host.residency;
        host.manager = std::make_unique<ModelManager>(host.host_config, *host.model_host, metrics_, std::move(hooks));
    }
}

// OpenAI-compatible upstreams: which model, what context, how many slots (llama.cpp says).
void UpstreamPool::DiscoverOpenAi() {
    for (auto& host : hosts_) {
        if (!host->openai) continue;
        auto info = host->openai->Discover();
        std::lock_guard lock(host->mutex);
        if (!info.ok()) {
            host->last_error = info.error().message;
            spdlog::warn("upstream {}: cannot ask what it serves ({}); it is used once it answers", host->spec.name,
                         info.error().message);
            continue;
        }
        host->flavor = std::string(OpenAiFlavorName(info->flavor));
        host->counts_tokens = info->flavor != OpenAiFlavor::kUnknown;
        host->context = info->context_tokens;
        if (host->served_model.empty() && !info->models.empty()) host->served_model = info->models.front();
        if (!host->slots_configured && info->slots > 0) host->spec.slots = info->slots;
        spdlog::info("upstream {} ({} at {}): model {}, context {} tokens, {} slot(s)", host->spec.name, host->flavor,
                     host->spec.url, host->served_model.empty() ? "?" : host->served_model, host->context,
                     host->spec.slots);
    }
}

void UpstreamPool::MakeEffectiveConfig() {
    effective_ = config_;
    if (!config_.upstreams.empty()) {
        effective_.upstreams.clear();
        for (const auto& host : hosts_) effective_.upstreams.push_back(host->spec);
    }
    for (auto& bucket : effective_.buckets) {
        for (const auto& host : hosts_) {
            std::lock_guard lock(host->mutex);
            if (!host->openai || !host->Serves(bucket.name) || host->context <= 0 || host->context >= bucket.num_ctx) {
                continue;
            }
            spdlog::warn("bucket {}: upstream {} serves at most {} tokens ({}), under its num_ctx {}: planned with {}",
                         bucket.name, host->spec.name, host->context,
                         host->flavor == "llama.cpp" ? "n_ctx per slot" : "max_model_len", bucket.num_ctx,
                         host->context);
            bucket.num_ctx = static_cast<int>(host->context);
        }
    }
    for (auto& host : hosts_) {
        for (auto& b : host->host_config.buckets) {
            if (const BucketConfig* e = effective_.FindBucket(b.name)) b.num_ctx = e->num_ctx;
        }
    }
}

void UpstreamPool::Start() {
    for (auto& host : hosts_) {
        if (host->has_model_host || !host->residency) host->manager->Start();
    }
    std::lock_guard lock(probe_mutex_);
    if (!prober_.joinable()) prober_ = std::thread([this] { ProbeLoop(); });
}

HostCondition UpstreamPool::ConditionOf(size_t h) const {
    const Host& host = *hosts_[h];
    if (host.breaker->state() == CircuitState::kOpen) return HostCondition::kDown;
    if (host.openai) {
        std::lock_guard lock(host.mutex);
        if (host.served_model.empty()) return HostCondition::kDown;  // not known yet what to ask it for
    }
    return host.avoided ? HostCondition::kAvoid : HostCondition::kUp;
}

std::string UpstreamPool::ModelFor(const Host& host, const GenerateRequest& request) const {
    if (!host.openai) return request.model;
    std::lock_guard lock(host.mutex);
    return host.served_model.empty() ? request.model : host.served_model;
}

bool UpstreamPool::HotKeptElsewhere(size_t h) const {
    const BucketConfig* hot = config_.HotBucket();
    if (!hot) return false;
    for (size_t other = 0; other < hosts_.size(); ++other) {
        const Host& host = *hosts_[other];
        if (other == h || !host.residency || !host.Serves(hot->name) || ConditionOf(other) != HostCondition::kUp) {
            continue;
        }
        if (scheduler_->host_stats(other).current_model == hot->name) return true;
    }
    return false;
}

bool UpstreamPool::OtherCandidate(const GenerateRequest& request, const std::vector<size_t>& exclude) const {
    for (size_t h = 0; h < hosts_.size(); ++h) {
        if (std::find(exclude.begin(), exclude.end(), h) != exclude.end()) continue;
        if (hosts_[h]->Serves(request.bucket) && ConditionOf(h) != HostCondition::kDown) return true;
    }
    return false;
}

Result<GenerateResult> UpstreamPool::Attempt(size_t h, const GenerateRequest& request, const TokenCallback& on_token,
                                             const CancelToken& cancel, bool retry) {
    Host& host = *hosts_[h];
    GenerateRequest call = request;
    call.model = ModelFor(host, request);
    host.manager->OnCallStart(request);
    const auto begin = Clock::now();
    auto result = retry ? host.breaker->GenerateRetry(call, on_token, cancel) : host.breaker->Generate(call, on_token, cancel);
    host.manager->OnCallEnd(request, result);
    const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    {
        std::lock_guard lock(host.mutex);
        ++host.calls;
        ++host.counters.outcomes[std::string(CallOutcome(result))];
        host.counters.seconds += seconds;
        if (!result.ok() && result.error().code != ErrorCode::kCancelled &&
            result.error().code != ErrorCode::kContextOverflow) {
            ++host.failures;
            host.last_error = result.error().message;
        }
    }
    if (result.ok()) {
        result->upstream = host.spec.name;
        if (host.avoided.exchange(false)) scheduler_->Wake();
    }
    return result;
}

void UpstreamPool::MarkFailed(size_t h, const Error& error) {
    Host& host = *hosts_[h];
    if (!host.avoided.exchange(true)) {
        spdlog::warn("{} failed a call ({}); other upstreams take its calls until it answers a probe", host.Label(),
                     error.message);
    }
    host.probe_soon = true;
    {
        std::lock_guard lock(probe_mutex_);
        probe_now_ = true;
    }
    probe_cv_.notify_all();
}

Result<GenerateResult> UpstreamPool::Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                              const CancelToken& cancel) {
    GenerateRequest r = request;
    r.bucket = BucketKey(config_, request);
    // Text that reached the caller cannot be taken back: no retry after the first piece handed on. A
    // call without a token callback (a map or intermediate merge) hands nothing on: it is retried whole.
    bool delivered = false;
    std::vector<size_t> exclude;
    std::vector<size_t> tried;  // a call's failures count once per upstream in its breaker
    std::optional<Error> last;
    int retries = 0;
    const auto first_attempt = Clock::now();
    const auto& o = config_.ollama;
    for (;;) {
        auto lease = scheduler_->Acquire(CallSpec{r.bucket, r.interactive, exclude, RidesFor(r.bucket)}, cancel);
        if (!lease.ok()) {
            if (lease.error().code == ErrorCode::kCancelled) return lease.error();
            if (last) return *last;
            // Nothing can take it: every upstream serving the bucket is down. Say it as the circuit does.
            for (const auto& host : hosts_) {
                if (host->Serves(r.bucket) && host->breaker->state() == CircuitState::kOpen) {
                    return host->breaker->RefusalError();
                }
            }
            return lease.error();
        }
        const size_t h = lease->host();
        const TokenCallback marking = [&](std::string_view piece) {
            lease->MarkFirstToken();
            if (!on_token) return;
            delivered = true;
            on_token(piece);
        };
        const bool retry = std::find(tried.begin(), tried.end(), h) != tried.end();
        if (!retry) tried.push_back(h);
        GenerateRequest riding;
        if (lease->key() != r.bucket) {
            // The host has a larger bucket loaded: the call runs there, with that bucket's context
            // (the prompt was planned for a smaller one) and keep_alive, rather than reload its own.
            const BucketConfig* ride = config_.FindBucket(lease->key());
            if (ride) {
                std::lock_guard lock(hosts_[h]->mutex);
                ++hosts_[h]->counters.rides;
                riding = r;
                riding.bucket = ride->name;
                riding.model = ride->model;
                riding.context_tokens = static_cast<int>(ride->num_ctx);
                riding.keep_alive = ride->keep_alive;
            }
        }
        const GenerateRequest& sent = riding.bucket.empty() ? r : riding;
        auto result = Attempt(h, sent, marking, cancel, retry);
        if (result.ok()) {
            result->model = sent.model;
            return result;
        }
        Error e = result.error();
        // Failed for good: the caller hears it while the slot is still held, so it can stop this
        // call's siblings before the scheduler starts the next one of them.
        const auto give_up = [&](Error error) {
            if (r.on_failure) r.on_failure(error);
            return error;
        };
        if (!RetryableElsewhere(e) || delivered || cancel.cancelled()) return give_up(e);
        if (hosts_.size() > 1 && e.message.rfind("upstream ", 0) != 0) e.message = hosts_[h]->Label() + ": " + e.message;
        last = e;
        exclude.push_back(h);
        if (hosts_.size() > 1) MarkFailed(h, e);
        if (OtherCandidate(r, exclude)) {
            lease->Release();  // the next call may start now
            std::lock_guard lock(hosts_[h]->mutex);
            ++hosts_[h]->counters.failovers;
            spdlog::warn("call {} failed on {} ({}); retrying it on another upstream", r.tag, hosts_[h]->spec.name,
                         e.message);
            continue;
        }
        // No other upstream left: the same ones again after a backoff, within the retry limits.
        if (!e.retryable || retries >= o.max_retries) return give_up(e);
        thread_local std::mt19937 rng{std::random_device{}()};
        double backoff_ms = o.retry_backoff_ms * std::pow(2.0, retries);
        backoff_ms *= std::uniform_real_distribution<double>(0.5, 1.5)(rng);
        const double spent_ms = std::chrono::duration<double, std::milli>(Clock::now() - first_attempt).count();
        if (spent_ms + backoff_ms > o.retry_budget_s * 1000.0) {
            spdlog::warn("upstream call {} failed ({}); not retried: the retry budget of {} s is spent", r.tag,
                         e.message, o.retry_budget_s);
            return give_up(e);
        }
        lease->Release();  // the next call may start during the backoff
        spdlog::warn("upstream call {} failed ({}); retry {}/{} in {:.0f} ms", r.tag, e.message, retries + 1,
                     o.max_retries, backoff_ms);
        const auto until = Clock::now() + std::chrono::duration<double, std::milli>(backoff_ms);
        while (Clock::now() < until) {
            if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "cancelled while waiting to retry");
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        ++retries;
        exclude.clear();
    }
}

std::map<std::string, std::vector<std::string>> UpstreamPool::ComputeRides(const Config& config) {
    std::map<std::string, std::vector<std::string>> rides;
    if (!config.scheduler.ride_loaded_bucket) return rides;
    const double usable = config.vram.budget_mb - config.vram.reserve_mb;
    std::vector<const BucketConfig*> fitting;  // never ride onto a bucket that would spill to the CPU
    for (const auto& b : config.buckets) {
        if (EstimateBucketVramMb(config, b) <= usable) fitting.push_back(&b);
    }
    std::sort(fitting.begin(), fitting.end(), [](const auto* a, const auto* b) { return a->num_ctx < b->num_ctx; });
    for (const auto& own : config.buckets) {
        for (const auto* b : fitting) {
            if (b->num_ctx > own.num_ctx) rides[own.name].push_back(b->name);
        }
    }
    return rides;
}

const std::vector<std::string>& UpstreamPool::RidesFor(const std::string& bucket) const {
    static const std::vector<std::string> kNone;
    const auto it = rides_.find(bucket);
    return it == rides_.end() ? kNone : it->second;
}

bool UpstreamPool::CanCountTokens() const {
    return std::any_of(hosts_.begin(), hosts_.end(), [](const auto& host) {
        std::lock_guard lock(host->mutex);
        return host->counts_tokens;
    });
}

Result<int64_t> UpstreamPool::CountTokens(const std::string&, const std::string& text) {
    bool any = false;
    std::optional<Error> last;
    for (size_t h = 0; h < hosts_.size(); ++h) {
        Host& host = *hosts_[h];
        std::string model;
        {
            std::lock_guard lock(host.mutex);
            if (!host.counts_tokens) continue;
            model = host.served_model;
        }
        any = true;
        if (ConditionOf(h) != HostCondition::kUp) continue;
        auto counted = host.engine->CountTokens(model, text);
        if (counted.ok()) return counted;
        last = counted.error();
        if (counted.error().code == ErrorCode::kUnsupported) {
            std::lock_guard lock(host.mutex);
            host.counts_tokens = false;
        }
    }
    if (!any) return MakeError(ErrorCode::kUnsupported, "no upstream can count tokens (POST /tokenize)");
    return last.value_or(MakeError(ErrorCode::kUpstreamUnreachable, "no upstream that counts tokens is usable now"));
}

Result<int64_t> UpstreamPool::ContextSize(const std::string&) {
    int64_t smallest = 0;
    for (const auto& host : hosts_) {
        std::lock_guard lock(host->mutex);
        if (host->context > 0 && (smallest == 0 || host->context < smallest)) smallest = host->context;
    }
    if (smallest == 0) return MakeError(ErrorCode::kUnsupported, "no upstream states its context size");
    return smallest;
}

Result<EngineHealth> UpstreamPool::Health() {
    EngineHealth all;
    std::optional<Error> last;
    for (auto& host : hosts_) {
        auto health = host->breaker->Health();
        if (!health.ok()) {
            last = health.error();
            continue;
        }
        all.models.insert(all.models.end(), health->models.begin(), health->models.end());
    }
    if (all.models.empty() && last) return *last;
    return all;
}

void UpstreamPool::Probe(size_t h) {
    Host& host = *hosts_[h];
    auto health = host.engine->Health();
    const bool was_avoided = host.avoided.load();
    {
        std::lock_guard lock(host.mutex);
        if (health.ok()) {
            host.last_error.clear();
            if (host.openai) {
                const OpenAiServerInfo info = host.openai->info();
                host.flavor = std::string(OpenAiFlavorName(info.flavor));
                host.counts_tokens = host.counts_tokens || info.flavor != OpenAiFlavor::kUnknown;
                host.context = info.context_tokens;
                if (host.served_model.empty() && !info.models.empty()) host.served_model = info.models.front();
                for (const auto& b : host.host_config.buckets) {
                    if (host.context > 0 && host.context < b.num_ctx) {
                        host.last_error = "serves at most " + std::to_string(host.context) + " tokens, under bucket " +
                                          b.name + "'s num_ctx " + std::to_string(b.num_ctx) +
                                          " (learned after start-up: restart to plan with it)";
                    }
                }
            }
        } else {
            host.last_error = health.error().message;
        }
        host.next_probe = Clock::now() + (health.ok() ? std::chrono::milliseconds(config_.pool.probe_interval_ms)
                                                      : std::chrono::milliseconds(kAvoidedProbeInterval));
    }
    host.probed = true;
    if (health.ok()) {
        host.avoided = false;
        if (was_avoided) spdlog::info("{} answers again: it takes calls", host.Label());
    } else if (hosts_.size() > 1) {
        host.avoided = true;
    }
    scheduler_->Wake();
}

void UpstreamPool::ProbeLoop() {
    for (;;) {
        Clock::time_point due = Clock::now() + std::chrono::milliseconds(config_.pool.probe_interval_ms);
        std::vector<size_t> now_due;
        const auto now = Clock::now();
        for (size_t h = 0; h < hosts_.size(); ++h) {
            Host& host = *hosts_[h];
            std::lock_guard lock(host.mutex);
            if (host.probe_soon.exchange(false) || host.next_probe <= now) {
                now_due.push_back(h);
            } else {
                due = std::min(due, host.next_probe);
            }
        }
        for (size_t h : now_due) Probe(h);
        std::unique_lock lock(probe_mutex_);
        if (stopping_) return;
        if (!now_due.empty()) continue;
        probe_cv_.wait_until(lock, due, [&] { return stopping_ || probe_now_; });
        probe_now_ = false;
        if (stopping_) return;
    }
}

RouteCosts UpstreamPool::CurrentCosts() const {
    RouteCosts all;
    std::vector<std::optional<RouteCosts>> per_host(hosts_.size());
    int slots = 0, ollama_hot = 0;
    bool restores = false;
    double reload_sum = 0;
    int reload_hosts = 0;
    const BucketConfig* hot = config_.HotBucket();
    for (size_t h = 0; h < hosts_.size(); ++h) {
        const Host& host = *hosts_[h];
        if (ConditionOf(h) == HostCondition::kDown) continue;
        per_host[h] = host.manager->CurrentCosts();
        slots += host.spec.slots;
        if (host.residency) {
            reload_sum += per_host[h]->reload_ms;
            ++reload_hosts;
            if (hot && host.Serves(hot->name)) ++ollama_hot;
            restores = restores || per_host[h]->restore_hot;
        }
        all.output_tokens = std::max(all.output_tokens, per_host[h]->output_tokens);
    }
    for (const auto& bucket : config_.buckets) {
        BucketCosts c;
        bool any = false, all_spill = true;
        for (size_t h = 0; h < hosts_.size(); ++h) {
            if (!per_host[h]) continue;
            const auto& buckets = hosts_[h]->host_config.buckets;
            const auto it = std::find_if(buckets.begin(), buckets.end(),
                                         [&](const BucketConfig& b) { return b.name == bucket.name; });
            if (it == buckets.end()) continue;
            const BucketCosts& bc = per_host[h]->buckets[static_cast<size_t>(it - buckets.begin())];
            if (!any || (bc.loaded && !c.loaded)) {
                const bool loaded = c.loaded || bc.loaded;
                c = bc;
                c.loaded = loaded;
            }
            any = true;
            all_spill = all_spill && bc.spilling;
        }
        if (any) c.spilling = all_spill;
        c.pending = scheduler_->Pending(bucket.name);
        all.buckets.push_back(c);
    }
    all.reload_ms = reload_hosts > 0 ? reload_sum / reload_hosts : config_.routing.cost_reload_ms;
    all.spill_slowdown = config_.routing.cost_spill_slowdown;
    all.slots = std::max(1, slots);
    // After another bucket ran, the hot one is loaded back only where no other host keeps it.
    all.restore_hot = restores && ollama_hot <= 1;
    return all;
}

void UpstreamPool::RefreshLoaded() {
    for (auto& host : hosts_) {
        if (host->has_model_host) host->manager->RefreshLoaded();
    }
}

bool UpstreamPool::AllDown() const {
    return std::all_of(hosts_.begin(), hosts_.end(),
                       [](const auto& host) { return host->breaker->state() == CircuitState::kOpen; });
}

CircuitState UpstreamPool::AggregateCircuit() const {
    bool half = false;
    for (const auto& host : hosts_) {
        const CircuitState s = host->breaker->state();
        if (s == CircuitState::kClosed) return CircuitState::kClosed;
        half = half || s == CircuitState::kHalfOpen;
    }
    return half ? CircuitState::kHalfOpen : CircuitState::kOpen;
}

int64_t UpstreamPool::CircuitOpens() const {
    int64_t n = 0;
    for (const auto& host : hosts_) n += host->breaker->opens();
    return n;
}

std::string UpstreamPool::LastFailure() const {
    std::string out;
    for (const auto& host : hosts_) {
        const std::string f = host->breaker->last_failure();
        if (f.empty()) continue;
        out += (out.empty() ? "" : "; ") + (hosts_.size() > 1 ? host->spec.name + ": " : "") + f;
    }
    return out;
}

PoolReadiness UpstreamPool::Ready() {
    PoolReadiness r;
    std::map<std::string, bool> served;
    std::map<std::string, std::string> missing_on;  // bucket -> a model missing where it is served
    bool any_unreachable = false;
    for (auto& host : hosts_) {
        // Through the breaker: an open circuit answers at once (and a half-open one probes).
        auto health = host->breaker->Health();
        if (!health.ok()) {
            r.upstreams.emplace_back(host->spec.name, health.error().message);
            if (r.reason.empty()) r.reason = health.error().message;
            any_unreachable = any_unreachable || IsUpstreamUnreachable(health.error());
            continue;
        }
        r.reachable = true;
        std::vector<std::string> missing;
        for (const auto& bucket : host->host_config.buckets) {
            const std::string model = ModelFor(*host, GenerateRequest{bucket.name, bucket.model});
            const bool found = std::any_of(health->models.begin(), health->models.end(),
                                           [&](const std::string& name) { return SameModel(model, name); });
            if (found) {
                served[bucket.name] = true;
            } else {
                missing.push_back(model);
                missing_on.emplace(bucket.name, model);
            }
        }
        std::string list;
        for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        r.upstreams.emplace_back(host->spec.name, missing.empty() ? "ready" : "missing model(s): " + list);
    }
    std::vector<std::string> unserved;
    for (const auto& bucket : config_.buckets) {
        if (served[bucket.name]) continue;
        unserved.push_back(bucket.name);
        if (auto it = missing_on.find(bucket.name); it != missing_on.end()) r.missing_models.push_back(it->second);
    }
    r.ready = unserved.empty();
    r.unreachable_only = !r.ready && r.missing_models.empty() && any_unreachable;
    if (r.ready) {
        r.reason.clear();
    } else if (!r.missing_models.empty() && hosts_.size() == 1 && !hosts_[0]->openai) {
        std::string list, fix;
        for (const auto& bucket : config_.buckets) {
            if (std::find(r.missing_models.begin(), r.missing_models.end(), bucket.model) == r.missing_models.end()) {
                continue;
            }
            list += (list.empty() ? "" : ", ") + bucket.model;
            fix += (fix.empty() ? "" : " && ") + ("ollama create " + bucket.model + " -f config/Modelfile." + bucket.name);
        }
        r.reason = "bucket model(s) missing on the Ollama server: " + list + ". Run: ollama pull gemma3:4b && " + fix;
    } else if (hosts_.size() > 1 || r.reason.empty()) {
        std::string list;
        for (const auto& b : unserved) list += (list.empty() ? "" : ", ") + b;
        std::string why;
        for (const auto& [name, state] : r.upstreams) {
            if (state != "ready") why += (why.empty() ? "" : "; ") + name + ": " + state;
        }
        r.reason = "no upstream serves bucket(s) " + list + " now (" + why + ")";
    }
    return r;
}

std::vector<UpstreamStatus> UpstreamPool::Status() {
    std::vector<UpstreamStatus> out;
    for (size_t h = 0; h < hosts_.size(); ++h) {
        Host& host = *hosts_[h];
        UpstreamStatus s;
        s.manager = host.manager->Status();
        const SchedulerHostStats stats = scheduler_->host_stats(h);
        s.name = host.spec.name;
        s.kind = host.spec.kind;
        s.url = host.spec.url;
        s.circuit = std::string(CircuitStateName(host.breaker->state()));
        s.slots = stats.slots;
        s.inflight = stats.active;
        s.health = host.avoided ? "avoided" : host.probed ? "up" : "unknown";
        for (const auto& b : host.host_config.buckets) {
            s.buckets.push_back(b.name);
            s.bucket_context[b.name] = b.num_ctx;
        }
        if (host.residency) {
            for (const auto& b : s.manager.buckets) {
                if (b.loaded) s.loaded.push_back(b.name);
            }
        } else {
            s.loaded = s.buckets;
        }
        std::lock_guard lock(host.mutex);
        s.flavor = host.flavor;
        s.model = host.served_model;
        s.last_error = host.last_error;
        s.calls = host.calls;
        s.failures = host.failures;
        s.failovers = host.counters.failovers;
        s.context_tokens = host.context;
        s.counts_tokens = host.counts_tokens;
        out.push_back(std::move(s));
    }
    return out;
}

ManagerStatus UpstreamPool::PrimaryManagerStatus() { return hosts_.front()->manager->Status(); }

std::string UpstreamPool::RenderMetrics() const {
    std::ostringstream out;
    out << "# HELP summarizer_upstream_calls_total Calls placed on each upstream, by outcome (a retried call "
           "counts on every upstream it tried).\n# TYPE summarizer_upstream_calls_total counter\n";
    for (const auto& host : hosts_) {
        std::lock_guard lock(host->mutex);
        for (const auto& [outcome, n] : host->counters.outcomes) {
            out << "summarizer_upstream_calls_total{upstream=\"" << Escape(host->spec.name) << "\",outcome=\"" << outcome
                << "\"} " << n << "\n";
        }
    }
    const auto gauge = [&](const char* name, const char* help, const char* type, const auto& value) {
        out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
        for (size_t h = 0; h < hosts_.size(); ++h) {
            out << name << "{upstream=\"" << Escape(hosts_[h]->spec.name) << "\"} " << value(h) << "\n";
        }
    };
    gauge("summarizer_upstream_call_seconds_total", "Time spent in calls on each upstream.", "counter", [&](size_t h) {
        std::lock_guard lock(hosts_[h]->mutex);
        return hosts_[h]->counters.seconds;
    });
    gauge("summarizer_upstream_failovers_total",
          "Calls that failed on this upstream before any text reached the client and were retried on another.",
          "counter", [&](size_t h) {
              std::lock_guard lock(hosts_[h]->mutex);
              return hosts_[h]->counters.failovers;
          });
    gauge("summarizer_upstream_rides_total",
          "Calls that ran on a larger bucket this upstream had loaded instead of reloading their own "
          "(scheduler.ride_loaded_bucket).",
          "counter", [&](size_t h) {
              std::lock_guard lock(hosts_[h]->mutex);
              return hosts_[h]->counters.rides;
          });
    gauge("summarizer_upstream_inflight", "Calls running on each upstream now.", "gauge",
          [&](size_t h) { return scheduler_->host_stats(h).active; });
    gauge("summarizer_upstream_slots", "Calls each upstream takes at once.", "gauge",
          [&](size_t h) { return hosts_[h]->spec.slots; });
    gauge("summarizer_upstream_up", "1 while the upstream takes calls (answers its probes, circuit not open).", "gauge",
          [&](size_t h) { return ConditionOf(h) == HostCondition::kUp ? 1 : 0; });
    gauge("summarizer_upstream_circuit_state", "Each upstream's circuit: 0 closed, 1 open, 2 half-open.", "gauge",
          [&](size_t h) {
              const CircuitState s = hosts_[h]->breaker->state();
              return s == CircuitState::kClosed ? 0 : s == CircuitState::kOpen ? 1 : 2;
          });
    return out.str();
}

void UpstreamPool::WaitIdle() {
    for (auto& host : hosts_) host->manager->WaitIdle();
}

}  // namespace summarizer
