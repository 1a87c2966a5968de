#include "summarizer/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace summarizer {
namespace {

std::string WriteTemp(const std::string& name, const std::string& content) {
    auto path = std::filesystem::temp_directory_path() / ("summarizer_config_test_" + name + ".json");
    std::ofstream(path) << content;
    return path.string();
}

TEST(Config, DefaultsAreTheDesignRecords) {
    auto config = LoadConfig({});
    ASSERT_TRUE(config.ok()) << config.error().message;
    EXPECT_EQ(config->small_bucket().model, "gemma3-4b-16k");
    EXPECT_EQ(config->small_bucket().num_ctx, 16384);
    EXPECT_EQ(config->small_bucket().keep_alive, "24h");
    EXPECT_EQ(config->large_bucket().model, "gemma3-4b-60k");
    EXPECT_EQ(config->large_bucket().num_ctx, 61440);
    EXPECT_EQ(config->large_bucket().keep_alive, "15m");
    EXPECT_EQ(config->routing.hierarchical_threshold_chars, 150000);
    EXPECT_EQ(config->generation.num_batch, 1024);
    EXPECT_DOUBLE_EQ(config->generation.temperature, 0.15);
    EXPECT_DOUBLE_EQ(config->generation.repeat_penalty, 1.15);
    EXPECT_EQ(config->generation.num_predict, 1200);
    EXPECT_EQ(config->server.port, 8080);
    EXPECT_EQ(config->ollama.url, "http://127.0.0.1:11434");
    EXPECT_EQ(config->ollama.num_parallel, 1);
}

TEST(Config, ShippedFileLoadsAndEqualsDefaults) {
    auto from_file = LoadConfig({.file = std::string(SUMMARIZER_SOURCE_DIR) + "/config/summarizer.json"});
    ASSERT_TRUE(from_file.ok()) << from_file.error().message;
    EXPECT_EQ(ConfigToJson(*from_file), ConfigToJson(*LoadConfig({})));
}

TEST(Config, PrecedenceFlagsOverEnvOverFile) {
    std::string file = WriteTemp("precedence", R"({"server": {"port": 9001, "host": "0.0.0.0"},
                                                  "routing": {"hierarchical_threshold_chars": 1000}})");
    ConfigSources sources{.file = file,
                          .env = {{"SUMMARIZER_PORT", "9002"}, {"HIERARCHICAL_THRESHOLD_CHARS", "2000"}},
                          .flags = {{"server.port", "9003"}}};
    auto config = LoadConfig(sources);
    ASSERT_TRUE(config.ok()) << config.error().message;
    EXPECT_EQ(config->server.port, 9003);                          // flag
    EXPECT_EQ(config->routing.hierarchical_threshold_chars, 2000); // env over file
    EXPECT_EQ(config->server.host, "0.0.0.0");                     // file over default
}

TEST(Config, OllamaHostIsReadLikeOllamaDoes) {
    EXPECT_EQ(NormalizeOllamaHost("example:1234"), "http://example:1234");
    EXPECT_EQ(NormalizeOllamaHost("example"), "http://example:11434");
    EXPECT_EQ(NormalizeOllamaHost("http://ollama:11434/"), "http://ollama:11434");
    EXPECT_EQ(NormalizeOllamaHost("0.0.0.0"), "http://127.0.0.1:11434");
    EXPECT_EQ(NormalizeOllamaHost("https://gpu.local"), "https://gpu.local:443");
    EXPECT_EQ(NormalizeOllamaHost("[::1]:8000"), "http://[::1]:8000");
    EXPECT_FALSE(NormalizeOllamaHost("ftp://x"));
    EXPECT_FALSE(NormalizeOllamaHost("host:99999"));
    auto config = LoadConfig({.env = {{"OLLAMA_HOST", "gpu-box:11500"}}});
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(config->ollama.url, "http://gpu-box:11500");
}

TEST(Config, KeepAliveSyntax) {
    EXPECT_EQ(ParseKeepAlive("24h"), 86400);
    EXPECT_EQ(ParseKeepAlive("15m"), 900);
    EXPECT_EQ(ParseKeepAlive("1h30m"), 5400);
    EXPECT_DOUBLE_EQ(*ParseKeepAlive("300ms"), 0.3);
    EXPECT_EQ(ParseKeepAlive("90"), 90);
    EXPECT_EQ(ParseKeepAlive("-1"), -1);
    EXPECT_EQ(ParseKeepAlive("0"), 0);
    EXPECT_FALSE(ParseKeepAlive("forever"));
    EXPECT_FALSE(ParseKeepAlive("15 minutes"));
    EXPECT_FALSE(ParseKeepAlive(""));
    EXPECT_FALSE(ParseKeepAlive("m"));
}

struct BadValue {
    std::string name;
    ConfigSources sources;
    std::string must_mention;  // the key and where it came from
};

class ConfigRejects : public ::testing::TestWithParam<BadValue> {};

TEST_P(ConfigRejects, NamingTheKeyAndItsSource) {
    auto config = LoadConfig(GetParam().sources);
    ASSERT_FALSE(config.ok());
    for (const auto& needle : {GetParam().must_mention}) {
        EXPECT_NE(config.error().message.find(needle), std::string::npos) << config.error().message;
    }
}

INSTANTIATE_TEST_SUITE_P(
    BadValues, ConfigRejects,
    ::testing::Values(
        BadValue{"UnknownKey", {.file = WriteTemp("unknown", R"({"server": {"prot": 1}})")}, "unknown key 'server.prot'"},
        BadValue{"MalformedFile", {.file = WriteTemp("malformed", R"({"server": )")}, "malformed JSON"},
        BadValue{"NumberOverflowInFile", {.file = WriteTemp("overflow", R"({"server": {"port": 1e999}})")},
                 "malformed JSON"},
        BadValue{"MissingFile", {.file = std::string("/nonexistent/summarizer.json")}, "/nonexistent/summarizer.json"},
        BadValue{"NegativeSize", {.env = {{"HIERARCHICAL_CHUNK_MAX_CHARS", "-5"}}}, "env HIERARCHICAL_CHUNK_MAX_CHARS"},
        BadValue{"NotANumber", {.env = {{"SUMMARIZER_PORT", "80a"}}}, "env SUMMARIZER_PORT"},
        BadValue{"BadKeepAlive", {.env = {{"SUMMARIZER_BUCKET_60K_KEEP_ALIVE", "soon"}}},
                 "env SUMMARIZER_BUCKET_60K_KEEP_ALIVE"},
        BadValue{"WrongTypeInFile", {.file = WriteTemp("wrongtype", R"({"generation": {"temperature": "hot"}})")},
                 "generation.temperature"},
        BadValue{"OutOfRangeFlag", {.flags = {{"generation.temperature", "9"}}}, "flag --generation.temperature"},
        BadValue{"BadPolicy", {.env = {{"SUMMARIZER_ROUTING_POLICY", "fastest"}}}, "routing.policy"},
        BadValue{"UnknownFlag", {.flags = {{"routing.nope", "1"}}}, "routing.nope"},
        BadValue{"BucketsOutOfOrder", {.env = {{"SUMMARIZER_BUCKET_60K_NUM_CTX", "8192"}}}, "buckets.60k.num_ctx"}),
    [](const auto& info) { return info.param.name; });

TEST(Config, EveryKnobIsDocumentedWithEnvAndDefault) {
    for (const auto& knob : Knobs()) {
        EXPECT_FALSE(knob.env.empty()) << knob.path;
        EXPECT_FALSE(knob.help.empty()) << knob.path;
    }
    EXPECT_GE(Knobs().size(), 40u);
}

TEST(Config, VramEstimateGrowsWithContextAndSlots) {
    Config config;
    double small = EstimateBucketVramMb(config, config.small_bucket());
    double large = EstimateBucketVramMb(config, config.large_bucket());
    EXPECT_GT(large, small);
    config.ollama.num_parallel = 2;
    double two_slots = EstimateBucketVramMb(config, config.large_bucket());
    EXPECT_GT(two_slots, large);
    config.vram.kv_cache_type = "q8_0";
    EXPECT_LT(EstimateBucketVramMb(config, config.large_bucket()), two_slots);
}

}  // namespace
}  // namespace summarizer
