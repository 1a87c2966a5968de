// Micro-benchmarks (Google Benchmark) of the pure text layer on the sizes the service sees: the
// token estimate and the chunker on up to 1.5M characters, English and Japanese. Speed lives here,
// not in timed unit tests. Run: build/bench/summarizer-micro-bench
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>
#include <string>

#include "summarizer/chunker.hpp"
#include "summarizer/text.hpp"
#include "summarizer/tokens.hpp"

namespace {

std::string Case(const char* name, size_t bytes) {
    std::ifstream in(std::string(SUMMARIZER_BENCH_CASES_DIR) + "/" + name, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    const std::string one = s.str() + "\n\n";
    std::string out;
    while (out.size() < bytes) out += one;
    return out;
}

const std::string& Text(int64_t which) {
    static const std::string english = Case("xl.en.txt", 1500000);
    static const std::string japanese = Case("xl.ja.txt", 4500000);  // ~1.5M code points
    return which == 0 ? english : japanese;
}

void BM_EstimateTokens(benchmark::State& state) {
    const std::string& text = Text(state.range(0));
    for (auto _ : state) benchmark::DoNotOptimize(summarizer::EstimateTokens(text));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_EstimateTokens)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_ComputeTextStats(benchmark::State& state) {
    const std::string& text = Text(state.range(0));
    for (auto _ : state) benchmark::DoNotOptimize(summarizer::ComputeTextStats(text));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ComputeTextStats)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_SplitIntoChunks(benchmark::State& state) {
    const std::string& text = Text(state.range(0));
    summarizer::ChunkLimits limits;
    for (auto _ : state) benchmark::DoNotOptimize(summarizer::SplitIntoChunks(text, limits));
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_SplitIntoChunks)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
