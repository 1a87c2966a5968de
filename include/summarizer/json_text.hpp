// JSON text on the hot paths, where nlohmann's lexer and serializer walk a string one byte at a
// time (docs/PERFORMANCE.md, "Instructions per request"): a string member's literal written
// without a document, and a request body read by simdjson into the document nlohmann would build.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace summarizer {

// Appends `text` as a JSON string literal, quotes included: byte for byte what
// `nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)` writes
// ("\"", "\\", the short escapes \b \t \n \f \r, \u00xx for the other control characters, every
// other byte as is; ill-formed UTF-8 replaced by U+FFFD as nlohmann replaces it).
void AppendJsonString(std::string& out, std::string_view text);

// The document `nlohmann::json::parse(text)` returns, read by simdjson (Debian's libsimdjson-dev)
// when it can: the same values and types (a non-negative integer unsigned, a negative one signed, a
// repeated member's last value, members sorted as nlohmann keeps them). nullopt for a text over
// 16 KiB (each thread's parser keeps the capacity it needed), when simdjson refuses the text, or
// where it reads a value this does not mirror (a fraction or exponent: nlohmann's float parsing
// is its own); the caller parses with nlohmann then, which also words the error.
std::optional<nlohmann::json> ParseJsonFast(std::string_view text);

}  // namespace summarizer
