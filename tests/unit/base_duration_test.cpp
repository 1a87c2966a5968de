// Durations: Go's syntax (Ollama's keep_alive strings), bare seconds, and the settings' mix of both.
#include "summarizer/duration.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace summarizer {
namespace {

TEST(GoDurationTest, ReadsEveryUnitAndCombination) {
    EXPECT_EQ(ParseGoDuration("24h"), 86400);
    EXPECT_EQ(ParseGoDuration("15m"), 900);
    EXPECT_EQ(ParseGoDuration("1h30m"), 5400);
    EXPECT_EQ(ParseGoDuration("2h45m30s"), 9930);
    EXPECT_DOUBLE_EQ(*ParseGoDuration("300ms"), 0.3);
    EXPECT_DOUBLE_EQ(*ParseGoDuration("1.5h"), 5400);
    EXPECT_DOUBLE_EQ(*ParseGoDuration(".5s"), 0.5);
    EXPECT_DOUBLE_EQ(*ParseGoDuration("1.s"), 1);
    EXPECT_DOUBLE_EQ(*ParseGoDuration("250us"), 250e-6);
    EXPECT_DOUBLE_EQ(*ParseGoDuration("250\u00b5s"), 250e-6);  // MICRO SIGN
    EXPECT_DOUBLE_EQ(*ParseGoDuration("250\u03bcs"), 250e-6);  // GREEK SMALL LETTER MU
    EXPECT_DOUBLE_EQ(*ParseGoDuration("10ns"), 10e-9);
}

TEST(GoDurationTest, SignAndZero) {
    EXPECT_EQ(ParseGoDuration("-1m"), -60);  // negative: forever, to Ollama
    EXPECT_EQ(ParseGoDuration("+1m"), 60);
    EXPECT_EQ(ParseGoDuration("-1h30m"), -5400);  // the sign covers the whole duration
    EXPECT_EQ(ParseGoDuration("0"), 0);
    EXPECT_EQ(ParseGoDuration("-0"), 0);
    EXPECT_EQ(ParseGoDuration("0s"), 0);
}

TEST(GoDurationTest, RejectsWhatGoRejects) {
    for (const std::string bad :
         {"",    "-",  "+",   "90",  "-1",  "1.5", "m",       "h1",         ".s",   "-.s",   "1.2.3h",
          "1hh", "1d", "1 h", " 1h", "1h ", "1H",  "forever", "15 minutes", "--1h", "1h-30m"}) {
        EXPECT_FALSE(ParseGoDuration(bad)) << '"' << bad << '"';
    }
}

TEST(BareSecondsTest, OnlyAWholeNumber) {
    EXPECT_EQ(ParseBareSeconds("90"), 90);
    EXPECT_EQ(ParseBareSeconds("-1"), -1);
    EXPECT_DOUBLE_EQ(*ParseBareSeconds("0.5"), 0.5);
    for (const std::string bad : {"", "24h", " 90", "90 ", "9O", "-", "+5"}) {
        EXPECT_FALSE(ParseBareSeconds(bad)) << '"' << bad << '"';
    }
}

TEST(DurationSecondsTest, BareSecondsOrAGoDurationAroundSpaces) {
    EXPECT_EQ(ParseDurationSeconds("24h"), 86400);
    EXPECT_EQ(ParseDurationSeconds(" 1h30m\n"), 5400);
    EXPECT_EQ(ParseDurationSeconds("90"), 90);
    EXPECT_EQ(ParseDurationSeconds("-1"), -1);
    EXPECT_EQ(ParseDurationSeconds("0"), 0);
    for (const std::string bad : {"", "   ", "forever", "15 minutes", "m", "1d", "1h 30m"}) {
        EXPECT_FALSE(ParseDurationSeconds(bad)) << '"' << bad << '"';
    }
}

}  // namespace
}  // namespace summarizer
