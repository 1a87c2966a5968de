// The API contract (docs/API.md) as an OpenAPI 3.0 document, served at GET /openapi.json.
// CI lints it (Redocly, strict) and checks it against docs/API.md and real answers
// (scripts/check-openapi.sh); tests/unit/openapi_test.cpp checks it against the code.
#pragma once

#include <string_view>

namespace summarizer {
std::string_view OpenApiDocument();
}  // namespace summarizer
