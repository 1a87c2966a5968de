#include "lib/format.hpp"

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cstdio>

namespace summarizer::bench {

std::string Format(const char* format, ...) {
    char buffer[512];
    va_list args;
    va_start(args, format);
    const int written = std::vsnprintf(buffer, sizeof buffer, format, args);
    va_end(args);
    return written < 0 ? std::string() : std::string(buffer, std::min<size_t>(written, sizeof buffer - 1));
}

std::string FormatSeconds(const std::optional<double>& seconds) { return seconds ? Format("%.2fs", *seconds) : "-"; }

std::string FormatRate(const std::optional<double>& rate) { return rate ? Format("%.1f", *rate) : "-"; }

std::string FormatCount(const std::optional<int64_t>& count) { return count ? std::to_string(*count) : "-"; }

std::string FormatVram(const std::optional<VramSnapshot>& vram) {
    if (!vram) return "-";
    if (!vram->ok) return "?";
    std::string text = Format("%.2f GiB", static_cast<double>(vram->size_vram_bytes) / (1024.0 * 1024 * 1024));
    if (vram->size_bytes > vram->size_vram_bytes && vram->size_bytes > 0) {
        // Part of the model on the CPU: the reason decode collapses; say so next to the number.
        const double cpu_share =
            1.0 - static_cast<double>(vram->size_vram_bytes) / static_cast<double>(vram->size_bytes);
        text += Format(" (%.0f%% on CPU)", cpu_share * 100);
    }
    return text;
}

std::string TargetDescription(const BenchConfig& config, const char* quote) {
    if (config.kind == TargetKind::kService) {
        std::string text = "service " + config.service_url;
        text +=
            config.ollama_url.empty() ? " (VRAM not queried: no --ollama)" : ", VRAM from Ollama " + config.ollama_url;
        return text;
    }
    return "Ollama " + config.ollama_url + ", model " + quote + config.model + quote + ", num_ctx " +
           std::to_string(config.num_ctx) + ", keep_alive " + config.keep_alive;
}

bool IsAsciiBlank(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
}

std::string TrimAscii(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return std::string(text);
}

}  // namespace summarizer::bench
