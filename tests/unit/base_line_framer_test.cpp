// LineFramer: lines come out whole and the same wherever the stream was cut (inside a line, between
// '\r' and '\n', inside a multi-byte character), with either convention of line breaks.
#include "summarizer/line_framer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace summarizer {
namespace {

using Lines = std::vector<std::string>;

// The lines of `stream` fed in the pieces that `cuts` (ascending offsets) make, then the pending rest.
Lines Frame(LineFramer::Breaks breaks, std::string_view stream, const std::vector<size_t>& cuts,
            std::string* rest = nullptr) {
    LineFramer framer(breaks);
    Lines lines;
    const auto on_line = [&](std::string_view line) {
        lines.emplace_back(line);
        return true;
    };
    size_t start = 0;
    for (const size_t cut : cuts) {
        EXPECT_TRUE(framer.Feed(stream.substr(start, cut - start), on_line));
        start = cut;
    }
    EXPECT_TRUE(framer.Feed(stream.substr(start), on_line));
    if (rest) *rest = framer.TakePending();
    return lines;
}

TEST(LineFramerTest, JoinsLinesCutAcrossChunks) {
    LineFramer framer;
    Lines lines;
    const auto on_line = [&](std::string_view line) {
        lines.emplace_back(line);
        return true;
    };
    framer.Feed("{\"a\":", on_line);
    EXPECT_TRUE(lines.empty());
    framer.Feed("1}\r\n{\"b\"", on_line);
    EXPECT_EQ(lines, Lines{"{\"a\":1}"});
    framer.Feed(":2}\n\n{\"c\":3}", on_line);
    EXPECT_EQ(lines, (Lines{"{\"a\":1}", "{\"b\":2}", ""}));
    EXPECT_EQ(framer.pending(), "{\"c\":3}");
    EXPECT_EQ(framer.TakePending(), "{\"c\":3}");
    EXPECT_EQ(framer.TakePending(), "");
}

TEST(LineFramerTest, EveryCutGivesTheSameLines) {
    // A line break at each place a cut can hurt: "\r\n", inside 日 and 😀, a blank line, a lone '\r'.
    const std::string stream = "日本\r\nab😀c\n\nx\ry\r\n";
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        EXPECT_EQ(Frame(LineFramer::Breaks::kLf, stream, {cut}), (Lines{"日本", "ab😀c", "", "x\ry"}))
            << "cut at " << cut;
        EXPECT_EQ(Frame(LineFramer::Breaks::kAnyOfCrLf, stream, {cut}), (Lines{"日本", "ab😀c", "", "x", "y"}))
            << "cut at " << cut;
    }
    // One byte at a time.
    std::vector<size_t> every;
    for (size_t i = 1; i < stream.size(); ++i) every.push_back(i);
    EXPECT_EQ(Frame(LineFramer::Breaks::kAnyOfCrLf, stream, every), (Lines{"日本", "ab😀c", "", "x", "y"}));
}

TEST(LineFramerTest, CrLfIsOneBreakEvenWhenCutBetweenItsBytes) {
    LineFramer framer(LineFramer::Breaks::kAnyOfCrLf);
    Lines lines;
    const auto on_line = [&](std::string_view line) {
        lines.emplace_back(line);
        return true;
    };
    framer.Feed("a\r", on_line);
    EXPECT_EQ(lines, Lines{"a"});  // delivered at once, not held back for a '\n' that may come
    framer.Feed("", on_line);      // an empty piece between the two bytes changes nothing
    framer.Feed("\nb\r\r", on_line);
    EXPECT_EQ(lines, (Lines{"a", "b", ""}));  // "\r\r" is two breaks: a blank line
}

TEST(LineFramerTest, EmptyInputHasNoLines) {
    std::string rest = "x";
    EXPECT_TRUE(Frame(LineFramer::Breaks::kLf, "", {}, &rest).empty());
    EXPECT_EQ(rest, "");
    EXPECT_TRUE(Frame(LineFramer::Breaks::kAnyOfCrLf, "", {0, 0}, &rest).empty());
}

TEST(LineFramerTest, TakePendingIsTheUnterminatedLastLine) {
    std::string rest;
    EXPECT_EQ(Frame(LineFramer::Breaks::kLf, "a\nlast\r", {3}, &rest), Lines{"a"});
    EXPECT_EQ(rest, "last");  // its '\r' is a line break's half, not content
    EXPECT_EQ(Frame(LineFramer::Breaks::kLf, "a\n", {}, &rest), Lines{"a"});
    EXPECT_EQ(rest, "");
}

TEST(LineFramerTest, StopsWhenTheCallbackSaysSoAndDropsTheRest) {
    LineFramer framer;
    int lines = 0;
    EXPECT_FALSE(framer.Feed("a\nb\nc\nrest", [&](std::string_view) { return ++lines < 2; }));
    EXPECT_EQ(lines, 2);
    EXPECT_EQ(framer.pending(), "");
    EXPECT_FALSE(framer.overflowed());
    EXPECT_TRUE(framer.Feed("d\n", [&](std::string_view) { return ++lines > 0; }));  // and goes on after
    EXPECT_EQ(lines, 3);
}

// (That the verdict does not depend on where the stream was cut: base_ndjson_test.cpp.)
TEST(LineFramerTest, AnOverlongLineIsFinalWithEitherBreaks) {
    for (const auto breaks : {LineFramer::Breaks::kLf, LineFramer::Breaks::kAnyOfCrLf}) {
        LineFramer framer(breaks, 10);
        Lines lines;
        const auto on_line = [&](std::string_view line) {
            lines.emplace_back(line);
            return true;
        };
        EXPECT_TRUE(framer.Feed("ok\r\n" + std::string(10, 'x'), on_line));  // 10 pending: at the limit
        EXPECT_FALSE(framer.Feed("x", on_line));                             // 11, unterminated: over it
        EXPECT_TRUE(framer.overflowed());
        EXPECT_FALSE(framer.Feed("\ny\n", on_line));
        EXPECT_EQ(lines, Lines{"ok"});
    }
}

TEST(LineFramerTest, TheLimitCountsTheCarriageReturnOfCrLf) {
    LineFramer lf(LineFramer::Breaks::kLf, 3);
    EXPECT_FALSE(lf.Feed("abc\r\n", [](std::string_view) { return true; }));
    LineFramer any(LineFramer::Breaks::kAnyOfCrLf, 3);
    EXPECT_TRUE(any.Feed("abc\r\n", [](std::string_view) { return true; }));
}

}  // namespace
}  // namespace summarizer
