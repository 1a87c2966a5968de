// Framing of newline-delimited JSON as it arrives over a network: pieces cut anywhere,
// including inside a line or a multi-byte character. Pure; no JSON parsing here. A LineFramer
// (line_framer.hpp) that skips blank lines.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "summarizer/line_framer.hpp"

namespace summarizer {

class NdjsonReader {
public:
    // Lines longer than `max_line_bytes` are an error (a peer that never sends '\n').
    explicit NdjsonReader(size_t max_line_bytes = 16 * 1024 * 1024) : lines_(LineFramer::Breaks::kLf, max_line_bytes) {}

    // Appends `data` and calls `on_line` for each complete line (without '\n' or a trailing
    // '\r'; blank lines skipped). Stops and returns false when `on_line` returns false or a
    // line is too long (then overflowed() is true).
    bool Feed(std::string_view data, const std::function<bool(std::string_view line)>& on_line);

    // Bytes received after the last newline: a final line without '\n', or a cut-off line.
    std::string_view pending() const { return lines_.pending(); }
    bool overflowed() const { return lines_.overflowed(); }

private:
    LineFramer lines_;
};

}  // namespace summarizer
