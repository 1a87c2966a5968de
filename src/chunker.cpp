#include "summarizer/chunker.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include "summarizer/text.hpp"
#include "summarizer/tokens.hpp"

// Plan: cut the text into small units (sentences; pieces of a few hundred code points where one
// sentence alone is over budget), keep prefix sums of their token costs and code points, find the
// least number of chunks n (greedy is optimal for a linear partition), then place each cut near
// an even share of what is left, preferring paragraph over sentence over code point cuts. Every
// chunk is then checked with EstimateTokens itself, since unit costs only add up approximately.

namespace summarizer {
namespace {

// How good a cut is at a unit's start: better levels are preferred when balancing.
enum class CutLevel : uint8_t { kCodePoint, kSentence, kParagraph };

// Cost added to a cut's distance from its ideal position (relative to the chunk's share):
// a paragraph cut 20% off the ideal beats a sentence cut right on it.
double CutPenalty(CutLevel level) {
    switch (level) {
        case CutLevel::kParagraph:
            return 0.0;
        case CutLevel::kSentence:
            return 0.2;
        case CutLevel::kCodePoint:
            return 0.6;
    }
    return 0.6;
}

// The most a single code point can cost (4 byte-fallback tokens, with the estimate's bias):
// sizes the pieces of an over-long sentence so that each fits a budget.
constexpr double kMaxTokensPerCodePoint = 4.5;
// Pieces of an over-long sentence are at most this share of a chunk, so balancing has room.
constexpr double kPiecesPerChunk = 8.0;
constexpr size_t kMaxPieceCodePoints = 256;
// Cuts at code points snap back to a whitespace this far into the piece, to keep words whole.
constexpr double kWhitespaceSnapShare = 0.5;
// Re-planning rounds when a chunk's real estimate exceeds the sum of its units' costs.
constexpr int kMaxPlanRounds = 8;
// Passes that move each cut to balance its two neighbouring chunks.
constexpr int kMaxRelaxSweeps = 16;

struct Unit {
    size_t begin = 0;  // byte offset
    CutLevel level = CutLevel::kCodePoint;
    double tokens = 0.0;  // EstimateTokenCost
    int64_t chars = 0;
};

struct Budget {
    double tokens = 0.0;  // unrounded estimate, before the safety factor
    double chars = 0.0;
};

// Byte offset `count` code points before `pos`, but not before `floor`.
size_t StepBackCodePoints(std::string_view text, size_t pos, int64_t count, size_t floor) {
    while (count > 0 && pos > floor) {
        --pos;
        while (pos > floor && IsUtf8Continuation(text[pos])) --pos;
        --count;
    }
    return pos;
}

bool IsSpaceOrNewline(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Sorted union of paragraph and sentence starts, each with the level of a cut there.
std::vector<std::pair<size_t, CutLevel>> Boundaries(std::string_view text) {
    const std::vector<size_t> paragraphs = ParagraphStarts(text);
    const std::vector<size_t> sentences = SentenceStarts(text);
    std::vector<std::pair<size_t, CutLevel>> merged;
    merged.reserve(paragraphs.size() + sentences.size());
    size_t p = 0;
    size_t s = 0;
    while (p < paragraphs.size() || s < sentences.size()) {
        if (s == sentences.size() || (p < paragraphs.size() && paragraphs[p] <= sentences[s])) {
            if (s < sentences.size() && sentences[s] == paragraphs[p]) ++s;
            merged.emplace_back(paragraphs[p++], CutLevel::kParagraph);
        } else {
            merged.emplace_back(sentences[s++], CutLevel::kSentence);
        }
    }
    return merged;
}

// Appends the pieces of [begin, end), a sentence over budget, cut at code points (preferably
// right after a whitespace) into pieces of at most `piece_chars` code points.
void AppendPieces(std::string_view text, size_t begin, size_t end, CutLevel first_level, size_t piece_chars,
                  std::vector<Unit>& units) {
    size_t piece_begin = begin;
    CutLevel level = first_level;
    while (piece_begin < end) {
        size_t pos = piece_begin;
        size_t count = 0;
        size_t after_whitespace = 0;  // last offset right after a whitespace byte, 0 if none
        while (pos < end && count < piece_chars) {
            const bool whitespace = IsSpaceOrNewline(text[pos]);
            ++pos;
            while (pos < end && IsUtf8Continuation(text[pos])) ++pos;
            ++count;
            if (whitespace && count >= static_cast<size_t>(kWhitespaceSnapShare * static_cast<double>(piece_chars))) {
                after_whitespace = pos;
            }
        }
        if (pos < end && after_whitespace > piece_begin) {
            pos = after_whitespace;
        }
        const std::string_view piece = text.substr(piece_begin, pos - piece_begin);
        units.push_back({piece_begin, level, EstimateTokenCost(piece), static_cast<int64_t>(CountCodePoints(piece))});
        level = CutLevel::kCodePoint;
        piece_begin = pos;
    }
}

std::vector<Unit> BuildUnits(std::string_view text, const std::vector<std::pair<size_t, CutLevel>>& boundaries,
                             const Budget& budget) {
    const double by_tokens = budget.tokens / (kPiecesPerChunk * kMaxTokensPerCodePoint);
    const double by_chars = budget.chars / kPiecesPerChunk;
    const auto piece_chars = static_cast<size_t>(
        std::clamp(std::floor(std::min(by_tokens, by_chars)), 1.0, static_cast<double>(kMaxPieceCodePoints)));
    std::vector<Unit> units;
    units.reserve(boundaries.size());
    for (size_t i = 0; i < boundaries.size(); ++i) {
        const size_t begin = boundaries[i].first;
        const size_t end = i + 1 < boundaries.size() ? boundaries[i + 1].first : text.size();
        const std::string_view sentence = text.substr(begin, end - begin);
        const double tokens = EstimateTokenCost(sentence);
        const auto chars = static_cast<int64_t>(CountCodePoints(sentence));
        if (tokens <= budget.tokens && static_cast<double>(chars) <= budget.chars) {
            units.push_back({begin, boundaries[i].second, tokens, chars});
        } else {
            AppendPieces(text, begin, end, boundaries[i].second, piece_chars, units);
        }
    }
    return units;
}

// Unit indices where chunks start (the first is 0), for the least number of chunks within
// `budget`, each close to an even share of the text.
std::vector<size_t> PlanCuts(const std::vector<Unit>& units, const Budget& budget) {
    const size_t count = units.size();
    std::vector<double> prefix_tokens(count + 1, 0.0);
    std::vector<int64_t> prefix_chars(count + 1, 0);
    for (size_t i = 0; i < count; ++i) {
        prefix_tokens[i + 1] = prefix_tokens[i] + units[i].tokens;
        prefix_chars[i + 1] = prefix_chars[i] + units[i].chars;
    }
    const auto fits = [&](size_t a, size_t b) {
        return prefix_tokens[b] - prefix_tokens[a] <= budget.tokens &&
               static_cast<double>(prefix_chars[b] - prefix_chars[a]) <= budget.chars;
    };
    // Share of a budget that units [a, b) use: whichever of tokens and chars binds.
    const auto load = [&](size_t a, size_t b) {
        return std::max((prefix_tokens[b] - prefix_tokens[a]) / budget.tokens,
                        static_cast<double>(prefix_chars[b] - prefix_chars[a]) / budget.chars);
    };

    // furthest[i]: the end of the longest chunk starting at unit i (at least one unit, even one
    // over budget: a single code point cannot be cut further). needed[i]: least chunks for i..end.
    std::vector<size_t> furthest(count, 0);
    size_t end = 0;
    for (size_t i = 0; i < count; ++i) {
        end = std::max(end, i + 1);
        while (end < count && fits(i, end + 1)) ++end;
        furthest[i] = end;
    }
    std::vector<size_t> needed(count + 1, 0);
    for (size_t i = count; i-- > 0;) {
        needed[i] = 1 + needed[furthest[i]];
    }

    // A cut's score: its distance from an ideal share of a chunk, relative to that share, plus
    // the penalty of its level. Lower is better.
    const auto score = [&](size_t cut, size_t chunk_begin, double share) {
        const double deviation = share > 0.0 ? std::abs(load(chunk_begin, cut) - share) / share : 0.0;
        return deviation + CutPenalty(units[cut].level);
    };

    // First pass: each cut near an even share of what is left, keeping the rest feasible.
    const size_t chunk_count = needed[0];
    std::vector<size_t> cuts = {0};
    size_t previous = 0;
    for (size_t k = 1; k < chunk_count; ++k) {
        const size_t chunks_left = chunk_count - k;  // after this cut
        const double share = load(previous, count) / static_cast<double>(chunks_left + 1);
        size_t best = furthest[previous];
        double best_score = -1.0;
        for (size_t i = previous + 1; i <= furthest[previous]; ++i) {
            if (needed[i] > chunks_left) {
                continue;  // the rest would not fit in the chunks left
            }
            const double candidate = score(i, previous, share);
            if (best_score < 0.0 || candidate < best_score) {
                best_score = candidate;
                best = i;
            }
        }
        cuts.push_back(best);
        previous = best;
    }

    // Then relax: move each cut to balance the two chunks around it, sweeping until nothing
    // moves. The first pass cannot see that a big sentence ahead will leave a chunk short; this
    // spreads that shortfall over the neighbours.
    cuts.push_back(count);
    for (int sweep = 0; sweep < kMaxRelaxSweeps; ++sweep) {
        bool moved = false;
        for (size_t k = 1; k + 1 < cuts.size(); ++k) {
            const size_t before = cuts[k - 1];
            const size_t after = cuts[k + 1];
            const double share = (load(before, cuts[k]) + load(cuts[k], after)) / 2.0;
            const auto pair_score = [&](size_t cut) {
                return score(cut, before, share) + std::abs(load(cut, after) - share) / std::max(share, 1e-12);
            };
            size_t best = cuts[k];
            double best_score = pair_score(best);
            for (size_t i = before + 1; i < after; ++i) {
                if (!fits(before, i) || !fits(i, after)) {
                    continue;
                }
                const double candidate = pair_score(i);
                if (candidate < best_score - 1e-9) {
                    best_score = candidate;
                    best = i;
                }
            }
            moved = moved || best != cuts[k];
            cuts[k] = best;
        }
        if (!moved) {
            break;
        }
    }
    cuts.pop_back();
    return cuts;
}

// Where the overlap of a chunk starting at `begin` starts: up to `overlap_chars` code points
// back, not before the previous chunk's start, preferably at a sentence start, else at a word.
size_t OverlapStart(std::string_view text, size_t begin, size_t previous_begin, int64_t overlap_chars,
                    const std::vector<std::pair<size_t, CutLevel>>& boundaries) {
    const size_t window_begin = StepBackCodePoints(text, begin, overlap_chars, previous_begin);
    const auto first_boundary = std::lower_bound(boundaries.begin(), boundaries.end(),
                                                 std::make_pair(window_begin, CutLevel::kCodePoint));
    if (first_boundary != boundaries.end() && first_boundary->first < begin) {
        return first_boundary->first;
    }
    for (size_t pos = window_begin; pos < begin; ++pos) {
        if (pos > 0 && IsSpaceOrNewline(text[pos - 1]) && !IsSpaceOrNewline(text[pos]) &&
            !IsUtf8Continuation(text[pos])) {
            return pos;
        }
    }
    return window_begin;
}

// The next, shorter overlap start after `start` (towards `begin`): the next boundary inside,
// else halfway there.
size_t ShorterOverlapStart(std::string_view text, size_t start, size_t begin,
                           const std::vector<std::pair<size_t, CutLevel>>& boundaries) {
    const auto next_boundary =
        std::upper_bound(boundaries.begin(), boundaries.end(), std::make_pair(start, CutLevel::kParagraph));
    if (next_boundary != boundaries.end() && next_boundary->first < begin) {
        return next_boundary->first;
    }
    size_t middle = start + (begin - start + 1) / 2;
    while (middle < begin && IsUtf8Continuation(text[middle])) ++middle;
    return middle;
}

// The estimate times `factor` (the safety factor and the calibration), rounded up.
int64_t ScaledTokens(std::string_view piece, double factor) {
    // A hair below an integer is that integer: keeps ceil() stable against summation order.
    return static_cast<int64_t>(std::ceil(EstimateTokenCost(piece) * factor - 1e-9));
}

bool FitsLimits(std::string_view piece, const ChunkLimits& limits, double safety) {
    return static_cast<int64_t>(CountCodePoints(piece)) <= limits.max_chars &&
           ScaledTokens(piece, safety) <= limits.max_tokens;
}

}  // namespace

std::vector<Chunk> SplitIntoChunks(std::string_view text, const ChunkLimits& raw_limits) {
    if (text.empty()) {
        return {};
    }
    ChunkLimits limits = raw_limits;
    limits.max_tokens = std::max<int64_t>(1, limits.max_tokens);
    limits.max_chars = std::max<int64_t>(1, limits.max_chars);
    limits.overlap_chars = std::max<int64_t>(0, limits.overlap_chars);
    // Not "safety" alone: the calibration may bring it under 1 (never under half the estimate).
    const double safety = std::max(1.0, limits.token_safety) * std::clamp(limits.token_scale, 0.5, 8.0);

    const auto make_chunk = [&](size_t overlap_begin, size_t begin, size_t end) {
        const std::string_view covered = text.substr(overlap_begin, end - overlap_begin);
        return Chunk{begin, end, overlap_begin, static_cast<int64_t>(CountCodePoints(covered)),
                     ScaledTokens(covered, safety)};
    };
    if (FitsLimits(text, limits, safety)) {
        return {make_chunk(0, 0, text.size())};
    }

    const Budget full = {static_cast<double>(limits.max_tokens) / safety, static_cast<double>(limits.max_chars)};
    // Room kept free in each chunk for the overlap, at the text's average density (with margin);
    // the overlap is trimmed later if a chunk turns out denser.
    Budget own = full;
    if (limits.overlap_chars > 0) {
        const double text_chars = static_cast<double>(CountCodePoints(text));
        const double density = EstimateTokenCost(text) / std::max(1.0, text_chars);
        const double reserve_chars = std::min(static_cast<double>(limits.overlap_chars), full.chars / 2);
        own.chars = full.chars - reserve_chars;
        own.tokens = full.tokens - std::min(reserve_chars * density * 1.25, full.tokens / 2);
    }

    const std::vector<std::pair<size_t, CutLevel>> boundaries = Boundaries(text);
    std::vector<size_t> own_begins;
    for (int round = 0; round < kMaxPlanRounds; ++round) {
        const std::vector<Unit> units = BuildUnits(text, boundaries, own);
        const std::vector<size_t> cuts = PlanCuts(units, own);
        own_begins.clear();
        for (const size_t cut : cuts) own_begins.push_back(units[cut].begin);

        // Unit costs add up only approximately (a cut inside a long word or a whitespace run
        // shifts a token); re-plan with a smaller budget if a chunk's own estimate is over.
        double worst_excess = 1.0;
        for (size_t k = 0; k < own_begins.size(); ++k) {
            const size_t end = k + 1 < own_begins.size() ? own_begins[k + 1] : text.size();
            const std::string_view own_text = text.substr(own_begins[k], end - own_begins[k]);
            const bool single_code_point = own_text.size() <= 4 && CountCodePoints(own_text) == 1;
            const double cost = EstimateTokenCost(own_text);
            if (cost > own.tokens && !single_code_point) {
                worst_excess = std::max(worst_excess, cost / own.tokens);
            }
        }
        if (worst_excess <= 1.0) {
            break;
        }
        own.tokens /= worst_excess * 1.01;
    }

    std::vector<Chunk> chunks;
    chunks.reserve(own_begins.size());
    for (size_t k = 0; k < own_begins.size(); ++k) {
        const size_t begin = own_begins[k];
        const size_t end = k + 1 < own_begins.size() ? own_begins[k + 1] : text.size();
        size_t overlap_begin = begin;
        if (k > 0 && limits.overlap_chars > 0) {
            const std::string_view own_text = text.substr(begin, end - begin);
            const double own_tokens = EstimateTokenCost(own_text);
            const auto own_chars = static_cast<int64_t>(CountCodePoints(own_text));
            overlap_begin = OverlapStart(text, begin, own_begins[k - 1], limits.overlap_chars, boundaries);
            // Shorten the overlap until the chunk fits: judged on the sum of the two parts first
            // (cheap: only the overlap is estimated), then on the whole chunk.
            while (overlap_begin < begin) {
                const std::string_view overlap = text.substr(overlap_begin, begin - overlap_begin);
                const bool parts_fit =
                    own_chars + static_cast<int64_t>(CountCodePoints(overlap)) <= limits.max_chars &&
                    (own_tokens + EstimateTokenCost(overlap)) * safety <= static_cast<double>(limits.max_tokens);
                if (parts_fit && FitsLimits(text.substr(overlap_begin, end - overlap_begin), limits, safety)) {
                    break;
                }
                overlap_begin = ShorterOverlapStart(text, overlap_begin, begin, boundaries);
            }
        }
        chunks.push_back(make_chunk(overlap_begin, begin, end));
    }
    return chunks;
}

}  // namespace summarizer
