#include "summarizer/sse.hpp"

namespace summarizer {

std::vector<SseEvent> SseReader::Feed(std::string_view bytes) {
    std::vector<SseEvent> events;
    lines_.Feed(bytes, [&](std::string_view line) {
        TakeLine(line, events);
        return true;
    });
    return events;
}

std::vector<SseEvent> SseReader::Finish() {
    std::vector<SseEvent> events;
    if (!lines_.pending().empty()) TakeLine(lines_.TakePending(), events);
    TakeLine("", events);
    return events;
}

void SseReader::TakeLine(std::string_view line, std::vector<SseEvent>& events) {
    if (first_line_) {
        first_line_ = false;
        if (line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    }
    if (line.empty()) {
        if (has_data_) events.push_back(std::move(current_));
        current_ = SseEvent{};
        has_data_ = false;
        return;
    }
    if (line.front() == ':') return;  // a comment (a keep-alive ping)
    const size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
    if (field == "event") {
        current_.event = value.empty() ? "message" : std::string(value);
    } else if (field == "data") {
        if (has_data_) current_.data += '\n';
        current_.data += value;
        has_data_ = true;
    } else if (field == "id" && value.find('\0') == std::string_view::npos) {
        current_.id = std::string(value);
    }
}

}  // namespace summarizer
