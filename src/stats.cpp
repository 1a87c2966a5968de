#include "summarizer/stats.hpp"

#include <algorithm>
#include <cmath>

namespace summarizer {

std::optional<double> Percentile(std::vector<double> values, double p) {
    std::erase_if(values, [](double v) { return std::isnan(v); });
    if (values.empty() || std::isnan(p)) return std::nullopt;
    std::sort(values.begin(), values.end());
    const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
    const auto lower = static_cast<size_t>(std::floor(rank));
    const double fraction = rank - static_cast<double>(lower);
    if (fraction == 0) return values[lower];  // exact, even for an infinite value (inf - inf is NaN)
    return values[lower] + (values[lower + 1] - values[lower]) * fraction;
}

}  // namespace summarizer
