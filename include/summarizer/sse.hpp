// Reading Server-Sent Events as they arrive (the WHATWG "event stream" format): bytes cut anywhere,
// inside a field name, a line break or a multi-byte character. Lines end at "\r\n", '\n' or '\r';
// a blank line dispatches the event; "data:" lines join with '\n'; ':' lines are comments; a
// leading byte order mark is dropped; "id" is kept with its event (a client resumes with it as
// Last-Event-ID); other fields ("retry", unknown ones) are ignored. The one SSE reader of the tests, the benches and
// the fuzz targets (the service writes events with FormatSseEvent, api.hpp). Pure; not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "summarizer/line_framer.hpp"

namespace summarizer {

struct SseEvent {
    std::string event = "message";  // the "event:" field; "message" when it had none or an empty one
    std::string data;               // its "data:" lines joined with '\n'
    std::string id;                 // its "id:" field; empty when it had none
};

class SseReader {
public:
    // Appends `bytes` and returns the events they complete, in order. An event without any "data:"
    // line is not dispatched (as the spec says).
    std::vector<SseEvent> Feed(std::string_view bytes);

    // Ends the stream: an unterminated last line is read, and an event still waiting for its blank
    // line is dispatched. (The spec drops that event; a client measuring a stream wants to see it.)
    std::vector<SseEvent> Finish();

private:
    void TakeLine(std::string_view line, std::vector<SseEvent>& events);

    LineFramer lines_{LineFramer::Breaks::kAnyOfCrLf};
    SseEvent current_;
    bool has_data_ = false;
    bool first_line_ = true;
};

}  // namespace summarizer
