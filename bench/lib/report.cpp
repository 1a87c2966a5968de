// The three formats written side by side.
#include "lib/report.hpp"

#include <fstream>
#include <utility>

namespace summarizer::bench {

std::string WriteReportFiles(const BenchReport& report, const std::filesystem::path& dir) {
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return "cannot create " + dir.string() + ": " + error.message();
    const std::pair<const char*, std::string> files[] = {
        {"report.md", RenderMarkdown(report)},
        {"report.json", RenderJson(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"},
        {"report.svg", RenderSvg(report)},
    };
    for (const auto& [name, content] : files) {
        const std::filesystem::path path = dir / name;
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << content;
        out.close();
        if (!out) return "cannot write " + path.string();
    }
    return "";
}

}  // namespace summarizer::bench
