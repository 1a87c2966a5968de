// JSON text the hot paths write without building a document: a string member's literal, the bytes
// nlohmann::json would write for it. The prompt sent upstream is most of a short request's bytes,
// and nlohmann's serializer walks a string through its UTF-8 automaton one byte at a time (a sixth
// of a short request's instructions, measured with callgrind: docs/PERFORMANCE.md).
#pragma once

#include <string>
#include <string_view>

namespace summarizer {

// Appends `text` as a JSON string literal, quotes included: byte for byte what
// `nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)` writes
// ("\"", "\\", the short escapes \b \t \n \f \r, \u00xx for the other control characters, every
// other byte as is; ill-formed UTF-8 replaced by U+FFFD as nlohmann replaces it).
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace summarizer
