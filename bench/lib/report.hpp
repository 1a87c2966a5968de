// The report of a run in its three formats: a Markdown table, JSON with every sample, an SVG chart;
// and the files they are written to.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "lib/run.hpp"

namespace summarizer::bench {

// The target, the method, the targets, and one table row per case (its P50/P95s and verdict), then
// what failed.
std::string RenderMarkdown(const BenchReport& report);
// Every sample (warm-ups flagged) and the summary per case; never the API key.
nlohmann::ordered_json RenderJson(const BenchReport& report);
// TTFT P50 and latency P50 per case as grouped bars (one <rect class="bar ttft"> and one
// <rect class="bar latency"> per case with data), with a y axis in seconds and the TTFT target.
std::string RenderSvg(const BenchReport& report);

// Writes report.md, report.json and report.svg into dir (created if needed). Returns an error
// message, empty on success.
std::string WriteReportFiles(const BenchReport& report, const std::filesystem::path& dir);

}  // namespace summarizer::bench
