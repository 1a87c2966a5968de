// The small page served at GET /: paste or drop a text, watch the summary stream in.
#pragma once

#include <string_view>

namespace summarizer {
std::string_view WebPageHtml();
}  // namespace summarizer
