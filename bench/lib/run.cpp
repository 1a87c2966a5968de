#include "lib/run.hpp"

#include <chrono>
#include <ctime>
#include <optional>
#include <random>

#include "lib/format.hpp"

namespace summarizer::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string UtcNowRfc3339() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buffer;
}

std::string MakeNonceSalt() {
    std::random_device device;
    return Format("%06x", static_cast<unsigned>(device() & 0xFFFFFF));
}

}  // namespace

int BenchReport::MeasuredRunsOk() const {
    int total = 0;
    for (const auto& c : cases) total += c.summary.runs_ok;
    return total;
}

int BenchReport::MeasuredRunsFailed() const {
    int total = 0;
    for (const auto& c : cases) total += c.summary.runs_failed;
    return total;
}

BenchReport RunBenchmark(const BenchConfig& config, const std::vector<BenchCase>& cases,
                         const ProgressCallback& progress) {
    BenchReport report;
    report.config = config;
    report.started_at = UtcNowRfc3339();
    const auto started = Clock::now();
    const std::string& ollama_url = config.ollama_url;
    if (!ollama_url.empty()) report.ollama_version = QueryOllamaVersion(ollama_url);

    const std::string salt = MakeNonceSalt();
    int request_number = 0;
    const auto notify = [&](const ProgressEvent& event) {
        if (progress) progress(event);
    };

    for (size_t case_index = 0; case_index < cases.size(); ++case_index) {
        const BenchCase& bench_case = cases[case_index];
        CaseResult result{bench_case.name, bench_case.lang, bench_case.chars, {}, {}, std::nullopt};
        ProgressEvent event;
        event.case_index = case_index;
        event.case_count = cases.size();
        event.case_name = bench_case.name;
        event.lang = bench_case.lang;

        for (const bool warmup : {true, false}) {
            const int runs = warmup ? config.warmup_runs : config.measured_runs;
            for (int run = 1; run <= runs; ++run) {
                event.stage = ProgressEvent::Stage::kRunStarting;
                event.warmup = warmup;
                event.run = run;
                event.runs = runs;
                event.sample = nullptr;
                notify(event);

                std::string nonce;
                std::string text = bench_case.text;
                if (config.bust_prompt_cache) {
                    nonce = "bench-" + salt + "-" + std::to_string(++request_number);
                    text = "Document ref: " + nonce + "\n\n" + text;
                }
                RunSample sample = config.kind == TargetKind::kService ? RunServiceOnce(config, text)
                                                                       : RunOllamaOnce(config, bench_case.lang, text);
                sample.warmup = warmup;
                sample.index = run;
                sample.nonce = nonce;
                result.samples.push_back(std::move(sample));

                event.stage = ProgressEvent::Stage::kRunFinished;
                event.sample = &result.samples.back();
                notify(event);
            }
        }
        result.summary = SummarizeCase(result.samples, config.targets);
        // Read right after the case: the model it used is still loaded (keep_alive).
        if (!ollama_url.empty()) result.vram = QueryVram(ollama_url);
        report.cases.push_back(std::move(result));

        event.stage = ProgressEvent::Stage::kCaseFinished;
        event.sample = nullptr;
        event.summary = &report.cases.back().summary;
        notify(event);
    }
    report.wall_s = std::chrono::duration<double>(Clock::now() - started).count();
    return report;
}

}  // namespace summarizer::bench
