#include "summarizer/metrics.hpp"

#include <sstream>

namespace summarizer {
namespace {

const std::vector<double> kLatencyBounds = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600};
const std::vector<double> kTtftBounds = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60};

std::string Escape(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

std::string Num(double v) {
    std::ostringstream s;
    s.precision(10);
    s << v;
    return s.str();
}

void RenderHistogram(std::ostringstream& out, const std::string& name, const std::string& labels,
                     const std::vector<double>& bounds, const std::vector<uint64_t>& counts, double sum, uint64_t count) {
    uint64_t cumulative = 0;
    std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < bounds.size(); ++i) {
        cumulative += counts[i];
        out << name << "_bucket{" << labels << sep << "le=\"" << Num(bounds[i]) << "\"} " << cumulative << "\n";
    }
    out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << count << "\n";
    out << name << "_sum" << (labels.empty() ? "" : "{" + labels + "}") << " " << Num(sum) << "\n";
    out << name << "_count" << (labels.empty() ? "" : "{" + labels + "}") << " " << count << "\n";
}

}  // namespace

void Metrics::Histogram::Observe(double v) {
    if (counts.empty()) counts.assign(bounds.size() + 1, 0);
    size_t i = 0;
    while (i < bounds.size() && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
}

Metrics::Metrics() { upstream_latency_.bounds = kLatencyBounds; }

void Metrics::ObserveRequest(const std::string& endpoint, const std::string& route, int status, double latency_s) {
    std::lock_guard lock(mutex_);
    ++requests_[{endpoint, route, std::to_string(status)}];
    auto& h = latency_[route];
    if (h.bounds.empty()) h.bounds = kLatencyBounds;
    h.Observe(latency_s);
}

void Metrics::ObserveTtft(const std::string& route, double ttft_s) {
    std::lock_guard lock(mutex_);
    auto& h = ttft_[route];
    if (h.bounds.empty()) h.bounds = kTtftBounds;
    h.Observe(ttft_s);
}

void Metrics::ObserveUpstream(const std::string& outcome, double seconds, int64_t prompt_tokens,
                              int64_t completion_tokens) {
    std::lock_guard lock(mutex_);
    ++upstream_[outcome];
    upstream_latency_.Observe(seconds);
    prompt_tokens_ += static_cast<uint64_t>(std::max<int64_t>(0, prompt_tokens));
    completion_tokens_ += static_cast<uint64_t>(std::max<int64_t>(0, completion_tokens));
}

void Metrics::CountOverflow() {
    std::lock_guard lock(mutex_);
    ++overflows_;
}

void Metrics::ObserveLoad(const std::string& model, double seconds) {
    std::lock_guard lock(mutex_);
    ++loads_[model];
    load_seconds_ += seconds;
}

// The model manager decides what a reload is (it also sees its own preloads): counted once, there.
void Metrics::CountReload() {
    std::lock_guard lock(mutex_);
    ++reloads_;
}

void Metrics::CountSpill(const std::string& bucket) {
    std::lock_guard lock(mutex_);
    ++spills_[bucket];
}

std::string Metrics::Render() const {
    std::lock_guard lock(mutex_);
    std::ostringstream out;
    out << "# HELP summarizer_requests_total Finished HTTP requests to the summarize endpoints.\n"
        << "# TYPE summarizer_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
        out << "summarizer_requests_total{endpoint=\"" << Escape(key[0]) << "\",route=\"" << Escape(key[1])
            << "\",status=\"" << key[2] << "\"} " << n << "\n";
    }
    out << "# HELP summarizer_request_duration_seconds Latency of summarize requests, arrival to last byte.\n"
        << "# TYPE summarizer_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
        RenderHistogram(out, "summarizer_request_duration_seconds", "route=\"" + Escape(route) + "\"", h.bounds,
                        h.counts, h.sum, h.count);
    }
    out << "# HELP summarizer_ttft_seconds Arrival to the first token of the final summary.\n"
        << "# TYPE summarizer_ttft_seconds histogram\n";
    for (const auto& [route, h] : ttft_) {
        RenderHistogram(out, "summarizer_ttft_seconds", "route=\"" + Escape(route) + "\"", h.bounds, h.counts, h.sum,
                        h.count);
    }
    out << "# HELP summarizer_upstream_requests_total Calls to Ollama by outcome.\n"
        << "# TYPE summarizer_upstream_requests_total counter\n";
    for (const auto& [outcome, n] : upstream_) {
        out << "summarizer_upstream_requests_total{outcome=\"" << Escape(outcome) << "\"} " << n << "\n";
    }
    out << "# HELP summarizer_upstream_duration_seconds Duration of calls to Ollama.\n"
        << "# TYPE summarizer_upstream_duration_seconds histogram\n";
    {
        auto counts = upstream_latency_.counts;
        if (counts.empty()) counts.assign(upstream_latency_.bounds.size() + 1, 0);
        RenderHistogram(out, "summarizer_upstream_duration_seconds", "", upstream_latency_.bounds, counts,
                        upstream_latency_.sum, upstream_latency_.count);
    }
    out << "# HELP summarizer_prompt_tokens_total Prompt tokens Ollama evaluated.\n"
        << "# TYPE summarizer_prompt_tokens_total counter\n"
        << "summarizer_prompt_tokens_total " << prompt_tokens_ << "\n"
        << "# HELP summarizer_completion_tokens_total Tokens Ollama generated.\n"
        << "# TYPE summarizer_completion_tokens_total counter\n"
        << "summarizer_completion_tokens_total " << completion_tokens_ << "\n"
        << "# HELP summarizer_context_overflows_total Prompts Ollama refused or cut as over num_ctx (re-planned).\n"
        << "# TYPE summarizer_context_overflows_total counter\n"
        << "summarizer_context_overflows_total " << overflows_ << "\n"
        << "# HELP summarizer_model_load_seconds_total Time Ollama spent loading models before answering.\n"
        << "# TYPE summarizer_model_load_seconds_total counter\n"
        << "summarizer_model_load_seconds_total " << Num(load_seconds_) << "\n"
        << "# HELP summarizer_model_loads_total Upstream calls that had to load their model first.\n"
        << "# TYPE summarizer_model_loads_total counter\n";
    for (const auto& [model, n] : loads_) {
        out << "summarizer_model_loads_total{model=\"" << Escape(model) << "\"} " << n << "\n";
    }
    out << "# HELP summarizer_model_reloads_total Model loads that replaced another loaded bucket.\n"
        << "# TYPE summarizer_model_reloads_total counter\n"
        << "summarizer_model_reloads_total " << reloads_ << "\n"
        << "# HELP summarizer_vram_spills_total Times a bucket was seen partly on the CPU.\n"
        << "# TYPE summarizer_vram_spills_total counter\n";
    for (const auto& [bucket, n] : spills_) {
        out << "summarizer_vram_spills_total{bucket=\"" << Escape(bucket) << "\"} " << n << "\n";
    }
    out << "# HELP summarizer_inflight_requests Requests being summarized now.\n"
        << "# TYPE summarizer_inflight_requests gauge\n"
        << "summarizer_inflight_requests " << inflight_.load() << "\n"
        << "# HELP summarizer_queued_requests Requests waiting for a slot.\n"
        << "# TYPE summarizer_queued_requests gauge\n"
        << "summarizer_queued_requests " << queued_.load() << "\n";
    return out.str();
}

}  // namespace summarizer
