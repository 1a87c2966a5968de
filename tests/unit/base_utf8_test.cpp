// UTF-8: validation, the one decoder, counting, code point boundaries and the encoder.
#include "summarizer/utf8.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace summarizer {
namespace {

TEST(Utf8Test, AcceptsWellFormedTextOfEveryLength) {
    EXPECT_TRUE(IsValidUtf8(""));
    EXPECT_TRUE(IsValidUtf8("plain ASCII, long enough to take the eight-byte fast path."));
    EXPECT_TRUE(IsValidUtf8("日本語のテキスト。"));
    EXPECT_TRUE(IsValidUtf8("emoji 😀 and 👨‍👩‍👧"));
    // The edges of each sequence length: U+007F, U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF.
    EXPECT_TRUE(IsValidUtf8("\x7F"));
    EXPECT_TRUE(IsValidUtf8("\xC2\x80"));
    EXPECT_TRUE(IsValidUtf8("\xDF\xBF"));
    EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));
    EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));  // U+D7FF, just below the surrogates
    EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));  // U+E000, just above them
    EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));
    EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));
    EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));
    EXPECT_TRUE(IsValidUtf8(std::string_view("a\0b", 3)));  // NUL is a valid code point
}

TEST(Utf8Test, RejectsOverlongsSurrogatesOutOfRangeAndTruncatedSequences) {
    const std::vector<std::string> invalid = {
        "\xC0\xAF",          // overlong '/'
        "\xC1\xBF",          // overlong
        "\xE0\x80\xAF",      // overlong 3-byte
        "\xE0\x9F\xBF",      // overlong 3-byte (top of the range)
        "\xF0\x80\x80\xAF",  // overlong 4-byte
        "\xF0\x8F\xBF\xBF",  // overlong 4-byte (top of the range)
        "\xED\xA0\x80",      // U+D800, high surrogate
        "\xED\xBF\xBF",      // U+DFFF, low surrogate
        "\xF4\x90\x80\x80",  // U+110000
        "\xF5\x80\x80\x80",  // lead byte beyond U+10FFFF
        "\xFF",              //
        "\x80",              // lone continuation byte
        "\xE3\x81",          // truncated 3-byte sequence
        "\xF0\x9F\x98",      // truncated emoji
        "\xC3",              // truncated at the very end
        "\xE3\x41\x81",      // continuation byte missing in the middle
    };
    for (const std::string& bytes : invalid) {
        EXPECT_FALSE(IsValidUtf8(bytes)) << "accepted bytes of length " << bytes.size();
        EXPECT_EQ(FindInvalidUtf8(bytes), 0u);
    }
}

TEST(Utf8Test, FindInvalidUtf8ReportsTheFirstBadByteOffset) {
    EXPECT_EQ(FindInvalidUtf8("all good"), std::string_view::npos);
    // Past the eight-byte fast path, and after multi-byte characters.
    const std::string prefix = "0123456789abcdef日本";
    EXPECT_EQ(FindInvalidUtf8(prefix + "\xED\xA0\x80" + "tail"), prefix.size());
    EXPECT_EQ(FindInvalidUtf8(prefix + "ok" + "\xE3\x81"), prefix.size() + 2);
    EXPECT_EQ(FindInvalidUtf8("abc\x80"), 3u);
}

TEST(Utf8Test, CountsCodePointsNotBytes) {
    EXPECT_EQ(CountCodePoints(""), 0u);
    EXPECT_EQ(CountCodePoints("abc"), 3u);
    EXPECT_EQ(CountCodePoints("日本語"), 3u);
    EXPECT_EQ(CountCodePoints("é"), 1u);
    EXPECT_EQ(CountCodePoints("😀"), 1u);
    EXPECT_EQ(CountCodePoints("a😀b日"), 4u);
}

TEST(Utf8Test, DecodeCodePointWalksEverySequenceLength) {
    const std::string_view text = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80";  // a é 日 😀
    size_t pos = 0;
    EXPECT_EQ(DecodeCodePoint(text, pos), U'a');
    EXPECT_EQ(pos, 1u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\u00E9');
    EXPECT_EQ(pos, 3u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\u65E5');
    EXPECT_EQ(pos, 6u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\U0001F600');
    EXPECT_EQ(pos, text.size());
}

TEST(Utf8Test, DecodeCodePointNeverOverrunsOnInvalidInput) {
    const std::string_view text = "\xE3\x81";  // truncated
    size_t pos = 0;
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\uFFFD');
    EXPECT_EQ(pos, 1u);
    EXPECT_EQ(DecodeCodePoint(text, pos), U'\uFFFD');
    EXPECT_EQ(pos, 2u);
}

TEST(Utf8Test, DecodeCodePointStopsAtTheEnd) {
    size_t pos = 0;
    EXPECT_EQ(DecodeCodePoint("", pos), 0u);
    EXPECT_EQ(pos, 0u);
    pos = 5;
    EXPECT_EQ(DecodeCodePoint("abc", pos), 0u);
    EXPECT_EQ(pos, 5u);
}

// A sequence cut by the end of a piece (as a network read cuts it) decodes as replacement
// characters, one byte at a time, and the decoder never reads past the piece.
TEST(Utf8Test, DecodeCodePointOnAPieceCutInsideACharacter) {
    const std::string whole = "a\xF0\x9F\x98\x80";  // a 😀
    for (size_t cut = 2; cut < whole.size(); ++cut) {
        const std::string piece = whole.substr(0, cut);
        size_t pos = 0;
        std::vector<char32_t> decoded;
        while (pos < piece.size()) decoded.push_back(DecodeCodePoint(piece, pos));
        EXPECT_EQ(pos, piece.size());
        EXPECT_EQ(decoded.front(), U'a');
        EXPECT_EQ(decoded.size(), cut) << "cut at " << cut;
        for (size_t i = 1; i < decoded.size(); ++i) EXPECT_EQ(decoded[i], U'\uFFFD');
    }
}

TEST(Utf8Test, DecodeCodePointReadsEveryScalarValueAppendUtf8Writes) {
    for (char32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x3000 ? 1 : 61)) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        std::string bytes;
        AppendUtf8(bytes, cp);
        ASSERT_EQ(bytes.size(), Utf8EncodedLength(cp)) << std::hex << static_cast<uint32_t>(cp);
        ASSERT_TRUE(IsValidUtf8(bytes)) << std::hex << static_cast<uint32_t>(cp);
        size_t pos = 0;
        ASSERT_EQ(DecodeCodePoint(bytes, pos), cp) << std::hex << static_cast<uint32_t>(cp);
        ASSERT_EQ(pos, bytes.size());
    }
    std::string max;
    AppendUtf8(max, 0x10FFFF);
    EXPECT_EQ(max, "\xF4\x8F\xBF\xBF");
}

TEST(Utf8Test, FirstCodePointsNeverCutsACharacter) {
    EXPECT_EQ(FirstCodePoints("", 3), "");
    EXPECT_EQ(FirstCodePoints("abc", 0), "");
    EXPECT_EQ(FirstCodePoints("a日本😀", 2), "a日");
    EXPECT_EQ(FirstCodePoints("a日本😀", 4), "a日本😀");
    EXPECT_EQ(FirstCodePoints("a日本😀", 40), "a日本😀");
}

TEST(Utf8Test, CodePointBoundaries) {
    const std::string_view text = "a日b";  // a: 0, 日: 1..3, b: 4
    EXPECT_TRUE(IsCodePointBoundary(text, 0));
    EXPECT_TRUE(IsCodePointBoundary(text, 1));
    EXPECT_FALSE(IsCodePointBoundary(text, 2));
    EXPECT_FALSE(IsCodePointBoundary(text, 3));
    EXPECT_TRUE(IsCodePointBoundary(text, 4));
    EXPECT_TRUE(IsCodePointBoundary(text, 5));   // the end
    EXPECT_FALSE(IsCodePointBoundary(text, 6));  // past it
    const std::vector<size_t> before = {0, 1, 1, 1, 4, 5, 5};
    const std::vector<size_t> after = {0, 1, 4, 4, 4, 5, 5};
    for (size_t pos = 0; pos < before.size(); ++pos) {
        EXPECT_EQ(CodePointStartAtOrBefore(text, pos), before[pos]) << pos;
        EXPECT_EQ(CodePointStartAtOrAfter(text, pos), after[pos]) << pos;
    }
    EXPECT_EQ(CodePointStartAtOrBefore("\x80\x80", 1), 0u);  // stops at the start
    EXPECT_EQ(CodePointStartAtOrBefore("", 0), 0u);
    EXPECT_EQ(CodePointStartAtOrAfter("", 3), 0u);
}

}  // namespace
}  // namespace summarizer
