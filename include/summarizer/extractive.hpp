// Extractive summaries computed in-process (pure: no I/O, no clocks, no randomness), for the
// degraded mode when Ollama cannot be reached. Sentences come from SentenceStarts() (English and
// Japanese); each sentence is a bag of terms (lower-cased Latin words minus a few English stop
// words, and character bigrams of CJK runs, so Japanese needs no word segmenter) weighted by
// TF-IDF. Sentences are ranked by TextRank (PageRank over the cosine-similarity graph), the best
// are taken greedily within a length budget, near-duplicates skipped, and returned in document
// order. Deterministic: the same input gives the same output, ties go to the earlier sentence.
// Cost is bounded on any input: at most kMaxGraphSentences sentences enter the graph (chosen by
// similarity to the document centroid), and a sentence is cut to max_sentence_chars.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "summarizer/prompts.hpp"

namespace summarizer {

struct ExtractiveOptions {
    size_t max_chars = 1200;          // budget of the summary in code points (separators included)
    size_t max_sentence_chars = 600;  // longer "sentences" (a line without punctuation) are cut here
    SummaryStyle style = SummaryStyle::kParagraph;  // bullets: one "- sentence" per line
};

struct ExtractiveSummary {
    std::string text;                  // the summary; empty only if the input has no sentence
    std::vector<size_t> picked;        // indices into the input's sentences, in document order
    size_t sentences = 0;              // sentences found in the input
};

// The graph is built on at most this many sentences.
inline constexpr size_t kMaxGraphSentences = 300;

// The input's sentences, trimmed, empty ones dropped, each cut to `max_sentence_chars` code
// points (on a code point boundary). Precondition: valid UTF-8.
std::vector<std::string_view> ExtractSentences(std::string_view text, size_t max_sentence_chars);

// TextRank scores of `sentences` (one per sentence, summing to ~1; all equal when no two
// sentences share a term).
std::vector<double> RankSentences(const std::vector<std::string_view>& sentences);

// The extractive summary of `text` within options.max_chars. When even the best sentence is
// over the budget it is cut at a word boundary and ends with "…". Precondition: valid UTF-8.
ExtractiveSummary SummarizeExtractive(std::string_view text, const ExtractiveOptions& options = {});

}  // namespace summarizer
