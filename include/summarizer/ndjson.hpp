// Framing of newline-delimited JSON as it arrives over a network: pieces cut anywhere,
// including inside a line or a multi-byte character. Pure; no JSON parsing here.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace summarizer {

class NdjsonReader {
public:
    // Lines longer than `max_line_bytes` are an error (a peer that never sends '\n').
    explicit NdjsonReader(size_t max_line_bytes = 16 * 1024 * 1024) : max_line_bytes_(max_line_bytes) {}

    // Appends `data` and calls `on_line` for each complete line (without '\n' or a trailing
    // '\r'; blank lines skipped). Stops and returns false when `on_line` returns false or a
    // line is too long (then overflowed() is true).
    bool Feed(std::string_view data, const std::function<bool(std::string_view line)>& on_line);

    // Bytes received after the last newline: a final line without '\n', or a cut-off line.
    std::string_view pending() const { return buffer_; }
    bool overflowed() const { return overflowed_; }

private:
    size_t max_line_bytes_;
    std::string buffer_;
    bool overflowed_ = false;
};

}  // namespace summarizer
