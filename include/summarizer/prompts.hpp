// The single, map and reduce prompts (pure). Gemma 3 has no system role: the `system` text is a
// prefix of the user turn, so the task is stated before the document and restated after it,
// the document is fenced as data, and the output language is named explicitly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace summarizer {

enum class SummaryStyle { kParagraph, kBullets };

struct PromptOptions {
    std::string language = "en";  // resolved code ("en", "ja", ...), never "auto"
    SummaryStyle style = SummaryStyle::kParagraph;
    int max_tokens = 1200;        // the generation cap; the prompt asks for well under it
};

struct Prompt {
    std::string system;
    std::string prompt;
};

// English name of a language code for instructions ("ja" -> "Japanese", "pt-br" -> "Portuguese");
// unknown codes as is.
std::string LanguageName(std::string_view code);

// A language a summary can be written in, as its lowercase code or tag: "ja", "Japanese" and "JA"
// give "ja", "pt_BR" gives "pt-br". nullopt for anything else ("klingon", "en; rm -rf").
std::optional<std::string> NormalizeLanguage(std::string_view value);

// One pass over the whole text.
Prompt BuildSinglePrompt(std::string_view text, const PromptOptions& options);

// Map step: part `index` (1-based) of `total`. Keeps facts, names, numbers, the part's place.
Prompt BuildMapPrompt(std::string_view chunk, int index, int total, const PromptOptions& options);

// Reduce step: partial summaries of consecutive parts, in order. `final_pass` asks for the
// requested style and length; otherwise a merged summary that keeps facts for the next level.
Prompt BuildReducePrompt(const std::vector<std::string>& partials, bool final_pass, const PromptOptions& options);
// About the tokens BuildReducePrompt adds around each partial ("[Part N]", the line breaks): what
// sizing a partial (or a merge's output) by its token cap adds for it.
inline constexpr int64_t kReducePartHeadingTokens = 8;

}  // namespace summarizer
