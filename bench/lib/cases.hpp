// The benchmark's inputs: the case files `<name>.<lang>.txt` (bench/cases), and the --cases /
// --lang list syntax.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace summarizer::bench {

// One input text: the file `<name>.<lang>.txt` of the cases directory.
struct BenchCase {
    std::string name;  // "small", "medium", "large", "xl"
    std::string lang;  // "en", "ja": also the language the raw-Ollama prompt asks for
    std::string text;
    int64_t chars = 0;  // Unicode code points, as the API counts them
};

struct CaseLoadResult {
    std::vector<BenchCase> cases;  // names x langs, in the order given (name-major)
    std::string error;             // empty on success; else names every missing or unreadable file
    bool ok() const { return error.empty(); }
};

// Reads `dir/<name>.<lang>.txt` for every name and lang. A missing, unreadable or blank file is
// an error (the caller asked for that case), not a skipped case.
CaseLoadResult LoadCases(const std::filesystem::path& dir, const std::vector<std::string>& names,
                         const std::vector<std::string>& langs);

// "a,b,,c " -> {"a", "b", "c"}: the --cases / --lang flag syntax.
std::vector<std::string> SplitCommaList(std::string_view list);

}  // namespace summarizer::bench
