// The API contract (../shared/design/API.md) as an OpenAPI 3.0 document, served at
// GET /openapi.json and linted in CI.
#pragma once

#include <string_view>

namespace summarizer {
std::string_view OpenApiDocument();
}  // namespace summarizer
