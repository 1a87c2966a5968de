// Metrics: what /metrics shows after observations (the format itself is checked by promtool in
// scripts/check-metrics.sh).
#include "summarizer/metrics.hpp"

#include <gtest/gtest.h>

namespace summarizer {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

TEST(Metrics, CountsRequestsByEndpointRouteAndStatus) {
    Metrics m;
    m.ObserveRequest("/summarize", "16k", 200, 0.3);
    m.ObserveRequest("/summarize", "16k", 200, 2.5);
    m.ObserveRequest("/summarize", "none", 400, 0.001);
    std::string text = m.Render();
    EXPECT_TRUE(Has(text, R"(summarizer_requests_total{endpoint="/summarize",route="16k",status="200"} 2)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_requests_total{endpoint="/summarize",route="none",status="400"} 1)")) << text;
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
    Metrics m;
    m.ObserveRequest("/summarize", "16k", 200, 0.3);
    m.ObserveRequest("/summarize", "16k", 200, 2.5);
    m.ObserveTtft("16k", 0.2);
    std::string text = m.Render();
    EXPECT_TRUE(Has(text, R"(summarizer_request_duration_seconds_bucket{route="16k",le="0.25"} 0)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_request_duration_seconds_bucket{route="16k",le="0.5"} 1)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_request_duration_seconds_bucket{route="16k",le="5"} 2)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_request_duration_seconds_bucket{route="16k",le="+Inf"} 2)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_request_duration_seconds_sum{route="16k"} 2.8)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_request_duration_seconds_count{route="16k"} 2)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_ttft_seconds_bucket{route="16k",le="0.25"} 1)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_ttft_seconds_count{route="16k"} 1)")) << text;
}

TEST(Metrics, UpstreamOutcomesTokensAndGauges) {
    Metrics m;
    m.ObserveUpstream("ok", 1.0, 800, 240);
    m.ObserveUpstream("ok", 2.0, 200, 60);
    m.ObserveUpstream("timeout", 30.0, 0, 0);
    m.AddInflight(2);
    m.AddQueued(3);
    m.AddQueued(-1);
    std::string text = m.Render();
    EXPECT_TRUE(Has(text, R"(summarizer_upstream_requests_total{outcome="ok"} 2)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_upstream_requests_total{outcome="timeout"} 1)")) << text;
    EXPECT_TRUE(Has(text, "summarizer_upstream_duration_seconds_count 3")) << text;
    EXPECT_TRUE(Has(text, "summarizer_prompt_tokens_total 1000")) << text;
    EXPECT_TRUE(Has(text, "summarizer_completion_tokens_total 300")) << text;
    EXPECT_TRUE(Has(text, "summarizer_inflight_requests 2")) << text;
    EXPECT_TRUE(Has(text, "summarizer_queued_requests 2")) << text;
}

TEST(Metrics, LoadsAndReloadsAreCountedApart) {
    Metrics m;
    m.ObserveLoad("gemma3-4b-16k", 3.0);   // first load: nothing was evicted
    m.ObserveLoad("gemma3-4b-60k", 4.5);   // replaced the 16k runner: the model manager calls CountReload
    m.CountReload();
    m.ObserveLoad("gemma3-4b-16k", 3.0);   // and back
    m.CountReload();
    std::string text = m.Render();
    EXPECT_TRUE(Has(text, R"(summarizer_model_loads_total{model="gemma3-4b-16k"} 2)")) << text;
    EXPECT_TRUE(Has(text, R"(summarizer_model_loads_total{model="gemma3-4b-60k"} 1)")) << text;
    EXPECT_TRUE(Has(text, "summarizer_model_reloads_total 2")) << text;  // once each, not twice
    EXPECT_TRUE(Has(text, "summarizer_model_load_seconds_total 10.5")) << text;
}

TEST(Metrics, LabelValuesAreEscaped) {
    Metrics m;
    m.ObserveUpstream("a\"b\\c\nd", 0.1, 0, 0);
    EXPECT_TRUE(Has(m.Render(), R"(summarizer_upstream_requests_total{outcome="a\"b\\c\nd"} 1)")) << m.Render();
}

TEST(Metrics, EveryFamilyHasHelpAndTypeBeforeItsSamples) {
    Metrics m;
    std::string text = m.Render();
    for (const char* family : {"summarizer_requests_total", "summarizer_request_duration_seconds", "summarizer_ttft_seconds",
                               "summarizer_upstream_requests_total", "summarizer_prompt_tokens_total",
                               "summarizer_inflight_requests", "summarizer_queued_requests",
                               "summarizer_model_reloads_total"}) {
        EXPECT_NE(text.find(std::string("# HELP ") + family + " "), std::string::npos) << family;
        EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
    }
}

}  // namespace
}  // namespace summarizer
