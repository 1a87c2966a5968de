// The report as a Markdown table.
#include <sstream>

#include "lib/format.hpp"
#include "lib/report.hpp"
#include "lib/verdict.hpp"

namespace summarizer::bench {

std::string RenderMarkdown(const BenchReport& report) {
    const BenchConfig& config = report.config;
    const Targets& targets = config.targets;
    std::ostringstream out;
    out << "# summarizer-bench report\n\n";
    out << "- Target: " << TargetDescription(config, "`");
    if (!report.ollama_version.empty()) out << " (Ollama " << report.ollama_version << ")";
    out << "\n";
    out << "- Method: " << config.warmup_runs << " warm-up + " << config.measured_runs
        << " measured runs per case, one at a time; P50/P95 over the successful measured runs"
        << (config.bust_prompt_cache ? "; each request's text starts with a unique line (no prompt-cache reuse)" : "")
        << "\n";
    out << Format("- Targets: TTFT P50 < %g s, decode P50 > %g tok/s, prefill P50 > %g tok/s\n", targets.ttft_s,
                  targets.decode_tps, targets.prefill_tps);
    out << "- Started " << report.started_at << Format(", took %.1f s", report.wall_s) << "\n\n";

    out << "| case | lang | chars | runs ok | TTFT P50 | TTFT P95 | prefill tok/s | decode tok/s | latency P50 "
           "| latency P95 | prompt tok | output tok | route | VRAM | verdict |\n";
    out << "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|\n";
    for (const CaseResult& c : report.cases) {
        const CaseSummary& s = c.summary;
        out << "| " << c.name << " | " << c.lang << " | " << c.chars << " | " << s.runs_ok << "/"
            << s.runs_ok + s.runs_failed << " | " << FormatSeconds(s.ttft_p50_s) << " | " << FormatSeconds(s.ttft_p95_s)
            << " | " << FormatRate(s.prefill_tps_p50) << " | " << FormatRate(s.decode_tps_p50) << " | "
            << FormatSeconds(s.latency_p50_s) << " | " << FormatSeconds(s.latency_p95_s) << " | "
            << FormatCount(s.prompt_tokens) << " | " << FormatCount(s.output_tokens) << " | " << s.route << " | "
            << FormatVram(c.vram) << " | " << VerdictText(s.verdict) << " |\n";
    }

    std::ostringstream failures;
    for (const CaseResult& c : report.cases) {
        const CaseSummary& s = c.summary;
        if (s.runs_failed > 0) {
            failures << "- " << c.name << "/" << c.lang << ": " << s.runs_failed << " of " << s.runs_ok + s.runs_failed
                     << " measured runs failed; first: " << s.first_error << "\n";
        }
        if (s.warmup_failed > 0) {
            failures << "- " << c.name << "/" << c.lang << ": " << s.warmup_failed << " of " << config.warmup_runs
                     << " warm-up runs failed\n";
        }
        if (c.vram && !c.vram->ok) {
            failures << "- " << c.name << "/" << c.lang << ": VRAM unknown: " << c.vram->error << "\n";
        }
    }
    out << "\nMeasured runs: " << report.MeasuredRunsOk() << " ok, " << report.MeasuredRunsFailed() << " failed.\n";
    if (!failures.str().empty()) out << "\n" << failures.str();
    return out.str();
}

}  // namespace summarizer::bench
