// The report as an SVG chart: TTFT and latency P50 per case against the TTFT target.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string_view>

#include "lib/format.hpp"
#include "lib/report.hpp"
#include "lib/verdict.hpp"

namespace summarizer::bench {
namespace {

std::string XmlEscape(std::string_view text) {
    std::string out;
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// A round axis step (1, 2 or 5 times a power of ten) giving about `ticks` ticks up to max_value.
double NiceStep(double max_value, int ticks) {
    const double raw = max_value / ticks;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    const double mantissa = raw / magnitude;
    const double nice = mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10;
    return nice * magnitude;
}

std::string FormatAxisSeconds(double seconds, double step) {
    return step >= 1 ? Format("%.0f s", seconds) : step >= 0.1 ? Format("%.1f s", seconds) : Format("%.2f s", seconds);
}

}  // namespace

std::string RenderSvg(const BenchReport& report) {
    constexpr double kLeft = 70, kRight = 24, kTop = 70, kBottom = 64, kPlotHeight = 260;
    constexpr double kGroupWidth = 120, kBarWidth = 38, kBarGap = 6;
    constexpr const char* kTtftColor = "#4e79a7";
    constexpr const char* kLatencyColor = "#f28e2b";
    const size_t groups = report.cases.size();
    const double plot_width = std::max<double>(kGroupWidth * static_cast<double>(groups), 360);
    const double width = kLeft + plot_width + kRight;
    const double height = kTop + kPlotHeight + kBottom;
    const double baseline = kTop + kPlotHeight;
    const double ttft_target = report.config.targets.ttft_s;

    double max_value = ttft_target;
    for (const auto& c : report.cases) {
        max_value = std::max({max_value, c.summary.ttft_p50_s.value_or(0), c.summary.latency_p50_s.value_or(0)});
    }
    if (!(max_value > 0)) max_value = 1;
    const double step = NiceStep(max_value, 5);
    const double axis_max = std::ceil(max_value / step - 1e-9) * step;
    const auto y_of = [&](double seconds) { return baseline - seconds / axis_max * kPlotHeight; };

    std::ostringstream svg;
    svg << Format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" )"
                  R"(font-family="sans-serif" font-size="12">)",
                  width, height, width, height)
        << "\n";
    svg << Format(R"(<rect x="0" y="0" width="%.0f" height="%.0f" fill="#ffffff"/>)", width, height) << "\n";
    svg << Format(R"(<text x="%.0f" y="24" font-size="16" font-weight="bold">TTFT and latency P50 per case</text>)",
                  kLeft)
        << "\n";
    svg << Format(R"(<text x="%.0f" y="42" fill="#555555">)", kLeft) << XmlEscape(TargetDescription(report.config, "'"))
        << "</text>\n";

    // Legend.
    const double legend_y = 52;
    svg << Format(R"(<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/>)", kLeft, legend_y, kTtftColor)
        << Format(R"(<text x="%.0f" y="%.0f">TTFT P50</text>)", kLeft + 16, legend_y + 10)
        << Format(R"(<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/>)", kLeft + 100, legend_y, kLatencyColor)
        << Format(R"(<text x="%.0f" y="%.0f">latency P50</text>)", kLeft + 116, legend_y + 10)
        << Format(R"(<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#c62828" stroke-dasharray="6 4"/>)",
                  kLeft + 220, legend_y + 6, kLeft + 250, legend_y + 6)
        << Format(R"(<text x="%.0f" y="%.0f">TTFT target %g s</text>)", kLeft + 256, legend_y + 10, ttft_target)
        << "\n";

    // Y axis: gridlines, ticks and labels in seconds.
    svg << R"(<g class="axis y">)"
        << "\n";
    for (double tick = 0; tick <= axis_max + step / 2; tick += step) {
        const double y = y_of(tick);
        svg << Format(R"(<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>)", kLeft, y,
                      kLeft + plot_width, y)
            << Format(R"(<text x="%.1f" y="%.1f" text-anchor="end">%s</text>)", kLeft - 6, y + 4,
                      FormatAxisSeconds(tick, step).c_str())
            << "\n";
    }
    svg << Format(R"(<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>)", kLeft, kTop, kLeft, baseline)
        << Format(R"(<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>)", kLeft, baseline,
                  kLeft + plot_width, baseline)
        << Format(R"svg(<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" text-anchor="middle">seconds</text>)svg",
                  kTop + kPlotHeight / 2, kTop + kPlotHeight / 2)
        << "\n</g>\n";

    // Bars: per case a TTFT bar and a latency bar side by side.
    svg << R"(<g class="bars">)"
        << "\n";
    for (size_t i = 0; i < groups; ++i) {
        const CaseResult& c = report.cases[i];
        const std::string label = XmlEscape(c.name + "/" + c.lang);
        const double group_x = kLeft + kGroupWidth * static_cast<double>(i);
        const double first_x = group_x + (kGroupWidth - 2 * kBarWidth - kBarGap) / 2;
        const struct {
            const char* kind;
            const char* title;
            const char* color;
            std::optional<double> value;
        } bars[] = {{"ttft", "TTFT P50", kTtftColor, c.summary.ttft_p50_s},
                    {"latency", "latency P50", kLatencyColor, c.summary.latency_p50_s}};
        for (size_t b = 0; b < 2; ++b) {
            const double x = first_x + static_cast<double>(b) * (kBarWidth + kBarGap);
            if (!bars[b].value) {
                svg << Format(R"(<text x="%.1f" y="%.1f" text-anchor="middle" fill="#999999">n/a</text>)",
                              x + kBarWidth / 2, baseline - 4)
                    << "\n";
                continue;
            }
            const double value = *bars[b].value;
            const double y = y_of(value);
            svg << Format(R"(<rect class="bar %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s">)",
                          bars[b].kind, x, y, kBarWidth, baseline - y, bars[b].color)
                << "<title>" << label << " " << bars[b].title << Format(": %.3f s", value) << "</title></rect>"
                << Format(R"(<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.2f</text>)",
                          x + kBarWidth / 2, y - 3, value)
                << "\n";
        }
        svg << Format(R"(<text x="%.1f" y="%.1f" text-anchor="middle">)", group_x + kGroupWidth / 2, baseline + 18)
            << label << "</text>\n";
        const std::string verdict = VerdictText(c.summary.verdict);
        svg << Format(R"(<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="%s">)",
                      group_x + kGroupWidth / 2, baseline + 34, c.summary.verdict.pass ? "#2e7d32" : "#c62828")
            << XmlEscape(verdict.substr(0, verdict.find(' '))) << "</text>\n";
    }
    svg << "</g>\n";

    // The TTFT target, so a bar above it reads as a miss at a glance.
    const double target_y = y_of(ttft_target);
    svg << Format(R"(<line class="target" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c62828" )"
                  R"(stroke-dasharray="6 4"/>)",
                  kLeft, target_y, kLeft + plot_width, target_y)
        << "\n";
    svg << "</svg>\n";
    return svg.str();
}

}  // namespace summarizer::bench
