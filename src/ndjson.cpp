#include "summarizer/ndjson.hpp"

namespace summarizer {

bool NdjsonReader::Feed(std::string_view data, const std::function<bool(std::string_view line)>& on_line) {
    return lines_.Feed(data, [&on_line](std::string_view line) { return line.empty() || on_line(line); });
}

}  // namespace summarizer
