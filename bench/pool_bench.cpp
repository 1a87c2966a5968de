// summarizer-pool-bench: two measures of issue #14 against fake engines with their GPU cost models,
// through the real Service (pool, scheduler, executor), times in simulated seconds (real x scale).
//
// --ttft: 32 concurrent short requests (a ~600-token prompt, 300 tokens out) against one
//   OpenAI-compatible fake with continuous batching of 16 sequences (vLLM's engine: every step
//   decodes one token of each running sequence and prefills up to 2048 tokens), and the same
//   workload against one Ollama fake (its slots: OLLAMA_NUM_PARALLEL, decode 60 tok/s per stream
//   slowed 8% per concurrent stream). Prints TTFT P50/P95 (request sent -> first token of the
//   summary, queueing included) and throughput (output tokens per simulated second over the whole
//   burst), for the OpenAI engine with the prefill gate on and off (pool.openai_prefill_gate).
// --kill: a 1.5M-char map-reduce on two Ollama hosts of 2 slots; one host is killed when a third of
//   the map is done. Prints the chunks (against the plan's), the calls the job needed, the calls
//   made, and the calls redone (made - needed, against the killed host's slots).
// Exits 0 when the kill measure meets its target (same chunks, redone <= slots), 1 otherwise.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_ollama.hpp"
#include "summarizer/config.hpp"
#include "summarizer/service.hpp"
#include "summarizer/stats.hpp"

#ifndef SUMMARIZER_BENCH_CASES_DIR
#define SUMMARIZER_BENCH_CASES_DIR "bench/cases"
#endif

namespace {

using namespace summarizer;
using Clock = std::chrono::steady_clock;

struct Options {
    double time_scale = 20;
    int requests = 32;
    int ollama_slots = 4;
    int openai_seqs = 16;
    bool ttft = false;
    bool kill = false;
    int64_t kill_chars = 1500000;
    std::string cases_dir = SUMMARIZER_BENCH_CASES_DIR;
};

std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

testing::FakeGpuModel Gpu(int slots, double time_scale) {
    testing::FakeGpuModel gpu;
    gpu.enabled = true;
    gpu.slots = slots;
    gpu.prefill_tokens_per_s = 3000;
    gpu.decode_tokens_per_s = 60;
    gpu.load_ms = 3000;
    gpu.time_scale = time_scale;
    gpu.output_tokens = 300;
    return gpu;
}

struct Burst {
    std::string name;
    std::vector<double> ttft_s;
    double wall_s = 0;
    int64_t output_tokens = 0;
    int failures = 0;
};

// `requests` summaries at once through a Service on `config`; the clock starts when all are sent.
Burst RunBurst(const std::string& name, const Config& config, const std::string& text, const Options& o) {
    Burst b;
    b.name = name;
    Service service(config);
    service.Start();
    std::mutex mutex;
    std::vector<std::thread> clients;
    const auto start = Clock::now();
    for (int i = 0; i < o.requests; ++i) {
        clients.emplace_back([&, i] {
            const auto sent = Clock::now();
            std::optional<Clock::time_point> first;
            SummarizeEvents events;
            events.on_delta = [&](std::string_view) {
                if (!first) first = Clock::now();
            };
            SummarizeRequest request;
            request.text = text + "\n\n(request " + std::to_string(i) + ")";  // no two prompts alike
            request.language = "en";
            request.request_id = "burst-" + std::to_string(i);
            auto ticket = service.Admit(CancelToken());
            auto result = ticket.ok() ? service.Summarize(*ticket, request, events) : Result<SummarizeResponse>(ticket.error());
            std::lock_guard lock(mutex);
            if (!result.ok() || !first) {
                ++b.failures;
                std::fprintf(stderr, "%s: request %d failed: %s\n", name.c_str(), i,
                             result.ok() ? "no token" : result.error().message.c_str());
                return;
            }
            b.ttft_s.push_back(std::chrono::duration<double>(*first - sent).count() * o.time_scale);
            b.output_tokens += result->usage.completion_tokens;
        });
    }
    for (auto& t : clients) t.join();
    b.wall_s = std::chrono::duration<double>(Clock::now() - start).count() * o.time_scale;
    return b;
}

Config BaseConfig(const Options& o) {
    Config config;
    config.vram.preload_hot_bucket = false;
    config.server.max_queue = 1000;
    config.ollama.first_token_timeout_s = 600;
    config.pool.probe_interval_ms = 60000;
    // The scheduler's waits are wall-clock: scale them like the fakes' GPU time.
    config.scheduler.prefill_gate_max_ms = std::max(1, static_cast<int>(20000 / o.time_scale));
    config.scheduler.batch_max_wait_ms = std::max(1, static_cast<int>(20000 / o.time_scale));
    return config;
}

int RunTtft(const Options& o) {
    std::string text = ReadFile(o.cases_dir + "/small.en.txt");
    if (text.empty()) {
        std::fprintf(stderr, "no small.en.txt in %s\n", o.cases_dir.c_str());
        return 2;
    }
    std::vector<Burst> bursts;
    {
        testing::FakeOllama ollama;
        ollama.SetGpuModel(Gpu(o.ollama_slots, o.time_scale));
        ollama.SetModels({{"gemma3-4b-16k", 16384}, {"gemma3-4b-60k", 61440}});
        Config config = BaseConfig(o);
        config.upstreams = {{"ollama", "ollama", ollama.url(), o.ollama_slots}};
        // The load is paid once before the burst, as on a warm server.
        testing::FakeBehavior warm;
        ollama.SetBehavior(warm);
        {
            Service warmup(config);
            auto ticket = warmup.Admit(CancelToken());
            SummarizeRequest r;
            r.text = text;
            (void)warmup.Summarize(*ticket, r, {});
        }
        bursts.push_back(RunBurst("ollama, " + std::to_string(o.ollama_slots) + " slots", config, text, o));
    }
    for (bool gate : {false, true}) {
        testing::FakeOllama vllm;
        vllm.SetApi(testing::FakeApi::kVllm);
        vllm.SetModels({{"google/gemma-3-4b-it", 32768}});
        vllm.SetGpuModel(Gpu(o.openai_seqs, o.time_scale));
        Config config = BaseConfig(o);
        config.upstreams = {{"vllm", "openai", vllm.url(), o.openai_seqs}};
        config.pool.openai_prefill_gate = gate;
        bursts.push_back(RunBurst("vLLM (continuous batching, " + std::to_string(o.openai_seqs) + " seqs), prefill gate " +
                                      (gate ? "on" : "off"),
                                  config, text, o));
    }
    std::printf("%d concurrent requests of %zu chars (~%zu tokens), 300 tokens out; time scale %g; simulated seconds\n\n",
                o.requests, text.size(), text.size() / 4, o.time_scale);
    std::printf("| engine | TTFT P50 s | TTFT P95 s | wall s | throughput tok/s | failures |\n|---|---:|---:|---:|---:|---:|\n");
    for (const auto& b : bursts) {
        std::printf("| %s | %.2f | %.2f | %.1f | %.0f | %d |\n", b.name.c_str(), Percentile(b.ttft_s, 50).value_or(0),
                    Percentile(b.ttft_s, 95).value_or(0), b.wall_s, static_cast<double>(b.output_tokens) / b.wall_s,
                    b.failures);
    }
    std::fflush(stdout);
    return 0;
}

int RunKill(const Options& o) {
    std::string paragraphs = ReadFile(o.cases_dir + "/xl.en.txt") + "\n\n" + ReadFile(o.cases_dir + "/large.en.txt");
    std::string text;
    while (static_cast<int64_t>(text.size()) < o.kill_chars) text += paragraphs + "\n\n";
    std::vector<std::unique_ptr<testing::FakeOllama>> fakes;
    Config config = BaseConfig(o);
    config.ollama.num_parallel = 2;
    for (int h = 0; h < 2; ++h) {
        fakes.push_back(std::make_unique<testing::FakeOllama>());
        fakes.back()->SetGpuModel(Gpu(2, o.time_scale));
        testing::FakeBehavior b;
        b.piece_chars = 32;
        fakes.back()->SetBehavior(b);
        config.upstreams.push_back({"gpu" + std::to_string(h + 1), "ollama", fakes.back()->url(), 2});
    }
    Service service(config);
    service.Start();
    SummarizeRequest request;
    request.text = text;
    request.language = "en";
    request.strategy = Strategy::kMapReduce;
    auto plan = service.MakePlan(request);
    if (!plan.ok()) {
        std::fprintf(stderr, "plan: %s\n", plan.error().message.c_str());
        return 2;
    }
    const size_t planned = plan->chunks.size();
    std::atomic<int> maps_done{0};
    std::atomic<bool> killed{false};
    std::atomic<int> in_flight_at_kill{-1};
    SummarizeEvents events;
    events.on_step = [&](const StepId& step, const StepOutput&, const ExecutionState&) {
        if (step.kind == StepKind::kMap && ++maps_done == static_cast<int>(planned / 3) && !killed.exchange(true)) {
            in_flight_at_kill = fakes[0]->ActiveCalls();
            std::thread([&] { fakes[0]->Stop(); }).detach();
        }
    };
    auto ticket = service.Admit(CancelToken());
    const auto start = Clock::now();
    auto result = service.Summarize(*ticket, request, events);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count() * o.time_scale;
    if (!result.ok()) {
        std::printf("the job failed: %s\n", result.error().message.c_str());
        return 1;
    }
    int made = 0;
    for (const auto& f : fakes) made += static_cast<int>(f->Requests().size());
    const int needed = result->usage.upstream_requests;
    const int redone = made - needed;
    const bool ok = static_cast<size_t>(result->chunks) == planned && redone <= 2;
    std::printf("\nhost gpu1 killed after %d of %zu maps (%d call(s) in flight on it); 2 hosts of 2 slots\n\n",
                static_cast<int>(planned / 3), planned, in_flight_at_kill.load());
    std::printf("| chunks planned | chunks done | calls needed | calls made | calls redone | killed host's slots | wall s | ok |\n"
                "|---:|---:|---:|---:|---:|---:|---:|---|\n");
    std::printf("| %zu | %d | %d | %d | %d | 2 | %.0f | %s |\n", planned, result->chunks, needed, made, redone, wall,
                ok ? "yes" : "NO");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    Options o;
    CLI::App app{"summarizer-pool-bench: TTFT and throughput of an OpenAI-compatible engine with continuous batching "
                 "against one Ollama, and a host killed in the middle of a map-reduce (times simulated)"};
    app.option_defaults()->always_capture_default();
    app.add_flag("--ttft", o.ttft, "the burst of short requests");
    app.add_flag("--kill", o.kill, "the host killed mid-job");
    app.add_option("--time-scale", o.time_scale, "simulated seconds per real second")->check(CLI::PositiveNumber);
    app.add_option("--requests", o.requests, "concurrent short requests")->check(CLI::PositiveNumber);
    app.add_option("--ollama-slots", o.ollama_slots, "the Ollama fake's OLLAMA_NUM_PARALLEL")->check(CLI::PositiveNumber);
    app.add_option("--openai-seqs", o.openai_seqs, "sequences the OpenAI fake batches")->check(CLI::PositiveNumber);
    app.add_option("--kill-chars", o.kill_chars, "size of the killed-host job")->check(CLI::PositiveNumber);
    app.add_option("--cases-dir", o.cases_dir, "directory of the benchmark case texts");
    CLI11_PARSE(app, argc, argv);
    spdlog::set_level(spdlog::level::err);
    if (!o.ttft && !o.kill) o.ttft = o.kill = true;
    int rc = 0;
    if (o.ttft) rc = std::max(rc, RunTtft(o));
    if (o.kill) rc = std::max(rc, RunKill(o));
    return rc;
}
