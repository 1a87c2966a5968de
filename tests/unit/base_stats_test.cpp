// Percentile: the one method every bench reports with (linear interpolation between closest ranks).
#include "summarizer/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace summarizer {
namespace {

TEST(PercentileTest, EmptyHasNone) { EXPECT_FALSE(Percentile({}, 50).has_value()); }

TEST(PercentileTest, SingleValueIsEveryPercentile) {
    EXPECT_DOUBLE_EQ(*Percentile({3.5}, 0), 3.5);
    EXPECT_DOUBLE_EQ(*Percentile({3.5}, 50), 3.5);
    EXPECT_DOUBLE_EQ(*Percentile({3.5}, 95), 3.5);
}

TEST(PercentileTest, InterpolatesBetweenClosestRanks) {
    EXPECT_DOUBLE_EQ(*Percentile({4, 1, 3, 2}, 50), 2.5);  // unsorted input, even count
    EXPECT_DOUBLE_EQ(*Percentile({5, 1, 3}, 50), 3.0);
    EXPECT_DOUBLE_EQ(*Percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 95), 9.55);
    EXPECT_DOUBLE_EQ(*Percentile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 90), 9.1);
    EXPECT_DOUBLE_EQ(*Percentile({10, 20}, 0), 10);
    EXPECT_DOUBLE_EQ(*Percentile({10, 20}, 100), 20);
    EXPECT_DOUBLE_EQ(*Percentile({10, 20}, 150), 20);  // clamped
}

TEST(PercentileTest, IgnoresNaN) { EXPECT_DOUBLE_EQ(*Percentile({1, std::nan(""), 3}, 50), 2.0); }

TEST(PercentileTest, ZeroAndHundredAreTheExtremes) {
    const std::vector<double> values = {7, -2, 11, 3, 3};
    EXPECT_DOUBLE_EQ(*Percentile(values, 0), -2);
    EXPECT_DOUBLE_EQ(*Percentile(values, 100), 11);
    EXPECT_DOUBLE_EQ(*Percentile(values, -5), -2);  // clamped
}

// numpy.percentile(range(100), 99) == 98.01: interpolated between the 99th and 100th values, where the
// overhead bench's former copy (the value at the nearest index) said 98.
TEST(PercentileTest, P99OfAHundredSamplesMatchesNumpy) {
    std::vector<double> values;
    for (int i = 0; i < 100; ++i) values.push_back(i);
    EXPECT_DOUBLE_EQ(*Percentile(values, 99), 98.01);
    EXPECT_DOUBLE_EQ(*Percentile(values, 50), 49.5);
}

TEST(PercentileTest, OnlyNaNOrANaNRankHasNone) {
    EXPECT_FALSE(Percentile({std::nan(""), std::nan("")}, 50).has_value());
    EXPECT_FALSE(Percentile({1, 2}, std::nan("")).has_value());
}

TEST(PercentileTest, InfinitiesSortToTheEnds) {
    const double inf = std::numeric_limits<double>::infinity();
    EXPECT_DOUBLE_EQ(*Percentile({inf, 1, -inf}, 50), 1);
    EXPECT_EQ(*Percentile({inf, 1, -inf}, 100), inf);
}

}  // namespace
}  // namespace summarizer
