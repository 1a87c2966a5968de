#include "summarizer/extractive.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

#include "summarizer/text.hpp"

namespace summarizer {
namespace {

// Term ids and weights of one sentence, sorted by id, L2-normalized.
using SparseVector = std::vector<std::pair<uint32_t, double>>;

bool IsSpace(char32_t cp) {
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

// Han, kana (incl. the prolonged sound mark), Hangul: written without spaces between words.
bool IsCjkLetter(char32_t cp) {
    return (cp >= 0x3041 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0xFF66 && cp <= 0xFF9F) ||
           (cp >= 0x20000 && cp <= 0x3FFFF);
}

// Letters and digits of alphabetic scripts (ASCII, Latin-1/Extended, Greek, Cyrillic) and full-width ASCII.
bool IsWordChar(char32_t cp) {
    if (cp < 0x80) return std::isalnum(static_cast<int>(cp)) != 0;
    if (cp >= 0xFF10 && cp <= 0xFF5A) return true;  // full-width digits and letters
    return (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) || (cp >= 0x370 && cp <= 0x52F);
}

char32_t FoldCase(char32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp >= 0xFF21 && cp <= 0xFF3A) return cp - 0xFF21 + 'a';  // full-width A-Z
    if (cp >= 0xFF41 && cp <= 0xFF5A) return cp - 0xFF41 + 'a';
    if (cp >= 0xFF10 && cp <= 0xFF19) return cp - 0xFF10 + '0';
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x410 && cp <= 0x42F)) return cp + 32;
    return cp;
}

// Words that say nothing about what a sentence is about; without them every English sentence
// looks alike through "the" and "of".
const std::unordered_set<std::string>& StopWords() {
    static const std::unordered_set<std::string> words = {
        "a",     "an",    "and",   "are",   "as",    "at",    "be",    "been",  "but",   "by",    "can",
        "could", "did",   "do",    "does",  "for",   "from",  "had",   "has",   "have",  "he",    "her",
        "his",   "i",     "if",    "in",    "into",  "is",    "it",    "its",   "may",   "more",  "most",
        "no",    "not",   "of",    "on",    "or",    "our",   "she",   "so",    "such",  "than",  "that",
        "the",   "their", "them",  "then",  "there", "these", "they",  "this",  "those", "to",    "was",
        "we",    "were",  "what",  "when",  "which", "while", "who",   "will",  "with",  "would", "you",
        "your",  "also",  "all",   "any",   "about", "after", "before", "over", "under", "other", "some",
        "only",  "very",  "just",  "s",     "t",     "one",   "new"};
    return words;
}

// Terms of a sentence: folded words (stop words and 1-letter words dropped) and CJK bigrams
// (a lone CJK letter between non-CJK text counts as a unigram).
std::vector<std::string> Terms(std::string_view sentence) {
    std::vector<std::string> terms;
    std::string word;
    std::vector<char32_t> run;  // current run of CJK letters
    auto flush_word = [&] {
        if (word.size() > 1 && !StopWords().count(word)) terms.push_back(word);
        word.clear();
    };
    auto flush_run = [&] {
        if (run.size() == 1) {
            std::string t;
            AppendUtf8(t, run[0]);
            terms.push_back(std::move(t));
        }
        for (size_t i = 0; i + 1 < run.size(); ++i) {
            std::string t;
            AppendUtf8(t, run[i]);
            AppendUtf8(t, run[i + 1]);
            terms.push_back(std::move(t));
        }
        run.clear();
    };
    size_t pos = 0;
    while (pos < sentence.size()) {
        const char32_t cp = DecodeCodePoint(sentence, pos);
        if (IsCjkLetter(cp)) {
            flush_word();
            run.push_back(cp);
        } else if (IsWordChar(cp)) {
            flush_run();
            AppendUtf8(word, FoldCase(cp));
        } else {
            flush_word();
            flush_run();
        }
    }
    flush_word();
    flush_run();
    return terms;
}

// TF-IDF vectors (log-scaled tf, smoothed idf), normalized so a dot product is a cosine.
std::vector<SparseVector> Vectorize(const std::vector<std::string_view>& sentences) {
    std::unordered_map<std::string, uint32_t> ids;
    std::vector<std::vector<uint32_t>> terms(sentences.size());  // sorted term ids, repeats kept
    std::vector<int> document_frequency;
    for (size_t i = 0; i < sentences.size(); ++i) {
        for (auto& term : Terms(sentences[i])) {
            auto [it, inserted] = ids.emplace(std::move(term), static_cast<uint32_t>(ids.size()));
            if (inserted) document_frequency.push_back(0);
            terms[i].push_back(it->second);
        }
        std::sort(terms[i].begin(), terms[i].end());
        for (size_t k = 0; k < terms[i].size(); ++k) {
            if (k == 0 || terms[i][k] != terms[i][k - 1]) ++document_frequency[terms[i][k]];
        }
    }
    const double n = static_cast<double>(sentences.size());
    std::vector<SparseVector> vectors(sentences.size());
    for (size_t i = 0; i < sentences.size(); ++i) {
        SparseVector& v = vectors[i];
        const auto& t = terms[i];
        for (size_t k = 0; k < t.size();) {
            size_t end = k;
            while (end < t.size() && t[end] == t[k]) ++end;
            const double idf = std::log((1.0 + n) / (1.0 + document_frequency[t[k]])) + 1.0;
            v.emplace_back(t[k], (1.0 + std::log(static_cast<double>(end - k))) * idf);
            k = end;
        }
        std::vector<uint32_t>().swap(terms[i]);
        double norm = 0;
        for (const auto& [id, w] : v) norm += w * w;
        norm = std::sqrt(norm);
        if (norm > 0) {
            for (auto& [id, w] : v) w /= norm;
        }
    }
    return vectors;
}

double Dot(const SparseVector& a, const SparseVector& b) {
    double sum = 0;
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i].first < b[j].first) {
            ++i;
        } else if (b[j].first < a[i].first) {
            ++j;
        } else {
            sum += a[i++].second * b[j++].second;
        }
    }
    return sum;
}

// Weighted PageRank over the similarity graph (damping 0.85), to convergence or 100 rounds.
std::vector<double> PageRank(const std::vector<SparseVector>& vectors) {
    const size_t n = vectors.size();
    if (n == 0) return {};
    std::vector<std::vector<double>> weight(n, std::vector<double>(n, 0.0));
    std::vector<double> out_sum(n, 0.0);
    for (size_t i = 0; i < n; ++i) {
        for (size_t j = i + 1; j < n; ++j) {
            const double w = Dot(vectors[i], vectors[j]);
            weight[i][j] = weight[j][i] = w;
            out_sum[i] += w;
            out_sum[j] += w;
        }
    }
    constexpr double kDamping = 0.85;
    std::vector<double> score(n, 1.0 / static_cast<double>(n)), next(n);
    for (int round = 0; round < 100; ++round) {
        // A sentence sharing nothing with the others spreads its score evenly (a dangling node).
        double dangling = 0;
        for (size_t i = 0; i < n; ++i) {
            if (out_sum[i] <= 0) dangling += score[i];
        }
        double change = 0;
        for (size_t j = 0; j < n; ++j) {
            double incoming = dangling / static_cast<double>(n);
            for (size_t i = 0; i < n; ++i) {
                if (out_sum[i] > 0 && weight[i][j] > 0) incoming += score[i] * weight[i][j] / out_sum[i];
            }
            next[j] = (1.0 - kDamping) / static_cast<double>(n) + kDamping * incoming;
            change += std::abs(next[j] - score[j]);
        }
        score.swap(next);
        if (change < 1e-9) break;
    }
    return score;
}

size_t CodePoints(std::string_view s) { return CountCodePoints(s); }

// The first `max_chars` code points of `s`, cut back to the last space when there is one in its
// second half (CJK text has none and is cut anywhere).
std::string_view CutAt(std::string_view s, size_t max_chars, bool at_word) {
    size_t pos = 0, chars = 0, last_space = std::string_view::npos;
    while (pos < s.size() && chars < max_chars) {
        size_t next = pos;
        if (IsSpace(DecodeCodePoint(s, next)) && chars >= max_chars / 2) last_space = pos;
        pos = next;
        ++chars;
    }
    if (pos < s.size() && at_word && last_space != std::string_view::npos) pos = last_space;
    return s.substr(0, pos);
}

bool EndsWithCjk(std::string_view s) {
    size_t pos = 0;
    char32_t last = 0;
    while (pos < s.size()) last = DecodeCodePoint(s, pos);
    return IsCjkLetter(last) || (last >= 0x3000 && last <= 0x303F) || (last >= 0xFF01 && last <= 0xFF0F);
}

}  // namespace

std::vector<std::string_view> ExtractSentences(std::string_view text, size_t max_sentence_chars) {
    std::vector<std::string_view> sentences;
    const std::vector<size_t> starts = SentenceStarts(text);
    for (size_t i = 0; i < starts.size(); ++i) {
        const size_t end = i + 1 < starts.size() ? starts[i + 1] : text.size();
        std::string_view s = text.substr(starts[i], end - starts[i]);
        // Trim Unicode whitespace at both ends.
        size_t begin = 0;
        while (begin < s.size()) {
            size_t next = begin;
            if (!IsSpace(DecodeCodePoint(s, next))) break;
            begin = next;
        }
        s.remove_prefix(begin);
        while (!s.empty()) {
            const size_t back = CodePointStartAtOrBefore(s, s.size() - 1);
            size_t probe = back;
            if (!IsSpace(DecodeCodePoint(s, probe))) break;
            s = s.substr(0, back);
        }
        if (s.empty()) continue;
        if (max_sentence_chars > 0) s = CutAt(s, max_sentence_chars, true);
        sentences.push_back(s);
    }
    return sentences;
}

std::vector<double> RankSentences(const std::vector<std::string_view>& sentences) {
    return PageRank(Vectorize(sentences));
}

ExtractiveSummary SummarizeExtractive(std::string_view text, const ExtractiveOptions& options) {
    ExtractiveSummary out;
    const std::vector<std::string_view> all = ExtractSentences(text, options.max_sentence_chars);
    out.sentences = all.size();
    if (all.empty() || options.max_chars == 0) return out;

    // Bound the graph: keep the sentences closest to the document's centroid (document order kept).
    std::vector<size_t> candidates(all.size());
    std::iota(candidates.begin(), candidates.end(), size_t{0});
    std::vector<SparseVector> vectors = Vectorize(all);
    if (all.size() > kMaxGraphSentences) {
        std::unordered_map<uint32_t, double> centroid;
        for (const auto& v : vectors) {
            for (const auto& [id, w] : v) centroid[id] += w;
        }
        std::vector<double> closeness(all.size(), 0.0);
        for (size_t i = 0; i < all.size(); ++i) {
            for (const auto& [id, w] : vectors[i]) closeness[i] += w * centroid[id];
        }
        std::stable_sort(candidates.begin(), candidates.end(),
                         [&](size_t a, size_t b) { return closeness[a] > closeness[b]; });
        candidates.resize(kMaxGraphSentences);
        std::sort(candidates.begin(), candidates.end());
    }
    std::vector<SparseVector> graph;
    graph.reserve(candidates.size());
    for (size_t i : candidates) graph.push_back(vectors[i]);
    const std::vector<double> score = PageRank(graph);

    std::vector<size_t> order(candidates.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });

    const bool bullets = options.style == SummaryStyle::kBullets;
    const size_t separator = bullets ? 3 : 1;  // "- " and a newline, or a space
    size_t used = 0;
    std::vector<size_t> picked;  // positions in `candidates`
    for (size_t k : order) {
        const size_t cost = CodePoints(all[candidates[k]]) + (picked.empty() ? (bullets ? 2 : 0) : separator);
        if (used + cost > options.max_chars) continue;
        // A near-copy of a sentence already taken adds length, not content.
        bool redundant = std::any_of(picked.begin(), picked.end(),
                                     [&](size_t p) { return Dot(graph[k], graph[p]) > 0.8; });
        if (redundant) continue;
        picked.push_back(k);
        used += cost;
    }
    std::vector<std::string> parts;
    if (picked.empty()) {
        // Even the best sentence is over the budget: its head, marked as cut.
        const size_t best = candidates[order.front()];
        const size_t room = options.max_chars > (bullets ? 3 : 1) ? options.max_chars - (bullets ? 3 : 1) : 1;
        parts.push_back(std::string(CutAt(all[best], room, true)) + "\u2026");
        out.picked = {best};
    } else {
        std::sort(picked.begin(), picked.end());
        for (size_t k : picked) {
            out.picked.push_back(candidates[k]);
            parts.emplace_back(all[candidates[k]]);
        }
    }
    for (size_t i = 0; i < parts.size(); ++i) {
        if (bullets) {
            out.text += (i ? "\n- " : "- ") + parts[i];
        } else {
            // Japanese sentences follow each other without a space.
            if (i > 0 && !EndsWithCjk(parts[i - 1])) out.text += ' ';
            out.text += parts[i];
        }
    }
    return out;
}

}  // namespace summarizer
