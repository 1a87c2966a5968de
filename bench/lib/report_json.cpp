// The report as JSON: the configuration, and per case its summary, VRAM and every sample.
#include "lib/report.hpp"

#include <optional>

namespace summarizer::bench {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;  // reports keep a readable field order

template <typename T>
json OptionalJson(const std::optional<T>& value) {
    return value ? json(*value) : json(nullptr);
}

}  // namespace

nlohmann::ordered_json RenderJson(const BenchReport& report) {
    const BenchConfig& config = report.config;
    ojson out;
    out["tool"] = "summarizer-bench";
    out["started_at"] = report.started_at;
    out["wall_s"] = report.wall_s;
    out["ollama_version"] = report.ollama_version.empty() ? ojson(nullptr) : ojson(report.ollama_version);
    out["config"] = {
        {"mode", config.kind == TargetKind::kService ? "service" : "ollama"},
        {"service_url", config.service_url},
        {"ollama_url", config.ollama_url},
        {"model", config.model},
        {"api_key_set", !config.api_key.empty()},  // never the key itself
        {"num_ctx", config.num_ctx},
        {"keep_alive", config.keep_alive},
        {"options",
         {{"num_batch", config.num_batch},
          {"temperature", config.temperature},
          {"repeat_penalty", config.repeat_penalty},
          {"num_predict", config.num_predict}}},
        {"warmup_runs", config.warmup_runs},
        {"measured_runs", config.measured_runs},
        {"timeout_s", config.timeout_s},
        {"bust_prompt_cache", config.bust_prompt_cache},
    };
    out["targets"] = {{"ttft_s", config.targets.ttft_s},
                      {"decode_tps", config.targets.decode_tps},
                      {"prefill_tps", config.targets.prefill_tps}};
    ojson cases = ojson::array();
    for (const CaseResult& c : report.cases) {
        const CaseSummary& s = c.summary;
        ojson entry;
        entry["case"] = c.name;
        entry["lang"] = c.lang;
        entry["chars"] = c.chars;
        entry["summary"] = {
            {"runs_ok", s.runs_ok},
            {"runs_failed", s.runs_failed},
            {"warmup_failed", s.warmup_failed},
            {"ttft_p50_s", OptionalJson(s.ttft_p50_s)},
            {"ttft_p95_s", OptionalJson(s.ttft_p95_s)},
            {"prefill_tps_p50", OptionalJson(s.prefill_tps_p50)},
            {"decode_tps_p50", OptionalJson(s.decode_tps_p50)},
            {"latency_p50_s", OptionalJson(s.latency_p50_s)},
            {"latency_p95_s", OptionalJson(s.latency_p95_s)},
            {"prompt_tokens_p50", OptionalJson(s.prompt_tokens)},
            {"output_tokens_p50", OptionalJson(s.output_tokens)},
            {"route", s.route},
            {"verdict", s.verdict.pass ? "PASS" : "FAIL"},
            {"fail_reasons", s.verdict.reasons},
            {"first_error", s.first_error.empty() ? ojson(nullptr) : ojson(s.first_error)},
        };
        if (c.vram) {
            ojson models = ojson::array();
            for (const LoadedModel& m : c.vram->models) {
                models.push_back({{"name", m.name},
                                  {"size_bytes", m.size_bytes},
                                  {"size_vram_bytes", m.size_vram_bytes},
                                  {"context_length", m.context_length}});
            }
            entry["vram"] = {{"ok", c.vram->ok},
                             {"error", c.vram->ok ? ojson(nullptr) : ojson(c.vram->error)},
                             {"size_vram_bytes", c.vram->size_vram_bytes},
                             {"size_bytes", c.vram->size_bytes},
                             {"models", models}};
        } else {
            entry["vram"] = nullptr;
        }
        ojson samples = ojson::array();
        for (const RunSample& r : c.samples) {
            samples.push_back({
                {"warmup", r.warmup},
                {"index", r.index},
                {"ok", r.ok},
                {"error", r.ok ? ojson(nullptr) : ojson(r.error)},
                {"ttft_s", OptionalJson(r.ttft_s)},
                {"latency_s", OptionalJson(r.latency_s)},
                {"prefill_tps", OptionalJson(r.prefill_tps)},
                {"decode_tps", OptionalJson(r.decode_tps)},
                {"prompt_tokens", OptionalJson(r.prompt_tokens)},
                {"output_tokens", OptionalJson(r.output_tokens)},
                {"route", r.route},
                {"model", r.model},
                {"done_reason", r.done_reason},
                {"output_chars", r.output_chars},
                {"output_preview", r.output_preview},
                {"nonce", r.nonce},
            });
        }
        entry["samples"] = std::move(samples);
        cases.push_back(std::move(entry));
    }
    out["cases"] = std::move(cases);
    out["totals"] = {{"measured_ok", report.MeasuredRunsOk()}, {"measured_failed", report.MeasuredRunsFailed()}};
    return out;
}

}  // namespace summarizer::bench
