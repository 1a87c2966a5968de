// A file in the temporary directory for one test process, removed when the process exits.
// Named `<prefix>_<pid>_<name>`: ctest runs each test in a process of its own, several at once, and
// parameterised cases are built (their files written) in every one of them, so a name shared by
// processes let one truncate a file while another read it (seen in CI: "unexpected end of input").
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace summarizer::testing {

inline std::string WriteTempFile(const std::string& prefix, const std::string& name, const std::string& content) {
    struct Written {
        std::vector<std::filesystem::path> paths;
        ~Written() {
            std::error_code ignored;
            for (const auto& path : paths) std::filesystem::remove(path, ignored);
        }
    };
    static Written written;
    auto path = std::filesystem::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(path, std::ios::binary) << content;
    written.paths.push_back(path);
    return path.string();
}

}  // namespace summarizer::testing
