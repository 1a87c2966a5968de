// Progress lines: a rewritten line on a terminal, plain lines in a log.
#include "lib/progress.hpp"

#include "lib/format.hpp"
#include "lib/verdict.hpp"

namespace summarizer::bench {

void ProgressPrinter::Rewrite(const std::string& line) {
    out_ << '\r' << line;
    // Blank out the tail of a longer previous line.
    if (line.size() < last_width_) out_ << std::string(last_width_ - line.size(), ' ');
    last_width_ = line.size();
    out_.flush();
}

void ProgressPrinter::operator()(const ProgressEvent& event) {
    const std::string where =
        Format("[%zu/%zu] %s/%s", event.case_index + 1, event.case_count, event.case_name.c_str(), event.lang.c_str());
    const std::string phase = Format("%s %d/%d", event.warmup ? "warm-up" : "run", event.run, event.runs);
    switch (event.stage) {
        case ProgressEvent::Stage::kRunStarting:
            if (is_tty_) Rewrite(where + " " + phase + " ...");
            return;
        case ProgressEvent::Stage::kRunFinished: {
            const RunSample& sample = *event.sample;
            const std::string outcome = sample.ok ? "TTFT " + FormatSeconds(sample.ttft_s) + ", latency " +
                                                        FormatSeconds(sample.latency_s) + ", decode " +
                                                        FormatRate(sample.decode_tps) + " tok/s"
                                                  : "FAILED: " + sample.error;
            if (is_tty_) {
                // A failure stays on screen; a success is overwritten by the next run.
                Rewrite(where + " " + phase + ": " + outcome);
                if (!sample.ok) {
                    out_ << '\n';
                    last_width_ = 0;
                }
            } else {
                out_ << where << ' ' << phase << ": " << outcome << '\n';
            }
            return;
        }
        case ProgressEvent::Stage::kCaseFinished: {
            const CaseSummary& s = *event.summary;
            const std::string line = where + Format(" done: %d/%d ok", s.runs_ok, s.runs_ok + s.runs_failed) +
                                     ", TTFT P50 " + FormatSeconds(s.ttft_p50_s) + ", prefill " +
                                     FormatRate(s.prefill_tps_p50) + " tok/s, decode " + FormatRate(s.decode_tps_p50) +
                                     " tok/s, latency P50 " + FormatSeconds(s.latency_p50_s) + " -> " +
                                     VerdictText(s.verdict);
            if (is_tty_) {
                Rewrite(line);
                out_ << '\n';
                last_width_ = 0;
            } else {
                out_ << line << '\n';
            }
            out_.flush();
            return;
        }
    }
}

}  // namespace summarizer::bench
