// Text helpers of the bench's progress lines and reports: printf-style formatting, the "-" of a
// missing value, the VRAM column, the target's description; and the ASCII trimming of its inputs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "lib/client.hpp"
#include "lib/config.hpp"

namespace summarizer::bench {

std::string Format(const char* format, ...) __attribute__((format(printf, 1, 2)));

// "1.23s", "45.6" (a rate), "789" (a count); "-" when there is no value.
std::string FormatSeconds(const std::optional<double>& seconds);
std::string FormatRate(const std::optional<double>& rate);
std::string FormatCount(const std::optional<int64_t>& count);

// "3.41 GiB", with the share on the CPU when part of the model is there; "-" when not asked, "?"
// when /api/ps failed.
std::string FormatVram(const std::optional<VramSnapshot>& vram);

// What was measured: "service URL, ..." or "Ollama URL, model M, num_ctx N, keep_alive K". `quote`
// marks the model name: Markdown code in the report, plain quotes in the chart.
std::string TargetDescription(const BenchConfig& config, const char* quote);

// True if `text` is empty or only ASCII whitespace.
bool IsAsciiBlank(std::string_view text);
// `text` without leading and trailing ASCII whitespace.
std::string TrimAscii(std::string_view text);

}  // namespace summarizer::bench
