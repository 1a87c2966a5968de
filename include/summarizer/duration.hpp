// Durations as Ollama's keep_alive and the service's settings write them: Go duration strings
// ("24h", "1h30m", "300ms", "-1m") and bare numbers of seconds ("90", "-1"). A negative duration
// means "forever" to Ollama; these functions return it as it is. Pure.
#pragma once

#include <optional>
#include <string_view>

namespace summarizer {

// Go's time.ParseDuration, in seconds: an optional sign, then one or more decimal numbers each with
// a unit (ns, us, µs, μs, ms, s, m, h), or "0" alone. nullopt when malformed: empty, a number
// without a unit ("90"), an unknown unit, spaces anywhere. (Unlike Go there is no overflow at
// ~292 years.) What Ollama accepts as a keep_alive string.
std::optional<double> ParseGoDuration(std::string_view text);

// A bare number of seconds, the whole of `text` as std::from_chars reads it ("90", "-1", "0.5", "1e3";
// also "inf" and "nan", which the keep_alive settings have always let through); nullopt otherwise.
// What Ollama accepts as a keep_alive number (sent as a JSON number, not a string).
std::optional<double> ParseBareSeconds(std::string_view text);

// A duration setting: surrounding whitespace ignored, then bare seconds or a Go duration.
std::optional<double> ParseDurationSeconds(std::string_view text);

}  // namespace summarizer
