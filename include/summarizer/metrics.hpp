// Counters, gauges and histograms with Prometheus text output. Thread-safe; cheap enough for
// the request path (one mutex per observation, no allocation for known label sets).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace summarizer {

class Metrics {
public:
    Metrics();

    // One finished HTTP request to /summarize (route "16k", "60k", "map_reduce", or "none").
    void ObserveRequest(const std::string& endpoint, const std::string& route, int status, double latency_s);
    void ObserveTtft(const std::string& route, double ttft_s);
    // One upstream call: outcome "ok", "error", "timeout", "unavailable", "cancelled", "overflow".
    void ObserveUpstream(const std::string& outcome, double seconds, int64_t prompt_tokens, int64_t completion_tokens);
    void CountOverflow();
    // An upstream call that loaded its model first (Ollama's load_duration was long). A load of a
    // model other than the one loaded last also counts as a reload (another bucket was evicted).
    void ObserveLoad(const std::string& model, double seconds);
    void CountReload();
    void CountSpill(const std::string& bucket);
    void SetInflight(int64_t value) { inflight_ = value; }
    void SetQueued(int64_t value) { queued_ = value; }
    void AddInflight(int64_t delta) { inflight_ += delta; }
    void AddQueued(int64_t delta) { queued_ += delta; }
    int64_t inflight() const { return inflight_; }
    int64_t queued() const { return queued_; }

    // The Prometheus text exposition format (version 0.0.4).
    std::string Render() const;

private:
    struct Histogram {
        std::vector<double> bounds;
        std::vector<uint64_t> counts;  // per bucket (not cumulative); last = +Inf
        double sum = 0;
        uint64_t count = 0;
        void Observe(double v);
    };

    mutable std::mutex mutex_;
    std::map<std::vector<std::string>, uint64_t> requests_;   // {endpoint, route, status}
    std::map<std::string, Histogram> latency_;                // by route
    std::map<std::string, Histogram> ttft_;                   // by route
    std::map<std::string, uint64_t> upstream_;                // by outcome
    Histogram upstream_latency_;
    uint64_t prompt_tokens_ = 0;
    uint64_t completion_tokens_ = 0;
    uint64_t overflows_ = 0;
    uint64_t reloads_ = 0;
    std::map<std::string, uint64_t> loads_;                   // by model
    double load_seconds_ = 0;
    std::map<std::string, uint64_t> spills_;
    std::atomic<int64_t> inflight_{0};
    std::atomic<int64_t> queued_{0};
};

}  // namespace summarizer
