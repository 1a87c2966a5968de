#include "summarizer/ndjson.hpp"

#include <gtest/gtest.h>

#include <random>

namespace summarizer {
namespace {

std::vector<std::string> FeedInPieces(const std::string& stream, const std::vector<size_t>& cuts) {
    NdjsonReader reader;
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t cut : cuts) {
        reader.Feed(std::string_view(stream).substr(start, cut - start), [&](std::string_view line) {
            lines.emplace_back(line);
            return true;
        });
        start = cut;
    }
    reader.Feed(std::string_view(stream).substr(start), [&](std::string_view line) {
        lines.emplace_back(line);
        return true;
    });
    return lines;
}

TEST(NdjsonReader, LinesCutAnywhereComeOutWhole) {
    const std::string stream =
        "{\"response\":\"日本\",\"done\":false}\n{\"response\":\"語\",\"done\":false}\r\n\n{\"done\":true}\n";
    const std::vector<std::string> expected = {"{\"response\":\"日本\",\"done\":false}",
                                               "{\"response\":\"語\",\"done\":false}", "{\"done\":true}"};
    // Every single cut point, including inside a multi-byte character.
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        EXPECT_EQ(FeedInPieces(stream, {cut}), expected) << "cut at " << cut;
    }
    // Random multi-cuts.
    std::mt19937 rng(42);
    for (int trial = 0; trial < 200; ++trial) {
        std::vector<size_t> cuts;
        for (size_t i = 0; i < stream.size(); ++i) {
            if (rng() % 4 == 0) cuts.push_back(i);
        }
        EXPECT_EQ(FeedInPieces(stream, cuts), expected);
    }
}

TEST(NdjsonReader, KeepsAFinalLineWithoutNewlinePending) {
    NdjsonReader reader;
    int lines = 0;
    reader.Feed("{\"a\":1}\n{\"done\":true}", [&](std::string_view) { return ++lines > 0; });
    EXPECT_EQ(lines, 1);
    EXPECT_EQ(reader.pending(), "{\"done\":true}");
}

TEST(NdjsonReader, StopsWhenTheCallbackSaysSo) {
    NdjsonReader reader;
    int lines = 0;
    EXPECT_FALSE(reader.Feed("a\nb\nc\n", [&](std::string_view) { return ++lines < 2; }));
    EXPECT_EQ(lines, 2);
}

TEST(NdjsonReader, RejectsAnEndlessLine) {
    NdjsonReader reader(64);
    EXPECT_TRUE(reader.Feed(std::string(60, 'x'), [](std::string_view) { return true; }));
    EXPECT_FALSE(reader.Feed(std::string(10, 'x'), [](std::string_view) { return true; }));
    EXPECT_TRUE(reader.overflowed());
}

// Found by tests/fuzz/fuzz_ndjson: a long line that arrived with its newline in one piece slipped
// through, so the verdict depended on where the network cut the stream.
TEST(NdjsonReader, RejectsALongLineWhereverItIsCut) {
    const std::string stream = "{\"a\":1}\n" + std::string(100, 'x') + "\n{\"b\":2}\n";
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        NdjsonReader reader(64);
        std::vector<std::string> lines;
        const auto on_line = [&](std::string_view line) {
            lines.emplace_back(line);
            return true;
        };
        const bool ok = reader.Feed(std::string_view(stream).substr(0, cut), on_line) &&
                        reader.Feed(std::string_view(stream).substr(cut), on_line);
        EXPECT_FALSE(ok) << "cut at " << cut;
        EXPECT_TRUE(reader.overflowed()) << "cut at " << cut;
        EXPECT_EQ(lines, std::vector<std::string>{"{\"a\":1}"}) << "cut at " << cut;
    }
}

}  // namespace
}  // namespace summarizer
