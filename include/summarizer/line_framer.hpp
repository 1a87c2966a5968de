// Cuts a byte stream into lines as it arrives over a network: pieces cut anywhere, including inside
// a line, between the '\r' and '\n' of a line break, or inside a multi-byte character. The one line
// splitter under NDJSON (NdjsonReader) and Server-Sent Events (SseReader). Pure; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace summarizer {

class LineFramer {
public:
    enum class Breaks {
        kLf,         // '\n' ends a line; a '\r' right before it is dropped (NDJSON)
        kAnyOfCrLf,  // "\r\n", '\n' or a lone '\r' ends a line (the WHATWG event stream format)
    };
    static constexpr size_t kNoLimit = SIZE_MAX;

    // Lines longer than `max_line_bytes` are an error (a peer that never sends a line break). With
    // kLf the '\r' of a "\r\n" counts towards the length.
    explicit LineFramer(Breaks breaks = Breaks::kLf, size_t max_line_bytes = kNoLimit)
        : breaks_(breaks), max_line_bytes_(max_line_bytes) {}

    // Appends `data` and calls `on_line` for each line it completes, in order, without its line
    // break; blank lines included. Returns false, dropping the rest of `data`, as soon as `on_line`
    // returns false; returns false when a line (complete or not) is over the limit, and from then
    // on overflowed() is true and every call returns false. The verdict does not depend on where
    // the stream was cut.
    bool Feed(std::string_view data, const std::function<bool(std::string_view line)>& on_line);

    // Bytes received after the last line break: an unterminated last line, or the start of one.
    std::string_view pending() const { return buffer_; }

    // Ends the stream: returns the unterminated last line (without a trailing '\r' with kLf; empty
    // if there is none) and forgets it.
    std::string TakePending();

    bool overflowed() const { return overflowed_; }

private:
    Breaks breaks_;
    size_t max_line_bytes_;
    std::string buffer_;
    bool overflowed_ = false;
    bool skip_lf_ = false;  // kAnyOfCrLf: the last piece ended with a '\r'; a '\n' first in the next is its pair
};

}  // namespace summarizer
