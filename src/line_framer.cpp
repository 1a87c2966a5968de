#include "summarizer/line_framer.hpp"

namespace summarizer {

bool LineFramer::Feed(std::string_view data, const std::function<bool(std::string_view line)>& on_line) {
    if (overflowed_) return false;
    const bool any_of_crlf = breaks_ == Breaks::kAnyOfCrLf;
    size_t start = 0;
    if (skip_lf_ && !data.empty()) {
        skip_lf_ = false;
        if (data.front() == '\n') start = 1;
    }
    while (start < data.size()) {
        const size_t end = any_of_crlf ? data.find_first_of("\r\n", start) : data.find('\n', start);
        if (end == std::string_view::npos) {
            buffer_.append(data.substr(start));
            break;
        }
        const std::string_view piece = data.substr(start, end - start);
        start = end + 1;
        if (any_of_crlf && data[end] == '\r') {
            // The '\n' of a "\r\n" may come in the next piece: remember to skip it there.
            if (start == data.size()) {
                skip_lf_ = true;
            } else if (data[start] == '\n') {
                ++start;
            }
        }
        // Zero-copy unless the line began in an earlier piece.
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
        if (!any_of_crlf && !line.empty() && line.back() == '\r') line.remove_suffix(1);
        const bool keep_going = on_line(line);
        buffer_.clear();
        if (!keep_going) return false;
    }
    if (buffer_.size() > max_line_bytes_) {
        overflowed_ = true;
        return false;
    }
    return true;
}

std::string LineFramer::TakePending() {
    std::string rest = std::move(buffer_);
    buffer_.clear();
    if (breaks_ == Breaks::kLf && !rest.empty() && rest.back() == '\r') rest.pop_back();
    return rest;
}

}  // namespace summarizer
