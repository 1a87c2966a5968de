#include "summarizer/summarizer.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "summarizer/tokens.hpp"

namespace summarizer {
namespace {

using Clock = std::chrono::steady_clock;

double MsBetween(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// Sums what every upstream call reported, for `usage` and the aggregate rates.
struct Accounting {
    std::mutex mutex;
    Usage usage;
    int64_t prompt_eval_ns = 0;
    int64_t eval_ns = 0;
    int64_t load_ns = 0;

    void Add(const GenerateResult& r) {
        std::lock_guard lock(mutex);
        usage.prompt_tokens += r.prompt_tokens;
        usage.completion_tokens += r.output_tokens;
        prompt_eval_ns += r.prefill.count();
        eval_ns += r.decode.count();
        load_ns += r.load.count();
    }
    void Count() {
        std::lock_guard lock(mutex);
        ++usage.upstream_requests;
    }
};

// True when Ollama evaluated as many prompt tokens as the context holds: it cut the prompt.
bool LooksTruncated(const GenerateResult& r, int num_ctx) { return r.prompt_tokens >= num_ctx; }

// Runs `count` jobs with at most `parallel` at once. A job returning an Error stops the others
// from starting and cancels the running ones through `cancel`. Returns the first error.
std::optional<Error> RunBounded(int count, int parallel, const CancelToken& cancel,
                                const std::function<std::optional<Error>(int index)>& job) {
    std::atomic<int> next{0};
    std::mutex mutex;
    std::optional<Error> first_error;
    auto worker = [&] {
        while (!cancel.cancelled()) {
            int index = next.fetch_add(1);
            if (index >= count) return;
            if (auto error = job(index)) {
                std::lock_guard lock(mutex);
                if (!first_error) first_error = std::move(error);
                cancel.Cancel();
                return;
            }
        }
    };
    int threads = std::max(1, std::min(parallel, count));
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    return first_error;
}

}  // namespace

Summarizer::Summarizer(const Config& config, LlmEngine& backend, SummarizerObserver observer)
    : config_(config), backend_(backend), observer_(std::move(observer)) {}

std::string Summarizer::ResolveLanguage(const SummarizeRequest& request, const TextStats& stats) {
    if (request.language.empty() || request.language == "auto") return GuessLanguage(stats, request.text);
    return request.language;
}

RouteOptions Summarizer::MakeRouteOptions(const SummarizeRequest& request, const TextStats& stats,
                                          double safety) const {
    RouteOptions options;
    options.strategy = request.strategy;
    options.prompt.language = ResolveLanguage(request, stats);
    options.prompt.style = request.style;
    options.prompt.max_tokens = request.max_tokens > 0 ? request.max_tokens : config_.generation.num_predict;
    options.token_safety = safety;
    if (config_.routing.policy == "cost" && observer_.route_costs) options.costs = observer_.route_costs();
    return options;
}

Result<Plan> Summarizer::MakePlan(const SummarizeRequest& request) const {
    if (request.max_tokens < 0 || request.max_tokens > config_.generation.max_num_predict) {
        return MakeError(ErrorCode::kInvalidRequest, "max_tokens must be between 1 and " +
                                                         std::to_string(config_.generation.max_num_predict));
    }
    TextStats stats = ComputeTextStats(request.text);
    return PlanRoute(request.text, stats, config_, MakeRouteOptions(request, stats, 1.0));
}

Result<SummarizeResponse> Summarizer::Run(const SummarizeRequest& request, const SummarizeEvents& events,
                                          const CancelToken& cancel, Clock::time_point arrival) {
    const TextStats stats = ComputeTextStats(request.text);
    const auto started = Clock::now();
    Accounting acct;
    std::optional<Clock::time_point> first_final_token;
    bool delta_sent = false;
    std::mutex event_mutex;  // events are delivered one at a time

    auto call = [&](const GenerateRequest& g, const TokenCallback& on_token,
                    const CancelToken& token) -> Result<GenerateResult> {
        acct.Count();
        auto begin = Clock::now();
        auto result = backend_.Generate(g, on_token, token);
        if (observer_.on_upstream_call) observer_.on_upstream_call(g, result, MsBetween(begin, Clock::now()));
        if (result.ok()) acct.Add(*result);
        if (!result.ok() && result.error().code == ErrorCode::kContextOverflow) {
            // Ollama refused the prompt as over num_ctx ("truncate": false): counted like a cut one.
            if (observer_.on_overflow) observer_.on_overflow();
            spdlog::warn("request {}: Ollama refused {} as over num_ctx {} ({}); re-planning with a stricter estimate",
                         request.request_id, g.tag, g.context_tokens, result.error().message);
        }
        return result;
    };
    // `interactive`: the client waits on this call's tokens (single pass, final reduce); map chunks and
    // intermediate reduces are batch work the scheduler may hold back for other clients' interactive calls.
    auto make_request = [&](const Plan& plan, const Prompt& prompt, int num_predict, std::string tag,
                            bool interactive) {
        GenerateRequest g;
        g.model = plan.model;
        g.context_tokens = plan.num_ctx;
        g.keep_alive = plan.keep_alive;
        g.system = prompt.system;
        g.prompt = prompt.prompt;
        g.max_output_tokens = num_predict;
        g.num_batch = config_.generation.num_batch;
        g.temperature = config_.generation.temperature;
        g.repeat_penalty = config_.generation.repeat_penalty;
        g.tag = std::move(tag);
        g.interactive = interactive;
        return g;
    };
    // The final summary's tokens go to the client as they arrive.
    TokenCallback final_sink = [&](std::string_view piece) {
        std::lock_guard lock(event_mutex);
        if (!first_final_token) first_final_token = Clock::now();
        if (events.on_delta) {
            delta_sent = true;
            events.on_delta(piece);
        }
    };
    auto progress = [&](std::string_view phase, int done, int total) {
        std::lock_guard lock(event_mutex);
        if (events.on_progress) events.on_progress(phase, done, total);
    };
    auto overflow_error = [&](const Plan& plan, const std::string& what) {
        if (observer_.on_overflow) observer_.on_overflow();
        spdlog::warn("request {}: prompt over num_ctx {} ({}); re-planning with a stricter estimate",
                     request.request_id, plan.num_ctx, what);
        return MakeError(ErrorCode::kContextOverflow, what);
    };

    SummarizeResponse response;
    response.request_id = request.request_id;
    double safety = 1.0;
    std::string replan_notes;
    bool plan_announced = false;
    constexpr int kMaxReplans = 3;

    for (int attempt = 0;; ++attempt) {
        RouteOptions route_options = MakeRouteOptions(request, stats, safety);
        response.language = route_options.prompt.language;
        auto planned = PlanRoute(request.text, stats, config_, route_options);
        if (!planned.ok()) return planned.error();
        Plan plan = std::move(planned.value());
        if (!plan_announced && events.on_plan) {
            std::lock_guard lock(event_mutex);
            events.on_plan(plan);
            plan_announced = true;
        }
        const PromptOptions& popts = route_options.prompt;
        std::optional<Error> failure;
        std::string summary;
        int levels = 0;

        if (plan.kind != RouteKind::kMapReduce) {
            Prompt prompt = BuildSinglePrompt(request.text, popts);
            auto result = call(make_request(plan, prompt, popts.max_tokens, "single", true), final_sink, cancel);
            if (!result.ok()) {
                failure = result.error();
            } else if (LooksTruncated(*result, plan.num_ctx)) {
                failure = overflow_error(plan, "prompt_eval_count " + std::to_string(result->prompt_tokens) +
                                                   " reached num_ctx " + std::to_string(plan.num_ctx));
                safety = std::max(safety * 1.25, 1.0 * result->prompt_tokens / std::max<int64_t>(1, plan.estimated_prompt_tokens) + 0.1);
            } else {
                summary = std::move(result->text);
            }
        } else {
            // Map: every chunk in parallel (bounded), results kept in document order.
            const int total = static_cast<int>(plan.chunks.size());
            std::vector<std::string> partials(static_cast<size_t>(total));
            // Ollama counted each partial (eval_count) where an estimate from characters only guesses; a merge
            // prompt counts the tokens a partial has beyond its estimate (`excess`) on top of the estimate.
            std::vector<int64_t> partial_excess(static_cast<size_t>(total), 0);
            auto excess = [](const GenerateResult& r) {
                return std::max<int64_t>(0, r.output_tokens - EstimateTokens(r.text));
            };
            std::atomic<int> done{0};
            CancelToken map_cancel = cancel.Child();
            PromptOptions map_opts = popts;
            map_opts.max_tokens = config_.map_reduce.map_num_predict;
            progress("map", 0, total);
            // Interactive maps (cost policy) all queue at once: the scheduler bounds the slots, and a
            // second wave does not queue again behind calls that arrived after the first.
            const int map_parallel = plan.interactive_maps ? total : config_.MapConcurrency();
            failure = RunBounded(total, map_parallel, map_cancel, [&](int i) -> std::optional<Error> {
                std::string_view chunk = ChunkText(request.text, plan.chunks[static_cast<size_t>(i)]);
                Prompt prompt = BuildMapPrompt(chunk, i + 1, total, map_opts);
                std::string tag = "map " + std::to_string(i + 1) + "/" + std::to_string(total);
                auto result = call(make_request(plan, prompt, map_opts.max_tokens, tag, plan.interactive_maps), nullptr,
                                   map_cancel);
                if (!result.ok()) {
                    Error e = result.error();
                    if (e.code != ErrorCode::kCancelled && e.code != ErrorCode::kContextOverflow) {
                        e.message = "chunk " + std::to_string(i + 1) + " of " + std::to_string(total) + ": " + e.message;
                    }
                    return e;
                }
                if (LooksTruncated(*result, plan.num_ctx)) {
                    return overflow_error(plan, "chunk " + std::to_string(i + 1) + ": prompt_eval_count " +
                                                    std::to_string(result->prompt_tokens) + " reached num_ctx");
                }
                partial_excess[static_cast<size_t>(i)] = excess(*result);
                partials[static_cast<size_t>(i)] = std::move(result->text);
                progress("map", done.fetch_add(1) + 1, total);
                return std::nullopt;
            });
            if (failure && failure->code == ErrorCode::kContextOverflow) safety *= 1.25;

            // Reduce, level by level, until the partials fit one final prompt.
            std::vector<std::string> items = std::move(partials);
            std::vector<int64_t> item_excess = std::move(partial_excess);
            const auto& bucket = config_.MapBucket();
            const int64_t margin = config_.routing.safety_margin_tokens;
            // The merge prompt's tokens: the prompt estimated, plus what Ollama counted in its partials beyond
            // their estimates.
            auto reduce_tokens = [&](const std::vector<std::string>& group, int64_t group_excess, bool final_pass) {
                Prompt p = BuildReducePrompt(group, final_pass, popts);
                return static_cast<int64_t>(
                    std::ceil((EstimateTokens(p.system) + EstimateTokens(p.prompt) + 16 + group_excess) * safety));
            };
            auto sum = [](const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); };
            int reduce_replans = 0;
            while (!failure) {
                ++levels;
                if (levels > config_.map_reduce.max_levels) {
                    failure = MakeError(ErrorCode::kUpstreamError,
                                        "the partial summaries did not converge within map_reduce.max_levels = " +
                                            std::to_string(config_.map_reduce.max_levels) + " reduce levels");
                    break;
                }
                std::optional<Error> level_failure;
                if (reduce_tokens(items, sum(item_excess), true) + popts.max_tokens + margin <= bucket.num_ctx) {
                    Prompt prompt = BuildReducePrompt(items, true, popts);
                    auto result = call(make_request(plan, prompt, popts.max_tokens, "reduce final", true), final_sink, cancel);
                    if (!result.ok()) {
                        level_failure = result.error();
                    } else if (LooksTruncated(*result, plan.num_ctx)) {
                        level_failure = overflow_error(plan, "final reduce reached num_ctx");
                    } else {
                        summary = std::move(result->text);
                        break;
                    }
                } else {
                    // Group consecutive partials greedily so each group's prompt fits.
                    const int64_t group_budget = bucket.num_ctx - config_.map_reduce.reduce_num_predict - margin;
                    std::vector<std::vector<std::string>> groups;
                    int64_t group_excess = 0;  // of groups.back()
                    for (size_t k = 0; k < items.size(); ++k) {
                        if (!groups.empty()) {
                            groups.back().push_back(items[k]);
                            if (reduce_tokens(groups.back(), group_excess + item_excess[k], false) <= group_budget) {
                                group_excess += item_excess[k];
                                continue;
                            }
                            groups.back().pop_back();
                        }
                        groups.push_back({items[k]});
                        group_excess = item_excess[k];
                    }
                    if (groups.size() >= items.size()) {
                        failure = MakeError(ErrorCode::kUpstreamError,
                                            "partial summaries too large to merge: raise the 16k bucket's num_ctx or "
                                            "lower map_reduce.map_num_predict");
                        break;
                    }
                    const int group_count = static_cast<int>(groups.size());
                    std::vector<std::string> merged(groups.size());
                    std::vector<int64_t> merged_excess(groups.size(), 0);
                    std::atomic<int> reduced{0};
                    CancelToken reduce_cancel = cancel.Child();
                    PromptOptions reduce_opts = popts;
                    reduce_opts.max_tokens = config_.map_reduce.reduce_num_predict;
                    progress("reduce", 0, group_count);
                    level_failure = RunBounded(
                        group_count, config_.MapConcurrency(), reduce_cancel, [&](int g) -> std::optional<Error> {
                            Prompt prompt = BuildReducePrompt(groups[static_cast<size_t>(g)], false, reduce_opts);
                            std::string tag = "reduce " + std::to_string(levels) + "." + std::to_string(g + 1);
                            auto result = call(make_request(plan, prompt, reduce_opts.max_tokens, tag, false), nullptr,
                                               reduce_cancel);
                            if (!result.ok()) return result.error();
                            if (LooksTruncated(*result, plan.num_ctx)) {
                                return overflow_error(plan, "a reduce group reached num_ctx");
                            }
                            merged_excess[static_cast<size_t>(g)] = excess(*result);
                            merged[static_cast<size_t>(g)] = std::move(result->text);
                            progress("reduce", reduced.fetch_add(1) + 1, group_count);
                            return std::nullopt;
                        });
                    if (!level_failure) {
                        items = std::move(merged);
                        item_excess = std::move(merged_excess);
                        continue;
                    }
                }
                // A merge prompt over num_ctx: merge the same partials again, in smaller groups under a stricter
                // estimate. The map's work is kept; only the plan of the map itself is worth redoing.
                if (level_failure->code == ErrorCode::kContextOverflow && !delta_sent && !cancel.cancelled() &&
                    reduce_replans < kMaxReplans) {
                    ++reduce_replans;
                    ++response.overflow_replans;
                    replan_notes += "; merged again in smaller groups after Ollama reported a prompt over num_ctx (" +
                                    level_failure->message + ")";
                    safety = std::max(safety * 1.25, 1.25);
                    --levels;
                    continue;
                }
                failure = std::move(level_failure);
            }
        }

        if (!failure) {
            response.summary = std::move(summary);
            response.route = RouteName(plan);
            response.model = plan.model;
            response.chunks = plan.kind == RouteKind::kMapReduce ? static_cast<int>(plan.chunks.size()) : 1;
            response.levels = levels;
            response.reason = plan.reason + replan_notes;
            break;
        }
        if (cancel.cancelled()) return MakeError(ErrorCode::kCancelled, "the client went away");
        if (failure->code != ErrorCode::kContextOverflow) return *failure;
        ++response.overflow_replans;
        replan_notes += "; re-planned after Ollama reported a prompt over num_ctx (" + failure->message + ")";
        if (safety <= 1.0) safety = 1.25;
        if (delta_sent) {
            return MakeError(ErrorCode::kUpstreamError,
                             "Ollama cut the prompt after the summary had started streaming (" + failure->message +
                                 "); retry the request");
        }
        if (attempt + 1 >= kMaxReplans) {
            return MakeError(ErrorCode::kUpstreamError,
                             "Ollama kept reporting prompts over num_ctx after " + std::to_string(kMaxReplans) +
                                 " re-plans: " + failure->message);
        }
    }

    const auto finished = Clock::now();
    response.usage = acct.usage;
    response.timings.total_ms = MsBetween(arrival, finished);
    response.timings.queue_ms = MsBetween(arrival, started);
    response.timings.ttft_ms = first_final_token ? MsBetween(arrival, *first_final_token) : response.timings.total_ms;
    response.timings.load_ms = acct.load_ns / 1e6;
    response.timings.prefill_tokens_per_s = acct.prompt_eval_ns > 0 ? acct.usage.prompt_tokens * 1e9 / acct.prompt_eval_ns : 0;
    response.timings.decode_tokens_per_s = acct.eval_ns > 0 ? acct.usage.completion_tokens * 1e9 / acct.eval_ns : 0;
    return response;
}

}  // namespace summarizer
