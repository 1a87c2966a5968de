// simdjson's parse of a short text, shared by the two readers that use it (json_text.cpp's
// ParseJsonFast, ollama_line.cpp's line reader). Private to src/.
#pragma once

#include <cstddef>
#include <string_view>

#include <simdjson.h>

namespace summarizer {

// Texts longer than this are left to nlohmann: a simdjson parser keeps ~13 bytes per byte of the
// largest document it read, and each thread keeps one.
constexpr size_t kSimdjsonMaxBytes = 16 * 1024;

// Parses `text` with this thread's parser into `root`, valid until this thread's next call. False
// when the text is longer than kSimdjsonMaxBytes or simdjson refuses it.
bool ParseWithSimdjson(std::string_view text, simdjson::dom::element& root);

}  // namespace summarizer
