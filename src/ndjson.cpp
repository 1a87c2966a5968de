#include "summarizer/ndjson.hpp"

namespace summarizer {

bool NdjsonReader::Feed(std::string_view data, const std::function<bool(std::string_view line)>& on_line) {
    if (overflowed_) return false;
    size_t start = 0;
    while (start < data.size()) {
        size_t newline = data.find('\n', start);
        if (newline == std::string_view::npos) {
            buffer_.append(data.substr(start));
            break;
        }
        std::string_view piece = data.substr(start, newline - start);
        start = newline + 1;
        std::string_view line = piece;
        if (!buffer_.empty()) {
            buffer_.append(piece);
            line = buffer_;
        }
        // Judged on the whole line, so that the verdict does not depend on where it was cut.
        if (line.size() > max_line_bytes_) {
            overflowed_ = true;
            return false;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool keep_going = line.empty() || on_line(line);
        buffer_.clear();
        if (!keep_going) return false;
    }
    if (buffer_.size() > max_line_bytes_) {
        overflowed_ = true;
        return false;
    }
    return true;
}

}  // namespace summarizer
