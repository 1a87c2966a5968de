// Decoding an HTTP request target (RFC 9112 section 3.2) into the path and query parameters of
// an HttpRequest. Pure: no sockets, no allocation beyond the result. The event server
// (src/event_server.cpp) calls it on every request; tests/fuzz/fuzz_http_target.cpp fuzzes it.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "summarizer/error.hpp"

namespace summarizer {

struct RequestTarget {
    std::string path;                          // percent-decoded, starts with '/' (or is "*")
    std::map<std::string, std::string> query;  // decoded names and values; a repeated name: the last wins
};

// Accepts origin-form ("/summarize?language=ja"), absolute-form ("http://host/summarize"; the
// scheme and authority are dropped) and asterisk-form ("*", for OPTIONS). A fragment ("#...")
// is dropped.
// - The path is percent-decoded ("/a%20b" -> "/a b"); '+' stays '+'. What does not decode to
//   valid UTF-8 is taken with U+FFFD for each ill-formed sequence ("/%FF" -> "/\uFFFD": no
//   endpoint has such a path, so it is a 404, as it always was); a control character is refused
//   (so "/%00" never reaches a log line).
// - The query is split at '&', each part at its first '='; names and values are
//   percent-decoded and '+' means a space (HTML form encoding). A part without '=' is a name
//   with an empty value; empty parts ("a=1&&b=2") are skipped. Values may be any bytes: the
//   API layer validates them.
// Errors (kInvalidRequest, the message says what is wrong): an empty target, a target that is
// none of the three forms, an escape that is not '%' and two hex digits, a path that decodes to
// a control character.
Result<RequestTarget> ParseRequestTarget(std::string_view target);

// Decodes %XX escapes into `out` (and '+' as a space when `plus_is_space`). Returns false, with
// `out` unspecified, when an escape is malformed ('%' not followed by two hex digits).
bool PercentDecode(std::string_view in, bool plus_is_space, std::string& out);

// The inverse, for tests and fuzzing: escapes every byte but RFC 3986 unreserved characters
// and '/' (when `keep_slash`).
std::string PercentEncode(std::string_view in, bool keep_slash);

}  // namespace summarizer
