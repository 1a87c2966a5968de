// Fuzzes NdjsonReader (include/summarizer/ndjson.hpp) against a model of its contract, with the
// stream cut into random pieces (empty ones included, cuts inside lines and characters).
//
// Input: 4 header bytes, then the stream.
//   byte 0: >= 0x80: max_line_bytes = (byte & 0x7F) + 1; else the default limit
//   byte 1: >= 0xF0: the callback returns false on line (byte - 0xF0 + 1); else it never does
//   bytes 2-3: seed of the cut positions
// ASCII "0000" is a good header for hand-written seeds: default limit, no stop.
//
// The model: lines are the bytes between '\n's; a line longer than max_line_bytes (its '\r'
// counted) is an error, and so is a final unterminated line that long. Every line before the
// first error is delivered, without its trailing '\r', blank ones skipped; then Feed returns
// false and overflowed() is true. None of this may depend on where the stream was cut.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "summarizer/ndjson.hpp"

namespace {

struct Expected {
    std::vector<std::string> lines;  // delivered before a stop or an overflow
    bool overflow = false;
    std::string pending;             // after the last '\n' (only when neither stop nor overflow)
};

Expected Model(std::string_view stream, size_t max_line, size_t stop_after) {
    Expected out;
    size_t start = 0;
    while (true) {
        const size_t nl = stream.find('\n', start);
        if (nl == std::string_view::npos) break;
        std::string_view line = stream.substr(start, nl - start);
        start = nl + 1;
        if (line.size() > max_line) {
            out.overflow = true;
            return out;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        out.lines.emplace_back(line);
        if (out.lines.size() == stop_after) return out;
    }
    out.pending = std::string(stream.substr(start));
    out.overflow = out.pending.size() > max_line;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 4) return 0;
    const size_t max_line = data[0] >= 0x80 ? (data[0] & 0x7F) + 1 : 16 * 1024 * 1024;
    const size_t stop_after = data[1] >= 0xF0 ? data[1] - 0xF0 + 1 : SIZE_MAX;
    std::minstd_rand cuts(static_cast<uint32_t>(data[2]) << 8 | data[3]);
    const std::string_view stream(reinterpret_cast<const char*>(data) + 4, size - 4);

    const Expected expected = Model(stream, max_line, stop_after);

    summarizer::NdjsonReader reader(max_line);
    std::vector<std::string> lines;
    bool stopped = false;
    bool returned_false = false;
    const auto on_line = [&](std::string_view line) {
        FUZZ_CHECK(!stopped, "no line after the callback said stop");
        FUZZ_CHECK(!line.empty(), "blank lines are skipped");
        FUZZ_CHECK(line.find('\n') == std::string_view::npos, "a line has no '\\n'");
        lines.emplace_back(line);
        stopped = lines.size() == stop_after;
        return !stopped;
    };
    size_t pos = 0;
    while (pos <= stream.size()) {
        const size_t piece = std::min<size_t>(cuts() % 24, stream.size() - pos);  // 0: an empty Feed
        const bool ok = reader.Feed(stream.substr(pos, piece), on_line);
        pos += piece;
        if (!ok) {
            returned_false = true;
            break;
        }
        if (pos == stream.size()) break;
    }

    FUZZ_CHECK(lines == expected.lines, "the lines delivered do not depend on where the stream was cut");
    FUZZ_CHECK(reader.overflowed() == expected.overflow, "overflow exactly when a line is over the limit");
    FUZZ_CHECK(returned_false == (expected.overflow || stopped), "Feed returns false on overflow or stop only");
    if (!returned_false) {
        FUZZ_CHECK(reader.pending() == expected.pending, "pending() is what follows the last newline");
    }
    if (expected.overflow) {
        FUZZ_CHECK(!reader.Feed("x\n", on_line), "after an overflow Feed keeps failing");
        FUZZ_CHECK(lines == expected.lines, "after an overflow no line is delivered");
    }
    return 0;
}
