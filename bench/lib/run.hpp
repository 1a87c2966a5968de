// Running the benchmark: every case's warm-up and measured runs one after another, the VRAM after
// each case, and the progress events a printer shows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lib/cases.hpp"
#include "lib/client.hpp"
#include "lib/config.hpp"
#include "lib/summary.hpp"

namespace summarizer::bench {

struct CaseResult {
    std::string name;
    std::string lang;
    int64_t chars = 0;
    std::vector<RunSample> samples;  // warm-ups first, then measured runs
    CaseSummary summary;
    std::optional<VramSnapshot> vram;  // after the case's runs; nullopt when not asked
};

struct BenchReport {
    BenchConfig config;
    std::string started_at;  // UTC, RFC 3339
    double wall_s = 0;
    std::string ollama_version;  // empty when unknown
    std::vector<CaseResult> cases;

    int MeasuredRunsOk() const;
    int MeasuredRunsFailed() const;
};

// What RunBenchmark reports as it goes (a ProgressPrinter shows it).
struct ProgressEvent {
    enum class Stage { kRunStarting, kRunFinished, kCaseFinished };
    Stage stage = Stage::kRunStarting;
    size_t case_index = 0;  // 0-based
    size_t case_count = 0;
    std::string case_name;
    std::string lang;
    bool warmup = false;
    int run = 0;  // 1-based within the phase
    int runs = 0;
    const RunSample* sample = nullptr;     // kRunFinished
    const CaseSummary* summary = nullptr;  // kCaseFinished
};
using ProgressCallback = std::function<void(const ProgressEvent&)>;

// Runs every case: warm-ups, measured runs, then /api/ps when an Ollama URL is known. Failed
// runs are recorded, never fatal.
BenchReport RunBenchmark(const BenchConfig& config, const std::vector<BenchCase>& cases,
                         const ProgressCallback& progress = {});

}  // namespace summarizer::bench
