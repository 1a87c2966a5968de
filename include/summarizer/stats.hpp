// Statistics over measured samples. Every bench reports its percentiles with this one function, so
// a P99 of one bench (or of docs/PERFORMANCE.md) means the same as that of another.
#pragma once

#include <optional>
#include <vector>

namespace summarizer {

// The p-th percentile by linear interpolation between the closest ranks (numpy's default "linear",
// Hyndman & Fan type 7): the value at rank p/100 * (n - 1) of the sorted values, interpolated between
// its two neighbours. P50 of {1, 2, 3, 4} is 2.5; P95 of {1..10} is 9.55; P0 is the minimum and P100
// the maximum. `p` is clamped to [0, 100]; NaN values are ignored; nullopt when no value is left or `p` is NaN.
std::optional<double> Percentile(std::vector<double> values, double p);

}  // namespace summarizer
