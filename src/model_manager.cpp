#include "summarizer/model_manager.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "summarizer/task_pool.hpp"

namespace summarizer {
namespace {

// Ollama reports a few milliseconds of load_duration even when the runner was already loaded;
// above this a runner was really (re)loaded.
constexpr double kRunnerLoadMs = 250.0;
// Weight of the newest sample in the moving averages: recent enough to follow a changed server,
// smooth enough that one odd call does not flip the routing.
constexpr double kAlpha = 0.3;
// A prompt or output this short says little about the rate (fixed overheads dominate).
constexpr int64_t kMinPrefillSample = 32;
constexpr int64_t kMinDecodeSample = 8;

double Ewma(double old_value, double sample) { return old_value <= 0 ? sample : (1 - kAlpha) * old_value + kAlpha * sample; }

std::string Mib(double mb) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", mb);
    std::string s = buf;
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
    return s + " MiB";
}

bool SameModel(const std::string& bucket_model, const std::string& name) {
    return name == bucket_model || name == bucket_model + ":latest" ||
           (bucket_model.size() > 7 && bucket_model.ends_with(":latest") &&
            name == bucket_model.substr(0, bucket_model.size() - 7));
}

}  // namespace

ModelManager::ModelManager(const Config& config, ModelHost& host, Metrics* metrics, ModelManagerHooks hooks)
    : config_(config),
      host_(host),
      metrics_(metrics),
      hooks_(std::move(hooks)),
      buckets_(config.buckets.size()),
      hot_(config.HotBucket() ? std::optional<size_t>(config.BucketIndex(*config.HotBucket())) : std::nullopt),
      reload_ms_(config.routing.cost_reload_ms) {
    if (!hooks_.residency) {
        for (auto& b : buckets_) b.loaded = true;  // the engine keeps its model resident
    }
    worker_ = std::thread([this] { WorkerLoop(); });
}

ModelManager::~ModelManager() {
    {
        std::lock_guard lock(work_mutex_);
        stopping_ = true;
        tasks_.clear();
    }
    work_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

std::vector<std::string> ModelManager::CheckVramBudget(const Config& config) {
    std::vector<std::string> warnings;
    const double usable = config.vram.budget_mb - config.vram.reserve_mb;
    for (const auto& bucket : config.buckets) {
        const double need = EstimateBucketVramMb(config, bucket);
        if (need <= usable) continue;
        std::string fixes;
        auto add_fix = [&](const std::string& fix) { fixes += (fixes.empty() ? "" : "; or ") + fix; };
        if (config.vram.kv_cache_type == "f16" || config.vram.kv_cache_type == "q8_0") {
            Config alt = config;
            alt.vram.kv_cache_type = config.vram.kv_cache_type == "f16" ? "q8_0" : "q4_0";
            add_fix("OLLAMA_KV_CACHE_TYPE=" + alt.vram.kv_cache_type + " with OLLAMA_FLASH_ATTENTION=1 (~" +
                    Mib(EstimateBucketVramMb(alt, bucket)) + ")");
        }
        for (int slots = config.ollama.num_parallel - 1; slots >= 1; --slots) {
            Config alt = config;
            alt.ollama.num_parallel = slots;
            if (EstimateBucketVramMb(alt, bucket) <= usable) {
                add_fix("OLLAMA_NUM_PARALLEL=" + std::to_string(slots) + " (~" + Mib(EstimateBucketVramMb(alt, bucket)) +
                        ")");
                break;
            }
        }
        Config per_token = config;
        BucketConfig one_k = bucket;
        one_k.num_ctx = 1024;
        const double fixed = config.vram.weights_mb + config.vram.fixed_mb;
        const double kv_per_1k = EstimateBucketVramMb(per_token, one_k) - fixed;
        if (kv_per_1k > 0 && usable > fixed) {
            const int64_t max_ctx = static_cast<int64_t>((usable - fixed) / kv_per_1k) * 1024;
            if (max_ctx >= 2048) add_fix("num_ctx <= " + std::to_string(max_ctx) + " for this bucket");
        }
        if (fixes.empty()) fixes = "a GPU with more memory, or raise vram.budget_mb if it is wrong";
        warnings.push_back("bucket " + bucket.name + " (" + bucket.model + ", num_ctx " + std::to_string(bucket.num_ctx) +
                           " x " + std::to_string(config.ollama.num_parallel) + " slot(s), KV cache " +
                           config.vram.kv_cache_type + ") needs ~" + Mib(need) + " of VRAM but " + Mib(usable) +
                           " are usable (vram.budget_mb " + std::to_string(config.vram.budget_mb) +
                           " - vram.reserve_mb " + std::to_string(config.vram.reserve_mb) +
                           "): Ollama will run part of it on the CPU, several times slower. Fix: " + fixes);
    }
    return warnings;
}

void ModelManager::Start() {
    if (!hooks_.residency) return;
    auto warnings = CheckVramBudget(config_);
    for (const auto& w : warnings) spdlog::warn("{}", w);
    {
        std::lock_guard lock(mutex_);
        warnings_ = std::move(warnings);
    }
    if (config_.vram.preload_hot_bucket && hot_) {
        Post([this] { LoadHotBucket("start-up"); });
    } else {
        Post([this] { RefreshLoaded(); });
    }
}

std::optional<size_t> ModelManager::BucketIndexOf(const std::string& model) const {
    for (size_t i = 0; i < config_.buckets.size(); ++i) {
        if (SameModel(config_.buckets[i].model, model)) return i;
    }
    return std::nullopt;
}

int ModelManager::PendingLocked(size_t index) const {
    return buckets_[index].pending + (hooks_.waiting ? hooks_.waiting(config_.buckets[index].name) : 0);
}

bool ModelManager::OthersPendingLocked() const {
    for (size_t i = 0; i < buckets_.size(); ++i) {
        if (i != hot_ && PendingLocked(i) > 0) return true;
    }
    return false;
}

bool ModelManager::RestoresAfterLocked(size_t index) const {
    if (!config_.vram.preload_hot_bucket || !hot_ || index == *hot_) return false;
    // The static rule sends every short text to the hot bucket: load it back as soon as the other is idle.
    if (config_.routing.policy != "cost") return true;
    // The cost policy weighs the bucket that is loaded for short texts too: it stays, unless it runs partly
    // on the CPU (measured, or estimated before it was seen), where short texts would be several times slower.
    const Learned& b = buckets_[index];
    const double usable = config_.vram.budget_mb - config_.vram.reserve_mb;
    return b.measured ? b.spilling : EstimateBucketVramMb(config_, config_.buckets[index]) > usable;
}

bool ModelManager::HotKeptElsewhere() const { return hooks_.hot_kept_elsewhere && hooks_.hot_kept_elsewhere(); }

void ModelManager::MarkLoadedLocked(size_t index) {
    if (!hooks_.residency) return;
    // The buckets are built FROM the same weights file, and Ollama keeps one runner per file:
    // loading one unloads the others. The next /api/ps read corrects this if they do not share.
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i].loaded = i == index;
}

void ModelManager::OnCallStart(const GenerateRequest& request) {
    auto index = BucketIndexOf(request.model);
    if (!index) return;
    std::lock_guard lock(mutex_);
    ++buckets_[*index].pending;
    if (*index != hot_) other_activity_ = std::chrono::steady_clock::now();
}

void ModelManager::OnCallEnd(const GenerateRequest& request, const Result<GenerateResult>& result) {
    auto index = BucketIndexOf(request.model);
    if (!index) return;
    bool refresh = false, restore = false;
    {
        std::lock_guard lock(mutex_);
        Learned& b = buckets_[*index];
        b.pending = std::max(0, b.pending - 1);
        if (*index != hot_) other_activity_ = std::chrono::steady_clock::now();
        if (result.ok()) {
            const GenerateResult& r = *result;
            const double load_ms = std::chrono::duration<double, std::milli>(r.load).count();
            if (load_ms > kRunnerLoadMs) {
                reload_ms_ = reloads_seen_ == 0 ? load_ms : Ewma(reload_ms_, load_ms);
                ++reloads_seen_;
                if (runner_ && *runner_ != *index && metrics_) metrics_->CountReload();
                b.spill_counted = false;  // a new runner: its spill is a new event
                refresh = true;
            }
            MarkLoadedLocked(*index);
            runner_ = *index;
            // Rates are stored as if on the GPU alone: the router applies the spill slowdown itself.
            const double unspill = b.spilling ? std::max(1.0, config_.routing.cost_spill_slowdown) : 1.0;
            if (r.prompt_tokens >= kMinPrefillSample && r.prefill.count() > 0) {
                b.prefill = Ewma(b.prefill, unspill * r.PrefillTokensPerSecond());
            }
            if (r.output_tokens >= kMinDecodeSample && r.decode.count() > 0) {
                b.decode = Ewma(b.decode, unspill * r.DecodeTokensPerSecond());
            }
            using Ms = std::chrono::duration<double, std::milli>;
            const double call_ms = r.total.count() > 0 ? Ms(r.total - r.load).count() : Ms(r.wall).count();
            if (call_ms > 0) b.call_ms = Ewma(b.call_ms, call_ms / unspill);
            if (r.output_tokens > 0) output_tokens_ = Ewma(output_tokens_, static_cast<double>(r.output_tokens));
            ++b.calls;
        }
        // The hot bucket comes back once nothing else needs the other one.
        if (hooks_.residency && hot_ && *index != *hot_ && RestoresAfterLocked(*index) && !restore_queued_) {
            if (!OthersPendingLocked()) restore = restore_queued_ = true;
        }
    }
    if (restore && HotKeptElsewhere()) {
        // Another host keeps the hot bucket: this one keeps what it has (no reload back and forth).
        std::lock_guard lock(mutex_);
        restore = restore_queued_ = false;
    }
    if (restore) {
        Post([this, name = config_.buckets[*index].name] { LoadHotBucket("restore after the " + name + " bucket"); });
    } else if (refresh) {
        Post([this] { RefreshLoaded(); });
    }
}

void ModelManager::LoadHotBucket(const std::string& why) {
    const size_t h = *hot_;  // only posted when there is a hot bucket
    const BucketConfig& hot = config_.buckets[h];
    if (why != "start-up") {
        // Wait until the other bucket has been idle for restore_idle_ms (a new call restarts it).
        const auto idle = std::chrono::milliseconds(config_.vram.restore_idle_ms);
        for (;;) {
            std::chrono::steady_clock::time_point until;
            {
                std::lock_guard lock(mutex_);
                until = other_activity_ + idle;
            }
            if (std::chrono::steady_clock::now() >= until) break;
            std::unique_lock work(work_mutex_);
            if (work_cv_.wait_until(work, until, [&] { return stopping_; })) return;
        }
    }
    {
        std::lock_guard lock(mutex_);
        restore_queued_ = false;
        // Another bucket is in use again, or short requests are about to load it anyway.
        if (why != "start-up" && (OthersPendingLocked() || PendingLocked(h) > 0 || buckets_[h].loaded)) return;
    }
    if (why != "start-up" && HotKeptElsewhere()) return;
    {
        std::lock_guard lock(mutex_);
        ++preloads_;
    }
    // The scheduler learns it first: a call that starts while the load runs must not ride (or ask for)
    // the bucket being replaced, which would make Ollama swap straight back.
    if (hooks_.on_loaded) hooks_.on_loaded(hot.name);
    auto result = host_.Load(hot.model, hot.num_ctx, hot.keep_alive);
    {
        std::lock_guard lock(mutex_);
        if (result.ok()) {
            const double load_ms = std::chrono::duration<double, std::milli>(result->load).count();
            char buf[96];
            std::snprintf(buf, sizeof buf, "ok (%s), load_duration %.0f ms", why.c_str(), load_ms);
            last_preload_ = buf;
            // Ollama's load answer may carry no load_duration; the runner held another bucket anyway.
            if (runner_ && *runner_ != h && metrics_) metrics_->CountReload();
            if (load_ms > kRunnerLoadMs) {
                reload_ms_ = reloads_seen_ == 0 ? load_ms : Ewma(reload_ms_, load_ms);
                ++reloads_seen_;
            }
            if (!runner_ || *runner_ != h) buckets_[h].spill_counted = false;  // a new runner
            MarkLoadedLocked(h);
            runner_ = h;
        } else {
            last_preload_ = "failed (" + why + "): " + result.error().message;
        }
    }
    if (result.ok()) {
        spdlog::info("bucket {} ({}) loaded: {} (keep_alive {})", hot.name, hot.model, why, hot.keep_alive);
    } else {
        spdlog::warn("could not load bucket {} ({}) at {}: {}", hot.name, hot.model, why, result.error().message);
    }
    RefreshLoaded();
}

void ModelManager::ApplyLoadedLocked(const std::vector<LoadedModel>& loaded) {
    if (!hooks_.residency) return;
    for (size_t i = 0; i < buckets_.size(); ++i) {
        Learned& b = buckets_[i];
        const BucketConfig& bucket = config_.buckets[i];
        auto it = std::find_if(loaded.begin(), loaded.end(),
                               [&](const LoadedModel& m) { return SameModel(bucket.model, m.name); });
        if (it == loaded.end()) {
            b.loaded = false;
            b.spill_counted = false;
            continue;
        }
        b.loaded = true;
        MeasuredFootprint m;
        m.size_bytes = it->size_bytes;
        m.size_vram_bytes = it->size_vram_bytes;
        m.context_length = it->context_length;
        m.expires_at = it->expires_at;
        m.spilling_to_cpu = it->size_vram_bytes < it->size_bytes;
        b.measured = m;
        b.spilling = m.spilling_to_cpu;
        if (b.spilling && !b.spill_counted) {
            b.spill_counted = true;
            ++b.spills;
            if (metrics_) metrics_->CountSpill(bucket.name);
            spdlog::warn("bucket {} ({}) spills to the CPU: Ollama reports size {} but size_vram {} (context {}); it "
                         "runs several times slower. Fix: OLLAMA_KV_CACHE_TYPE=q8_0 with OLLAMA_FLASH_ATTENTION=1, "
                         "fewer OLLAMA_NUM_PARALLEL slots, or a smaller num_ctx for this bucket",
                         bucket.name, bucket.model, Mib(static_cast<double>(m.size_bytes) / (1 << 20)),
                         Mib(static_cast<double>(m.size_vram_bytes) / (1 << 20)), m.context_length);
        }
    }
}

std::pair<uint64_t, Result<std::vector<LoadedModel>>> ModelManager::ReadLoaded() {
    uint64_t ticket;
    {
        std::lock_guard lock(mutex_);
        ticket = ++ps_tickets_;
    }
    return {ticket, host_.ListLoaded()};
}

void ModelManager::ApplyReadLocked(uint64_t ticket, const std::vector<LoadedModel>& loaded) {
    if (ticket < ps_applied_) return;  // stale: a read asked later was applied already
    ps_applied_ = ticket;
    ApplyLoadedLocked(loaded);
}

void ModelManager::RefreshLoaded() {
    auto [ticket, loaded] = ReadLoaded();
    if (!loaded.ok()) return;
    std::lock_guard lock(mutex_);
    ApplyReadLocked(ticket, *loaded);
}

RouteCosts ModelManager::CurrentCosts() const {
    const double usable = config_.vram.budget_mb - config_.vram.reserve_mb;
    const auto& r = config_.routing;
    // Before any call was measured: a typical summary call of ~2K prompt tokens and ~300 output.
    const double prior_call_ms = 1000.0 * (2000.0 / r.cost_prefill_tokens_per_s + 300.0 / r.cost_decode_tokens_per_s);
    RouteCosts costs;
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < buckets_.size(); ++i) {
        const Learned& b = buckets_[i];
        BucketCosts c;
        c.loaded = b.loaded;
        // Not measured yet: trust the estimate.
        c.spilling = b.measured ? b.spilling : EstimateBucketVramMb(config_, config_.buckets[i]) > usable;
        c.pending = PendingLocked(i);
        c.prefill_tokens_per_s = b.prefill > 0 ? b.prefill : r.cost_prefill_tokens_per_s;
        c.decode_tokens_per_s = b.decode > 0 ? b.decode : r.cost_decode_tokens_per_s;
        c.mean_call_ms = b.call_ms > 0 ? b.call_ms : prior_call_ms;
        if (c.spilling) c.mean_call_ms *= std::max(1.0, r.cost_spill_slowdown);
        costs.buckets.push_back(c);
    }
    costs.reload_ms = reload_ms_;
    costs.spill_slowdown = r.cost_spill_slowdown;
    costs.slots = config_.ollama.num_parallel;
    costs.output_tokens = output_tokens_;
    costs.restore_hot = false;
    for (size_t i = 0; i < buckets_.size(); ++i) {
        if (i != hot_ && RestoresAfterLocked(i)) costs.restore_hot = true;
    }
    return costs;
}

ManagerStatus ModelManager::Status() {
    auto [ticket, loaded] = ReadLoaded();
    const RouteCosts costs = CurrentCosts();
    const double usable = config_.vram.budget_mb - config_.vram.reserve_mb;
    ManagerStatus s;
    std::lock_guard lock(mutex_);
    if (loaded.ok()) {
        ApplyReadLocked(ticket, *loaded);
        s.ollama_reachable = true;
        s.loaded = *loaded;
    } else {
        s.ollama_error = loaded.error().message;
    }
    for (size_t i = 0; i < buckets_.size(); ++i) {
        const BucketConfig& cfg = config_.buckets[i];
        const Learned& b = buckets_[i];
        BucketStatus st;
        st.name = cfg.name;
        st.model = cfg.model;
        st.num_ctx = cfg.num_ctx;
        st.keep_alive = cfg.keep_alive;
        st.estimated_vram_mb = EstimateBucketVramMb(config_, cfg);
        st.fits_vram_budget = st.estimated_vram_mb <= usable;
        st.loaded = b.loaded;
        st.measured = b.measured;
        st.spilling = b.measured && b.spilling;
        st.spills_seen = b.spills;
        st.pending_calls = PendingLocked(i);
        st.calls = b.calls;
        st.prefill_tokens_per_s = costs.buckets[i].prefill_tokens_per_s;
        st.decode_tokens_per_s = costs.buckets[i].decode_tokens_per_s;
        st.mean_call_ms = b.call_ms > 0 ? b.call_ms : costs.buckets[i].mean_call_ms;
        s.buckets.push_back(std::move(st));
    }
    s.warnings = warnings_;
    s.policy = config_.routing.policy;
    s.hot_bucket = hot_ ? config_.buckets[*hot_].name : "";
    s.preload_hot_bucket = config_.vram.preload_hot_bucket;
    s.preloads = preloads_;
    s.last_preload = last_preload_;
    s.reload_ms = reload_ms_;
    s.reloads_seen = reloads_seen_;
    s.output_tokens = output_tokens_;
    s.spill_slowdown = config_.routing.cost_spill_slowdown;
    s.slots = config_.ollama.num_parallel;
    return s;
}

void ModelManager::Post(std::function<void()> task) {
    {
        std::lock_guard lock(work_mutex_);
        if (stopping_) return;
        tasks_.push_back(std::move(task));
    }
    work_cv_.notify_all();
}

void ModelManager::WorkerLoop() {
    std::unique_lock lock(work_mutex_);
    for (;;) {
        work_cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (stopping_) return;
        auto task = std::move(tasks_.front());
        tasks_.pop_front();
        busy_ = true;
        lock.unlock();
        // This thread's exception boundary: a failed task is logged, the next one runs.
        (void)CatchAll("model manager", [&]() -> std::optional<Error> {
            task();
            return std::nullopt;
        });
        lock.lock();
        busy_ = false;
        work_cv_.notify_all();
    }
}

void ModelManager::WaitIdle() {
    std::unique_lock lock(work_mutex_);
    work_cv_.wait(lock, [&] { return stopping_ || (tasks_.empty() && !busy_); });
}

Result<GenerateResult> TrackedEngine::Generate(const GenerateRequest& request, const TokenCallback& on_token,
                                                const CancelToken& cancel) {
    manager_.OnCallStart(request);
    auto result = inner_.Generate(request, on_token, cancel);
    manager_.OnCallEnd(request, result);
    return result;
}

}  // namespace summarizer
