#include "lib/cases.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "lib/format.hpp"
#include "summarizer/utf8.hpp"

namespace summarizer::bench {

CaseLoadResult LoadCases(const std::filesystem::path& dir, const std::vector<std::string>& names,
                         const std::vector<std::string>& langs) {
    CaseLoadResult result;
    std::vector<std::string> problems;
    for (const auto& name : names) {
        for (const auto& lang : langs) {
            const std::filesystem::path path = dir / (name + "." + lang + ".txt");
            std::ifstream in(path, std::ios::binary);
            if (!in) {
                problems.push_back(path.string() + " (missing or unreadable)");
                continue;
            }
            std::ostringstream content;
            content << in.rdbuf();
            BenchCase bench_case{name, lang, content.str(), 0};
            if (IsAsciiBlank(bench_case.text)) {
                problems.push_back(path.string() + " (blank)");
                continue;
            }
            bench_case.chars = static_cast<int64_t>(CountCodePoints(bench_case.text));
            result.cases.push_back(std::move(bench_case));
        }
    }
    if (!problems.empty()) {
        result.error = "cannot use these case files:";
        for (const auto& problem : problems) result.error += "\n  " + problem;
        result.cases.clear();
    }
    return result;
}

std::vector<std::string> SplitCommaList(std::string_view list) {
    std::vector<std::string> items;
    size_t begin = 0;
    while (begin <= list.size()) {
        const size_t comma = std::min(list.find(',', begin), list.size());
        std::string item = TrimAscii(list.substr(begin, comma - begin));
        if (!item.empty()) items.push_back(std::move(item));
        begin = comma + 1;
    }
    return items;
}

}  // namespace summarizer::bench
