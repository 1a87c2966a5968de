#include "summarizer/duration.hpp"

#include <charconv>
#include <system_error>

namespace summarizer {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::optional<double> UnitSeconds(std::string_view unit) {
    if (unit == "ns") return 1e-9;
    // "µs" with U+00B5 MICRO SIGN and with U+03BC GREEK SMALL LETTER MU, as Go accepts both.
    if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") return 1e-6;
    if (unit == "ms") return 1e-3;
    if (unit == "s") return 1;
    if (unit == "m") return 60;
    if (unit == "h") return 3600;
    return std::nullopt;
}

std::string_view TrimAsciiSpace(std::string_view text) {
    const size_t begin = text.find_first_not_of(" \t\r\n");
    if (begin == std::string_view::npos) return {};
    return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

}  // namespace

std::optional<double> ParseGoDuration(std::string_view text) {
    bool negative = false;
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    if (text == "0") return 0.0;
    if (text.empty()) return std::nullopt;
    double total = 0;
    while (!text.empty()) {
        // [0-9]*(\.[0-9]*)? with at least one digit, then the unit: everything up to the next number.
        size_t end = 0;
        while (end < text.size() && IsDigit(text[end])) ++end;
        bool digits = end > 0;
        if (end < text.size() && text[end] == '.') {
            const size_t fraction = ++end;
            while (end < text.size() && IsDigit(text[end])) ++end;
            digits = digits || end > fraction;
        }
        if (!digits) return std::nullopt;
        size_t unit_end = end;
        while (unit_end < text.size() && text[unit_end] != '.' && !IsDigit(text[unit_end])) ++unit_end;
        const std::optional<double> unit = UnitSeconds(text.substr(end, unit_end - end));
        if (!unit) return std::nullopt;
        double number = 0;
        const auto [ptr, ec] = std::from_chars(text.data(), text.data() + end, number);
        if (ec != std::errc() || ptr != text.data() + end) return std::nullopt;
        total += number * *unit;
        text.remove_prefix(unit_end);
    }
    return negative ? -total : total;
}

std::optional<double> ParseBareSeconds(std::string_view text) {
    if (text.empty()) return std::nullopt;
    double seconds = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
    return seconds;
}

std::optional<double> ParseDurationSeconds(std::string_view text) {
    text = TrimAsciiSpace(text);
    if (const auto seconds = ParseBareSeconds(text)) return seconds;
    return ParseGoDuration(text);
}

}  // namespace summarizer
