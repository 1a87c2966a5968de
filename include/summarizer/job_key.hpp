// What identifies a job's work, and a job's request as stored (pure).
// - The content hash: SHA-256 over the text, the request's options (language, style, max_tokens,
//   strategy) and the model configuration that decides what a summary of it says (each bucket's
//   name, model and num_ctx; sampling; the map-reduce caps; the routing thresholds; this build's
//   version, which fixes the prompts). Two requests with the same hash get the same summary from
//   the same upstream, so the job store returns the earlier job instead of doing the work again.
//   The request id, `stream` and the routing policy are not part of it.
// - A job's options as JSON text, and the SummarizeRequest they make again with its text.
#pragma once

#include <string>
#include <string_view>

#include "summarizer/config.hpp"
#include "summarizer/error.hpp"
#include "summarizer/summarizer.hpp"

namespace summarizer {

// 64 lowercase hex digits.
std::string Sha256Hex(std::string_view data);

// The result cache's key for `request` under `config` (64 hex digits).
std::string ContentHash(const SummarizeRequest& request, const Config& config);

// {"language", "style", "max_tokens", "strategy"}: max_tokens 0 means the config's default.
std::string RequestOptionsJson(const SummarizeRequest& request);

// A stored job's request again. Errors: kInvalidRequest naming the option that is wrong.
Result<SummarizeRequest> RequestFromStored(std::string text, const std::string& options_json, std::string request_id);

std::string_view StrategyName(Strategy strategy);
std::string_view StyleName(SummaryStyle style);

}  // namespace summarizer
