// summarizer-mapreduce-bench: how close the map-reduce of a large input comes to what the GPU allows.
// Runs the real Summarizer through the UpstreamScheduler and an OllamaClient against the fake Ollama
// with its GPU cost model (RTX 4060-like: shared prefill ~3000 tok/s, decode ~60 tok/s per stream,
// 2 or 4 slots, a 3 s model load), time-scaled so the whole benchmark takes a few minutes at most.
// Per case it prints the wall time, the calls, the concurrency the fake saw, a lower bound for the
// calls actually made, the ratio wall/bound (target <= 1.3) and the speed-up over the same plan run
// one call at a time (target >= 1.6 with >= 2 slots). A benchmark, not a test: exits 0 when every
// case meets both targets, 1 otherwise, 2 on bad arguments.
//
// The lower bound ("simple"), per phase (the map, then each reduce level; a phase cannot start
// before the previous one ends), from each call's token counts and the fake's cost model:
//   max(sum(prefill + decode) / slots, sum(prefill), longest call)
// where prefill = prompt tokens / prefill rate (prefills share the GPU's rate, so they add up) and
// decode = output tokens at the single-stream rate for the call's context. The phases add up, plus
// one model load. A "tight" bound adds two terms the same model proves (see LowerBounds).
// Times are simulated seconds: real seconds x time scale from the first upstream call on; the
// planning before it (CPU work a GPU would not stretch) counts as real seconds.
//
// --hosts 1,2,4 (issue #14): the same map-reduce through the UpstreamPool on that many fake Ollama
// hosts of --slots slots each, merges pipelined with the map. Its lower bound ("pool") holds for any
// schedule of the calls made, given their dependencies: one model load, then
//   max(W / S, P / H, D x (1 + c (slots - 1)) / S, W_map / S + the smallest merge)
// over the calls before the final merge, then the final merge alone, where W is their work
// (prefill + decode each), P their prefill (a host's prefills share its GPU), D their decode, c the
// fake's decode slowdown per concurrent stream, S = H x slots: every map must be done before the
// merge of the last group starts (the last term is dropped when the partials after the last merge
// group went to the final merge unmerged: then no merge waits for the whole map), and the final
// merge needs everything. Targets: 2 hosts >= 1.85x
// and 4 hosts >= 3.2x faster than 1, wall <= 1.15 x the pool bound.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_ollama.hpp"
#include "summarizer/config.hpp"
#include "summarizer/upstream_pool.hpp"
#include "summarizer/ollama_client.hpp"
#include "summarizer/scheduler.hpp"
#include "summarizer/summarizer.hpp"
#include "summarizer/utf8.hpp"

#ifndef SUMMARIZER_BENCH_CASES_DIR
#define SUMMARIZER_BENCH_CASES_DIR "bench/cases"
#endif

namespace {

using namespace summarizer;
using Clock = std::chrono::steady_clock;

struct CallRecord {
    std::string tag;
    int64_t prompt_tokens = 0;
    int64_t output_tokens = 0;
    bool ok = false;
};

struct RunOutcome {
    bool ok = false;
    std::string error;
    double wall_s = 0;  // simulated: plan_s + the rest scaled
    double plan_s = 0;  // real seconds before the first upstream call
    int chunks = 0;
    int levels = 0;
    std::vector<CallRecord> calls;
    int max_concurrency = 0;
    int loads = 0;
};

struct Options {
    double time_scale = 50;
    std::vector<int> slots = {2, 4};
    std::vector<int64_t> sizes = {200000, 600000, 1500000};
    std::vector<std::string> langs = {"en", "ja"};
    std::string cases_dir = SUMMARIZER_BENCH_CASES_DIR;
    bool prefill_gate = true;
    double max_ratio = 1.3;
    double min_speedup = 1.6;
    bool serial = true;
    int tokens_per_piece = 8;
    bool trace = false;
    bool fairness = false;
    int repeat = 1;
    bool tight = false;  // judge wall/bound against the tight bound
    std::vector<int> hosts;      // pool mode: host counts to compare (empty: the single-host bench)
    double min_pool_speedup_2 = 1.85;
    double min_pool_speedup_4 = 3.2;
    double max_pool_ratio = 1.15;
};

// Paragraphs of the benchmark's case texts (original, realistic prose) for one language.
std::vector<std::string> LoadParagraphs(const std::filesystem::path& dir, const std::string& lang) {
    std::vector<std::string> paragraphs;
    for (const char* name : {"small", "medium", "large", "xl"}) {
        std::ifstream in(dir / (std::string(name) + "." + lang + ".txt"), std::ios::binary);
        if (!in) continue;
        std::stringstream ss;
        ss << in.rdbuf();
        const std::string text = ss.str();
        size_t pos = 0;
        while (pos < text.size()) {
            size_t end = text.find("\n\n", pos);
            if (end == std::string::npos) end = text.size();
            std::string p = text.substr(pos, end - pos);
            if (p.find_first_not_of(" \n\r\t") != std::string::npos) paragraphs.push_back(std::move(p));
            pos = end + 2;
        }
    }
    return paragraphs;
}

// A document of about `chars` code points: the paragraphs in a fresh seeded shuffle on every pass,
// so no stretch of text repeats the previous one.
std::string MakeDocument(const std::vector<std::string>& paragraphs, int64_t chars, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<size_t> order(paragraphs.size());
    std::string doc;
    int64_t have = 0;
    while (have < chars) {
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        for (size_t i : order) {
            if (have >= chars) break;
            doc += paragraphs[i];
            doc += "\n\n";
            have += static_cast<int64_t>(CountCodePoints(paragraphs[i])) + 2;
        }
    }
    return doc;
}

// What each map or reduce call answers: a realistic summary of about the fake's output length.
std::string SummaryReply(const std::string& lang, int tokens) {
    const std::string en =
        "The review finds that the closure followed the engineers' advice, but communication with residents "
        "and businesses came late and was confusing. Bus diversions added twenty minutes to many journeys. ";
    const std::string ja =
        "報告書は、通行止めの判断は技術者の助言に沿っていたが、住民と事業者への説明が遅れ分かりにくかったと指摘している"
        "。";
    std::string out;
    const std::string& unit = lang == "ja" ? ja : en;
    while (testing::CountFakeTokens(out) < tokens) out += unit;
    // Exactly `tokens` by the fake's count, which reports that many as eval_count: a reply longer than
    // its eval_count would be a tokenizer that counts the same text differently when it is read back.
    while (testing::CountFakeTokens(out) > tokens) out.resize(CodePointStartAtOrBefore(out, out.size() - 1));
    return out;
}

struct CostModel {
    testing::FakeGpuModel gpu;
    double PrefillS(const CallRecord& c) const { return c.prompt_tokens / gpu.prefill_tokens_per_s; }
    // Decode at the single-stream rate, which slows linearly with the context: the integral over the
    // output of 1 / rate(prompt + k).
    double DecodeS(const CallRecord& c) const {
        const double mid_context = c.prompt_tokens + c.output_tokens / 2.0;
        return c.output_tokens / gpu.decode_tokens_per_s * (1 + gpu.decode_context_slowdown * mid_context / 16384.0);
    }
};

// Phase of a call: 0 = map, L = reduce level L; the final reduce is the last level.
int PhaseOf(const std::string& tag, int final_level) {
    if (tag.rfind("map ", 0) == 0) return 0;
    if (tag == "reduce final") return final_level;
    if (tag.rfind("reduce ", 0) == 0) return std::stoi(tag.substr(7));
    return final_level;  // "single"
}

struct Bounds {
    double simple = 0;  // the brief's: per phase max(sum(p + d) / slots, sum(p), longest call)
    double tight = 0;   // adds terms the same cost model proves: see below
};

// Lower bounds for the calls a run made, phase by phase, plus one model load. `tight` also uses:
// - sum(p) + shortest decode: prefills share one rate, so the last prefill ends no sooner than sum(p),
//   and its call still has to decode;
// - sum(d) * (1 + s * (slots - 1)) / slots: decoding `slots` streams at once slows each by the fake's
//   concurrency factor s, so the phase's decode throughput is at most slots / (1 + s * (slots - 1)).
Bounds LowerBounds(const RunOutcome& run, const CostModel& model, int slots) {
    std::map<int, std::vector<const CallRecord*>> phases;
    for (const auto& c : run.calls) {
        if (c.ok) phases[PhaseOf(c.tag, run.levels)].push_back(&c);
    }
    Bounds b;
    b.simple = b.tight = model.gpu.load_ms / 1000.0;
    const double concurrency = 1 + model.gpu.decode_concurrency_slowdown * (slots - 1);
    for (const auto& [phase, calls] : phases) {
        double work = 0, prefill = 0, decode = 0, longest = 0, shortest_decode = 1e300;
        for (const auto* c : calls) {
            const double p = model.PrefillS(*c), d = model.DecodeS(*c);
            work += p + d;
            prefill += p;
            decode += d;
            longest = std::max(longest, p + d);
            shortest_decode = std::min(shortest_decode, d);
        }
        const double simple = std::max({work / slots, prefill, longest});
        b.simple += simple;
        b.tight += std::max({simple, prefill + shortest_decode, decode * concurrency / slots});
    }
    return b;
}

// `gpu_slots` is the fake's OLLAMA_NUM_PARALLEL and what the service is configured with (so the plan,
// whose map chunks fill the slots); `concurrency` is how many calls the scheduler lets run at once:
// gpu_slots for the real run, 1 for the baseline that runs the same plan one call at a time.
RunOutcome RunOnce(const std::string& text, const std::string& lang, int gpu_slots, int concurrency,
                   const Options& opts) {
    testing::FakeOllama fake;
    testing::FakeGpuModel gpu;
    gpu.enabled = true;
    gpu.slots = gpu_slots;
    gpu.prefill_tokens_per_s = 3000;
    gpu.decode_tokens_per_s = 60;
    gpu.load_ms = 3000;
    gpu.time_scale = opts.time_scale;
    gpu.output_tokens = 300;
    fake.SetGpuModel(gpu);
    testing::FakeBehavior behavior;
    behavior.reply = SummaryReply(lang, gpu.output_tokens);
    // Ollama streams a line per token; the fake pays a real-time floor per line (a sleep and a write),
    // which time scaling magnifies, so it streams a few tokens per line (UTF-8 bytes: ~4 per English
    // token, ~5 per Japanese one).
    behavior.piece_chars = opts.tokens_per_piece * (lang == "ja" ? 5 : 4);
    fake.SetBehavior(behavior);

    Config config;
    config.ollama.url = fake.url();
    config.ollama.num_parallel = gpu_slots;
    config.scheduler.prefill_gate = opts.prefill_gate;
    SchedulerOptions scheduler_options = SchedulerOptionsFromConfig(config);
    scheduler_options.slots = concurrency;
    UpstreamScheduler scheduler(scheduler_options);
    OllamaClient client(OllamaClientOptions::FromConfig(config.ollama));
    ScheduledEngine backend(client, scheduler);

    RunOutcome out;
    std::mutex mutex;
    SummarizerObserver observer;
    observer.on_upstream_call = [&](const GenerateRequest& g, const Result<GenerateResult>& r, double) {
        std::lock_guard lock(mutex);
        CallRecord c;
        c.tag = g.tag;
        c.ok = r.ok();
        if (r.ok()) {
            c.prompt_tokens = r->prompt_tokens;
            c.output_tokens = r->output_tokens;
        }
        out.calls.push_back(std::move(c));
    };
    Summarizer summarizer(config, backend, observer);
    SummarizeRequest request;
    request.text = text;
    request.language = lang;
    request.request_id = "bench";
    const auto t0 = Clock::now();
    auto response = summarizer.Run(request, {}, CancelToken());
    const auto t1 = Clock::now();
    // Planning (statistics, chunking: CPU work before the first upstream call) took real time that a
    // GPU would not stretch: it counts unscaled; everything from the first call on is scaled.
    const auto requests = fake.Requests();
    const auto first_call = requests.empty() ? t1 : std::min(t1, requests.front().received);
    out.plan_s = std::chrono::duration<double>(first_call - t0).count();
    out.wall_s = out.plan_s + std::chrono::duration<double>(t1 - first_call).count() * opts.time_scale;
    out.ok = response.ok();
    if (!response.ok()) {
        out.error = response.error().message;
    } else {
        out.chunks = response->chunks;
        out.levels = response->levels;
    }
    if (opts.trace) {
        for (const auto& r : requests) {
            std::fprintf(stderr, "  call: start %7.2f end %7.2f  prompt tokens %6lld  pieces %lld\n",
                         std::chrono::duration<double>(r.received - t0).count() * opts.time_scale,
                         std::chrono::duration<double>(r.finished - t0).count() * opts.time_scale,
                         static_cast<long long>(testing::CountFakeTokens(r.body.value("prompt", ""))),
                         static_cast<long long>(r.pieces_sent));
        }
    }
    out.max_concurrency = fake.MaxConcurrency();
    out.loads = fake.Loads();
    return out;
}

// Fairness: a short single-pass request arriving while two large map-reduce jobs share the GPU.
// Returns its latency (simulated seconds) with interactive-first scheduling, or with plain arrival
// order when `priority` is false (batch_max_wait_ms = 0 makes every waiting call urgent at once).
double ShortRequestLatencyS(const std::string& big, const std::string& short_text, int slots, bool priority,
                            const Options& opts) {
    testing::FakeOllama fake;
    testing::FakeGpuModel gpu;
    gpu.enabled = true;
    gpu.slots = slots;
    gpu.time_scale = opts.time_scale;
    fake.SetGpuModel(gpu);
    testing::FakeBehavior behavior;
    behavior.reply = SummaryReply("en", gpu.output_tokens);
    behavior.piece_chars = opts.tokens_per_piece * 4;
    fake.SetBehavior(behavior);
    Config config;
    config.ollama.url = fake.url();
    config.ollama.num_parallel = slots;
    config.scheduler.prefill_gate = opts.prefill_gate;
    if (!priority) config.scheduler.batch_max_wait_ms = 0;
    UpstreamScheduler scheduler(SchedulerOptionsFromConfig(config));
    OllamaClient client(OllamaClientOptions::FromConfig(config.ollama));
    ScheduledEngine backend(client, scheduler);
    Summarizer summarizer(config, backend);
    auto run = [&](const std::string& text) {
        SummarizeRequest request;
        request.text = text;
        request.language = "en";
        return summarizer.Run(request, {}, CancelToken());
    };
    std::thread job1([&] { (void)run(big); });
    std::thread job2([&] { (void)run(big); });
    // Arrive mid-map: after a few map calls have started.
    fake.WaitForRequests(static_cast<size_t>(2 * slots + 1), std::chrono::seconds(60));
    const auto t0 = Clock::now();
    auto result = run(short_text);
    const double latency = std::chrono::duration<double>(Clock::now() - t0).count() * opts.time_scale;
    job1.join();
    job2.join();
    return result.ok() ? latency : -1;
}

struct PoolOutcome {
    RunOutcome run;
    double bound_s = 0;
    double first_merge_at = -1;  // when the first merge started, as a share of the map's span (< 1: during it)
    bool tail_carried = false;   // partials went to the final merge unmerged (fewer merge calls than groups)
};

testing::FakeGpuModel BenchGpu(int slots, const Options& opts) {
    testing::FakeGpuModel gpu;
    gpu.enabled = true;
    gpu.slots = slots;
    gpu.prefill_tokens_per_s = 3000;
    gpu.decode_tokens_per_s = 60;
    gpu.load_ms = 3000;
    gpu.time_scale = opts.time_scale;
    gpu.output_tokens = 300;
    return gpu;
}

// The pool's lower bound (see the header) for the calls a run made.
double PoolBound(const RunOutcome& run, const CostModel& model, int hosts, int slots, bool tail_carried) {
    double work = 0, prefill = 0, decode = 0, map_work = 0, smallest_merge = 0, final_work = 0;
    for (const auto& c : run.calls) {
        if (!c.ok) continue;
        const double p = model.PrefillS(c), d = model.DecodeS(c);
        if (c.tag == "reduce final" || c.tag == "single") {
            final_work = p + d;
            continue;
        }
        work += p + d;
        prefill += p;
        decode += d;
        if (c.tag.rfind("map ", 0) == 0) {
            map_work += p + d;
        } else if (smallest_merge == 0 || p + d < smallest_merge) {
            smallest_merge = p + d;
        }
    }
    const double s = static_cast<double>(hosts * slots);
    const double concurrency = 1 + model.gpu.decode_concurrency_slowdown * (slots - 1);
    // A merge of the last group follows the whole map, unless the tail went to the final merge unmerged.
    const double after_map = tail_carried ? 0 : smallest_merge;
    const double before_final = std::max({work / s, prefill / hosts, decode * concurrency / s, map_work / s + after_map});
    return model.gpu.load_ms / 1000.0 + before_final + final_work;
}

// One map-reduce through an UpstreamPool of `hosts` fake Ollama hosts of `slots` slots each.
PoolOutcome RunPool(const std::string& text, const std::string& lang, int hosts, int slots, const Options& opts,
                    const CostModel& model) {
    std::vector<std::unique_ptr<testing::FakeOllama>> fakes;
    Config config;
    for (int h = 0; h < hosts; ++h) {
        fakes.push_back(std::make_unique<testing::FakeOllama>());
        fakes.back()->SetGpuModel(BenchGpu(slots, opts));
        testing::FakeBehavior behavior;
        behavior.reply = SummaryReply(lang, 300);
        behavior.piece_chars = opts.tokens_per_piece * (lang == "ja" ? 5 : 4);
        fakes.back()->SetBehavior(behavior);
        UpstreamConfig u;
        u.name = "gpu" + std::to_string(h + 1);
        u.url = fakes.back()->url();
        u.slots = slots;
        config.upstreams.push_back(u);
    }
    config.ollama.num_parallel = slots;
    config.scheduler.prefill_gate = opts.prefill_gate;
    UpstreamPool pool(config, nullptr);
    PoolOutcome out;
    std::mutex mutex;
    std::vector<std::pair<std::string, Clock::time_point>> starts;
    SummarizerObserver observer;
    observer.on_upstream_call = [&](const GenerateRequest& g, const Result<GenerateResult>& r, double) {
        std::lock_guard lock(mutex);
        CallRecord c;
        c.tag = g.tag;
        c.ok = r.ok();
        if (r.ok()) {
            c.prompt_tokens = r->prompt_tokens;
            c.output_tokens = r->output_tokens;
        }
        out.run.calls.push_back(std::move(c));
    };
    Summarizer summarizer(pool.effective_config(), pool, observer);
    SummarizeRequest request;
    request.text = text;
    request.language = lang;
    request.request_id = "bench";
    const auto t0 = Clock::now();
    Result<SummarizeResponse> response = MakeError(ErrorCode::kInternal, "not run");
    ExecutionState state;
    if (auto started = summarizer.Start(request); !started.ok()) {
        response = started.error();
    } else {
        state = std::move(started.value());
        response = summarizer.Execute(request, state, {}, CancelToken());
    }
    const auto t1 = Clock::now();
    // Partials carried to the final merge unmerged (groups of one with no call): then no merge has
    // to wait for the whole map.
    size_t groups = 0;
    for (size_t l = 1; l < state.groups.size(); ++l) groups += state.groups[l].size();
    std::vector<testing::RecordedRequest> requests;
    for (const auto& f : fakes) {
        for (auto& r : f->Requests()) requests.push_back(std::move(r));
        out.run.max_concurrency += f->MaxConcurrency();
        out.run.loads += f->Loads();
    }
    std::sort(requests.begin(), requests.end(), [](const auto& a, const auto& b) { return a.received < b.received; });
    const auto first_call = requests.empty() ? t1 : std::min(t1, requests.front().received);
    out.run.plan_s = std::chrono::duration<double>(first_call - t0).count();
    out.run.wall_s = out.run.plan_s + std::chrono::duration<double>(t1 - first_call).count() * opts.time_scale;
    out.run.ok = response.ok();
    if (opts.trace) {
        for (const auto& r : requests) {
            const std::string prompt = r.body.value("prompt", "");
            std::fprintf(stderr, "  call: %-5s start %7.2f end %7.2f  prompt tokens %6lld  pieces %lld\n",
                         prompt.find("holds summaries of consecutive parts") != std::string::npos ? "merge" : "map",
                         std::chrono::duration<double>(r.received - first_call).count() * opts.time_scale,
                         std::chrono::duration<double>(r.finished - first_call).count() * opts.time_scale,
                         static_cast<long long>(testing::CountFakeTokens(prompt)), static_cast<long long>(r.pieces_sent));
        }
    }
    if (!response.ok()) {
        out.run.error = response.error().message;
        return out;
    }
    out.run.chunks = response->chunks;
    out.run.levels = response->levels;
    // The map's span and the first merge's start, from what the fakes saw (merge prompts hold summaries).
    Clock::time_point map_end{}, merge_start = Clock::time_point::max();
    for (const auto& r : requests) {
        const std::string prompt = r.body.value("prompt", "");
        const bool merge = prompt.find("holds summaries of consecutive parts") != std::string::npos;
        if (merge) {
            merge_start = std::min(merge_start, r.received);
        } else {
            map_end = std::max(map_end, r.finished);
        }
    }
    if (merge_start != Clock::time_point::max() && map_end > first_call) {
        out.first_merge_at = std::chrono::duration<double>(merge_start - first_call).count() /
                             std::chrono::duration<double>(map_end - first_call).count();
    }
    const auto merge_calls = std::count_if(out.run.calls.begin(), out.run.calls.end(), [](const CallRecord& c) {
        return c.ok && c.tag.rfind("reduce ", 0) == 0 && c.tag != "reduce final";
    });
    out.tail_carried = static_cast<size_t>(merge_calls) < groups;
    out.bound_s = PoolBound(out.run, model, hosts, slots, out.tail_carried);
    return out;
}

// The pool table: each case on 1, 2, 4... hosts; speed-ups against the first host count.
bool RunPoolCases(const Options& opts, const CostModel& model) {
    std::printf(
        "map-reduce on a pool of fake Ollama hosts (%s slots each; prefill 3000 tok/s shared per host, decode 60 tok/s "
        "per stream, load 3 s; time scale %.0f); times in simulated seconds\n\n",
        std::to_string(opts.slots.front()).c_str(), opts.time_scale);
    std::printf("| case | hosts | slots | chunks | levels | calls | first merge at | wall s | pool bound s | wall/bound | "
                "speed-up | target | ok |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    std::fflush(stdout);
    bool all_ok = true;
    for (const auto& lang : opts.langs) {
        const auto paragraphs = LoadParagraphs(opts.cases_dir, lang);
        if (paragraphs.empty()) return false;
        for (int64_t size : opts.sizes) {
            const std::string text = MakeDocument(paragraphs, size, static_cast<uint32_t>(size));
            const std::string name = std::to_string(size / 1000) + "K." + lang;
            double base = 0;
            for (int hosts : opts.hosts) {
                const int slots = opts.slots.front();
                PoolOutcome best;
                for (int r = 0; r < opts.repeat; ++r) {
                    PoolOutcome o = RunPool(text, lang, hosts, slots, opts, model);
                    if (r == 0 || (o.run.ok && o.run.wall_s < best.run.wall_s)) best = std::move(o);
                }
                if (!best.run.ok) {
                    std::printf("| %s | %d | failed: %s |\n", name.c_str(), hosts, best.run.error.c_str());
                    all_ok = false;
                    continue;
                }
                if (base == 0) base = best.run.wall_s * hosts / std::max(1, opts.hosts.front());
                const double speedup = opts.hosts.front() == 1 ? base / best.run.wall_s : 0;
                const double ratio = best.run.wall_s / best.bound_s;
                const double target = hosts >= 4 ? opts.min_pool_speedup_4 : hosts >= 2 ? opts.min_pool_speedup_2 : 1.0;
                const bool ok = ratio <= opts.max_pool_ratio && (hosts == 1 || speedup >= target);
                all_ok &= ok;
                char target_text[64];
                std::snprintf(target_text, sizeof target_text, "%s%.2f, <= %.2f", hosts == 1 ? "-, " : ">= ",
                              hosts == 1 ? 0.0 : target, opts.max_pool_ratio);
                std::printf("| %s | %d | %d | %d | %d | %zu | %s | %.1f | %.1f | %.3f | %.2fx | %s | %s |\n", name.c_str(),
                            hosts, slots, best.run.chunks, best.run.levels, best.run.calls.size(),
                            best.first_merge_at < 0 ? "-" : (std::to_string(static_cast<int>(best.first_merge_at * 100)) + "% of the map").c_str(),
                            best.run.wall_s, best.bound_s, ratio, speedup, hosts == 1 ? ("ratio " + std::string(target_text + 3)).c_str() : target_text,
                            ok ? "yes" : "NO");
                std::fflush(stdout);
            }
        }
    }
    std::printf("\ntargets: 2 hosts >= %.2fx, 4 hosts >= %.2fx faster than 1; wall / pool bound <= %.2f: %s\n",
                opts.min_pool_speedup_2, opts.min_pool_speedup_4, opts.max_pool_ratio, all_ok ? "met" : "NOT met");
    return all_ok;
}

// The fastest of `n` runs: noise on a busy machine only ever adds time.
template <typename F>
RunOutcome BestOf(int n, const F& run_once) {
    RunOutcome best = run_once();
    for (int i = 1; i < n && best.ok; ++i) {
        RunOutcome again = run_once();
        if (!again.ok) return again;
        if (again.wall_s < best.wall_s) best = std::move(again);
    }
    return best;
}

template <typename T>
std::vector<T> ParseList(const std::string& list) {
    std::vector<T> out;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        std::stringstream is(item);
        T value;
        is >> value;
        out.push_back(value);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    Options opts;
    std::string slots_list = "2,4", sizes_list = "200000,600000,1500000", langs_list = "en,ja";
    bool no_gate = false, no_serial = false;
    CLI::App app{
        "summarizer-mapreduce-bench: map-reduce wall time against the fake Ollama's GPU cost model, compared with "
        "a lower bound for the calls made and with the same plan run one call at a time"};
    app.option_defaults()->always_capture_default();
    app.add_option("--time-scale", opts.time_scale, "simulated seconds per real second")->check(CLI::PositiveNumber);
    app.add_option("--slots", slots_list, "comma-separated OLLAMA_NUM_PARALLEL values");
    app.add_option("--sizes", sizes_list, "comma-separated input sizes in chars");
    app.add_option("--lang", langs_list, "comma-separated languages (en, ja)");
    app.add_option("--cases-dir", opts.cases_dir, "where the case texts (the source paragraphs) are");
    app.add_flag("--no-prefill-gate", no_gate, "run with scheduler.prefill_gate off (for comparison)");
    app.add_flag("--no-serial", no_serial, "skip the one-call-at-a-time baseline (no speed-up)");
    app.add_option("--tokens-per-piece", opts.tokens_per_piece, "tokens per streamed line of the fake")
        ->check(CLI::PositiveNumber);
    app.add_option("--repeat", opts.repeat, "runs per configuration; the fastest counts")->check(CLI::PositiveNumber);
    app.add_flag("--fairness", opts.fairness,
                 "also time a short request arriving during two large jobs, interactive-first vs arrival order");
    app.add_flag("--trace", opts.trace, "print every call's start and end (simulated seconds) on stderr");
    app.add_flag("--judge-tight", opts.tight, "judge the ratio against the tight bound instead of the simple one");
    app.add_option("--max-ratio", opts.max_ratio, "target: wall / lower bound at most this");
    std::string hosts_list;
    app.add_option("--hosts", hosts_list,
                   "pool mode: comma-separated host counts (e.g. 1,2,4), each of --slots (the first) slots; speed-ups "
                   "against the first");
    app.add_option("--max-pool-ratio", opts.max_pool_ratio, "pool mode target: wall / pool bound at most this");
    app.add_option("--min-speedup", opts.min_speedup, "target: speed-up over one call at a time at least this");
    CLI11_PARSE(app, argc, argv);
    opts.prefill_gate = !no_gate;
    opts.serial = !no_serial;
    opts.slots = ParseList<int>(slots_list);
    opts.sizes = ParseList<int64_t>(sizes_list);
    opts.langs = ParseList<std::string>(langs_list);
    opts.hosts = ParseList<int>(hosts_list);
    spdlog::set_level(spdlog::level::warn);

    CostModel model;
    model.gpu.prefill_tokens_per_s = 3000;
    model.gpu.decode_tokens_per_s = 60;
    model.gpu.load_ms = 3000;
    model.gpu.decode_context_slowdown = testing::FakeGpuModel{}.decode_context_slowdown;
    model.gpu.decode_concurrency_slowdown = testing::FakeGpuModel{}.decode_concurrency_slowdown;
    if (!opts.hosts.empty()) return RunPoolCases(opts, model) ? 0 : 1;

    std::printf(
        "map-reduce against the fake GPU (prefill 3000 tok/s shared, decode 60 tok/s/stream, load 3 s, "
        "time scale %.0f, prefill gate %s); times in simulated seconds\n\n",
        opts.time_scale, opts.prefill_gate ? "on" : "off");
    std::printf(
        "| case | slots | chunks | levels | calls | max conc | wall s | bound s | wall/bound | tight bound s | "
        "wall/tight | serial s | speed-up | ok |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    std::fflush(stdout);
    bool all_ok = true;
    for (const auto& lang : opts.langs) {
        const auto paragraphs = LoadParagraphs(opts.cases_dir, lang);
        if (paragraphs.empty()) {
            std::fprintf(stderr, "no case texts for '%s' in %s\n", lang.c_str(), opts.cases_dir.c_str());
            return 2;
        }
        for (int64_t size : opts.sizes) {
            const std::string text = MakeDocument(paragraphs, size, static_cast<uint32_t>(size));
            const std::string name = std::to_string(size / 1000) + "K." + lang;
            for (int slots : opts.slots) {
                RunOutcome run = BestOf(opts.repeat, [&] { return RunOnce(text, lang, slots, slots, opts); });
                // The same plan (the router fills `slots` with chunks) run one call at a time.
                std::optional<RunOutcome> serial;
                if (opts.serial && slots > 1) {
                    serial = BestOf(opts.repeat, [&] { return RunOnce(text, lang, slots, 1, opts); });
                    if (serial->ok && run.ok && serial->calls.size() != run.calls.size()) {
                        std::printf("| %s | %d | baseline made %zu calls, the run %zu: not the same plan |\n",
                                    name.c_str(), slots, serial->calls.size(), run.calls.size());
                        all_ok = false;
                        continue;
                    }
                }
                if (!run.ok || (serial && !serial->ok)) {
                    std::printf("| %s | %d | failed: %s |\n", name.c_str(), slots,
                                (run.ok ? serial->error : run.error).c_str());
                    all_ok = false;
                    continue;
                }
                const Bounds bounds = LowerBounds(run, model, slots);
                const double ratio = run.wall_s / bounds.simple;
                const double tight_ratio = run.wall_s / bounds.tight;
                const double speedup = serial ? serial->wall_s / run.wall_s : 0;
                const bool ok = (opts.tight ? tight_ratio : ratio) <= opts.max_ratio &&
                                (!serial || slots < 2 || speedup >= opts.min_speedup);
                all_ok &= ok;
                std::printf("| %s | %d | %d | %d | %zu | %d | %.1f | %.1f | %.2f | %.1f | %.2f | %s | %s | %s |\n",
                            name.c_str(), slots, run.chunks, run.levels, run.calls.size(), run.max_concurrency,
                            run.wall_s, bounds.simple, ratio, bounds.tight, tight_ratio,
                            serial ? std::to_string(static_cast<int>(serial->wall_s + 0.5)).c_str() : "-",
                            serial ? (std::to_string(speedup).substr(0, 4) + "x").c_str() : "-", ok ? "yes" : "NO");
                std::fflush(stdout);
            }
        }
    }
    if (opts.fairness) {
        const auto paragraphs = LoadParagraphs(opts.cases_dir, "en");
        const std::string big = MakeDocument(paragraphs, 200000, 7);
        const std::string short_text = MakeDocument(paragraphs, 4000, 8);
        std::printf("\nfairness: a 4K-char single pass arriving while two 200K-char map-reduce jobs run\n\n");
        std::printf("| slots | its latency, interactive first | its latency, arrival order |\n|---:|---:|---:|\n");
        for (int slots : opts.slots) {
            const double with = ShortRequestLatencyS(big, short_text, slots, true, opts);
            const double without = ShortRequestLatencyS(big, short_text, slots, false, opts);
            std::printf("| %d | %.1f s | %.1f s |\n", slots, with, without);
            std::fflush(stdout);
        }
    }
    std::printf("\ntargets: wall/%s bound <= %.2f, speed-up >= %.2f with >= 2 slots: %s\n",
                opts.tight ? "tight" : "simple", opts.max_ratio, opts.min_speedup, all_ok ? "met" : "NOT met");
    return all_ok ? 0 : 1;
}
