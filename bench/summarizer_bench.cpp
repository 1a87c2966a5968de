// summarizer-bench: the design record's benchmark (cases small/medium/large/xl, warm-up, measured
// runs, P50) against a real Ollama or the summarizer service. CLI and wiring only; the logic is in
// lib/ (bench_lib.hpp).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "bench_lib.hpp"

#ifndef SUMMARIZER_BENCH_CASES_DIR
#define SUMMARIZER_BENCH_CASES_DIR "bench/cases"
#endif

namespace {

constexpr int kExitOk = 0;
constexpr int kExitAllRunsFailed = 1;
constexpr int kExitBadArguments = 2;

}  // namespace

int main(int argc, char** argv) {
    // A client-only process dies of SIGPIPE when a server closes mid-write; httplib does not guard it.
    std::signal(SIGPIPE, SIG_IGN);
    namespace bench = summarizer::bench;

    bench::BenchConfig config;
    std::string cases_list = "small,medium,large,xl";
    std::string langs_list = "en,ja";
    std::string cases_dir = SUMMARIZER_BENCH_CASES_DIR;
    std::string out_dir = "bench-report";
    bool reuse_prompt_cache = false;

    CLI::App app{
        "summarizer-bench: TTFT, prefill and decode rates and latency per case, the design record's method "
        "(warm-up runs, then measured runs; P50/P95), against a real Ollama (--ollama URL --model NAME) or the "
        "summarizer service (--service URL)."};
    app.option_defaults()->always_capture_default();
    app.add_option("--ollama", config.ollama_url,
                   "Ollama base URL. Ollama mode: the target. Service mode: only read for VRAM (GET /api/ps)");
    app.add_option("--model", config.model, "Ollama mode: the model to benchmark, e.g. gemma3-4b-16k");
    app.add_option("--service", config.service_url, "summarizer service base URL: benchmark POST /summarize");
    app.add_option("--api-key", config.api_key, "service API key (Authorization: Bearer)")
        ->envname("SUMMARIZER_API_KEY");
    app.add_option("--cases", cases_list, "comma-separated cases (files <case>.<lang>.txt)");
    app.add_option("--lang", langs_list, "comma-separated languages");
    app.add_option("--cases-dir", cases_dir, "directory holding the case files");
    app.add_option("--warmup", config.warmup_runs, "warm-up runs per case (not measured)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--runs", config.measured_runs, "measured runs per case")->check(CLI::PositiveNumber);
    app.add_option("--out", out_dir, "directory for report.md, report.json and report.svg");
    app.add_option("--num-ctx", config.num_ctx, "Ollama mode: options.num_ctx (match the model's Modelfile)")
        ->check(CLI::PositiveNumber);
    app.add_option("--keep-alive", config.keep_alive, "Ollama mode: keep_alive (duration like 24h, or seconds)");
    app.add_option("--timeout-s", config.timeout_s, "longest wait for the next bytes of a response, in seconds")
        ->check(CLI::PositiveNumber);
    app.add_option("--target-ttft-s", config.targets.ttft_s, "PASS needs TTFT P50 below this (seconds)");
    app.add_option("--target-decode-tps", config.targets.decode_tps, "PASS needs decode P50 above this (tok/s)");
    app.add_option("--target-prefill-tps", config.targets.prefill_tps, "PASS needs prefill P50 above this (tok/s)");
    app.add_flag("--reuse-prompt-cache", reuse_prompt_cache,
                 "send each case's text unchanged every run, letting Ollama reuse its prompt cache "
                 "(TTFT then no longer measures a prefill)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        const int code = app.exit(error);
        return code == 0 ? kExitOk : kExitBadArguments;
    }
    config.bust_prompt_cache = !reuse_prompt_cache;

    const auto usage_error = [](const std::string& message) {
        std::cerr << "summarizer-bench: " << message << "\nRun with --help for usage.\n";
        return kExitBadArguments;
    };
    config.kind = config.service_url.empty() ? bench::TargetKind::kOllama : bench::TargetKind::kService;
    if (config.service_url.empty() && config.ollama_url.empty()) {
        return usage_error("say what to benchmark: --ollama URL --model NAME, or --service URL");
    }
    if (config.kind == bench::TargetKind::kOllama && config.model.empty()) {
        return usage_error("--model is required with --ollama (and no --service)");
    }
    for (const std::string* url : {&config.service_url, &config.ollama_url}) {
        if (!url->empty() && !bench::ParseBaseUrl(*url)) return usage_error("not an http(s) URL: " + *url);
    }
    const std::vector<std::string> case_names = bench::SplitCommaList(cases_list);
    const std::vector<std::string> langs = bench::SplitCommaList(langs_list);
    if (case_names.empty() || langs.empty()) return usage_error("--cases and --lang need at least one entry");

    const bench::CaseLoadResult loaded = bench::LoadCases(cases_dir, case_names, langs);
    if (!loaded.ok()) return usage_error(loaded.error);

    bench::ProgressPrinter printer(std::cerr, isatty(fileno(stderr)) == 1);
    const bench::BenchReport report = bench::RunBenchmark(config, loaded.cases, std::ref(printer));

    std::cout << bench::RenderMarkdown(report) << std::flush;
    if (const std::string error = bench::WriteReportFiles(report, out_dir); !error.empty()) {
        std::cerr << "summarizer-bench: " << error << "\n";
    } else {
        std::cerr << "summarizer-bench: wrote " << out_dir << "/report.md, report.json, report.svg\n";
    }
    if (report.MeasuredRunsOk() == 0) {
        std::cerr << "summarizer-bench: every measured run failed\n";
        return kExitAllRunsFailed;
    }
    return kExitOk;
}
