#include "summarizer/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_file.hpp"

namespace summarizer {
namespace {

std::string WriteConfig(const std::string& name, const std::string& content) {
    return testing::WriteTempFile("summarizer_config_test", name + ".json", content);
}

TEST(Config, DefaultsAreTheDesignRecords) {
    auto config = LoadConfig({});
    ASSERT_TRUE(config.ok()) << config.error().message;
    EXPECT_EQ(config->buckets.at(0).model, "gemma3-4b-16k");
    EXPECT_EQ(config->buckets.at(0).num_ctx, 16384);
    EXPECT_EQ(config->buckets.at(0).keep_alive, "24h");
    EXPECT_EQ(config->buckets.at(1).model, "gemma3-4b-60k");
    EXPECT_EQ(config->buckets.at(1).num_ctx, 61440);
    EXPECT_EQ(config->buckets.at(1).keep_alive, "15m");
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
    std::string file = WriteConfig("precedence", R"({"server": {"port": 9001, "host": "0.0.0.0"},
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
        BadValue{"UnknownKey", {.file = WriteConfig("unknown", R"({"server": {"prot": 1}})")}, "unknown key 'server.prot'"},
        BadValue{"MalformedFile", {.file = WriteConfig("malformed", R"({"server": )")}, "malformed JSON"},
        BadValue{"NumberOverflowInFile", {.file = WriteConfig("overflow", R"({"server": {"port": 1e999}})")},
                 "malformed JSON"},
        BadValue{"MissingFile", {.file = std::string("/nonexistent/summarizer.json")}, "/nonexistent/summarizer.json"},
        BadValue{"NegativeSize", {.env = {{"HIERARCHICAL_CHUNK_MAX_CHARS", "-5"}}}, "env HIERARCHICAL_CHUNK_MAX_CHARS"},
        BadValue{"NotANumber", {.env = {{"SUMMARIZER_PORT", "80a"}}}, "env SUMMARIZER_PORT"},
        BadValue{"BadKeepAlive", {.env = {{"SUMMARIZER_BUCKET_60K_KEEP_ALIVE", "soon"}}},
                 "env SUMMARIZER_BUCKET_60K_KEEP_ALIVE"},
        BadValue{"WrongTypeInFile", {.file = WriteConfig("wrongtype", R"({"generation": {"temperature": "hot"}})")},
                 "generation.temperature"},
        // Named as it was given: `--set generation.temperature=9` (there is no --generation.temperature flag).
        BadValue{"OutOfRangeFlag", {.flags = {{"generation.temperature", "9"}}}, "flag --set generation.temperature"},
        BadValue{"OutOfRangeNamedFlag",
                 {.flags = {{"server.port", "70000"}}, .flag_names = {{"server.port", "--port"}}},
                 "server.port = 70000 (flag --port)"},
        BadValue{"BadPolicy", {.env = {{"SUMMARIZER_ROUTING_POLICY", "fastest"}}}, "routing.policy"},
        BadValue{"UnknownFlag", {.flags = {{"routing.nope", "1"}}}, "routing.nope"},
        BadValue{"BucketsOutOfOrder", {.env = {{"SUMMARIZER_BUCKET_60K_NUM_CTX", "8192"}}}, "buckets.60k.num_ctx"},
        // The per-read time-out of the old transport: a file naming it is told what replaced it.
        BadValue{"RetiredReadTimeoutInFile", {.file = WriteConfig("retired", R"({"server": {"read_timeout_s": 30}})")},
                 "replaced by server.header_timeout_s"},
        BadValue{"RetiredReadTimeoutFlag", {.flags = {{"server.read_timeout_s", "30"}}}, "server.body_timeout_s"},
        BadValue{"ZeroHeaderTimeout", {.env = {{"SUMMARIZER_HEADER_TIMEOUT_S", "0"}}}, "env SUMMARIZER_HEADER_TIMEOUT_S"},
        BadValue{"NegativeHeartbeat", {.env = {{"SUMMARIZER_SSE_HEARTBEAT_S", "-1"}}}, "server.sse_heartbeat_s"}),
    [](const auto& info) { return info.param.name; });

TEST(Config, TransportDefaultsAndEnvironment) {
    auto defaults = LoadConfig({});
    ASSERT_TRUE(defaults.ok());
    const ServerConfig& s = defaults->server;
    EXPECT_EQ(s.threads, 0);  // sized from admission
    EXPECT_EQ(s.io_threads, 1);
    EXPECT_EQ(s.header_timeout_s, 10);
    EXPECT_EQ(s.body_timeout_s, 10);
    EXPECT_EQ(s.body_min_bytes_per_s, 16384);
    EXPECT_EQ(s.keep_alive_timeout_s, 5);
    EXPECT_EQ(s.write_timeout_s, 30);
    EXPECT_EQ(s.max_header_bytes, 16384);
    EXPECT_EQ(s.max_connections, 10000);
    EXPECT_EQ(s.max_connections_per_address, 1000);
    EXPECT_EQ(s.sse_heartbeat_s, 15);
    auto set = LoadConfig({.env = {{"SUMMARIZER_HEADER_TIMEOUT_S", "3"},
                                   {"SUMMARIZER_BODY_MIN_BYTES_PER_S", "0"},
                                   {"SUMMARIZER_MAX_CONNECTIONS_PER_ADDRESS", "0"},
                                   {"SUMMARIZER_SSE_HEARTBEAT_S", "0"},
                                   {"SUMMARIZER_IO_THREADS", "2"}}});
    ASSERT_TRUE(set.ok()) << set.error().message;
    EXPECT_EQ(set->server.header_timeout_s, 3);
    EXPECT_EQ(set->server.body_min_bytes_per_s, 0);
    EXPECT_EQ(set->server.max_connections_per_address, 0);
    EXPECT_EQ(set->server.sse_heartbeat_s, 0);
    EXPECT_EQ(set->server.io_threads, 2);
}

TEST(Config, EveryKnobIsDocumentedWithEnvAndDefault) {
    for (const auto& knob : Knobs()) {
        EXPECT_FALSE(knob.env.empty()) << knob.path;
        EXPECT_FALSE(knob.help.empty()) << knob.path;
    }
    EXPECT_GE(Knobs().size(), 40u);
}

TEST(Config, VramEstimateGrowsWithContextAndSlots) {
    Config config;
    double small = EstimateBucketVramMb(config, config.buckets.at(0));
    double large = EstimateBucketVramMb(config, config.buckets.at(1));
    EXPECT_GT(large, small);
    config.ollama.num_parallel = 2;
    double two_slots = EstimateBucketVramMb(config, config.buckets.at(1));
    EXPECT_GT(two_slots, large);
    config.vram.kv_cache_type = "q8_0";
    EXPECT_LT(EstimateBucketVramMb(config, config.buckets.at(1)), two_slots);
}

}  // namespace
}  // namespace summarizer

namespace summarizer {
namespace {

TEST(ConfigBuckets, AFileListsAnyNumberOfBucketsSmallestFirst) {
    std::string file = WriteConfig("three_buckets", R"({"buckets": {
        "8k": {"model": "gemma3-4b-8k", "num_ctx": 8192, "keep_alive": "24h", "hot": true},
        "16k": {"hot": false},
        "60k": {},
        "120k": {"model": "gemma3-4b-120k", "num_ctx": 122880, "keep_alive": "5m"}}})");
    auto config = LoadConfig({.file = file});
    ASSERT_TRUE(config.ok()) << config.error().message;
    std::vector<std::string> names;
    for (const auto& b : config->buckets) names.push_back(b.name);
    EXPECT_EQ(names, (std::vector<std::string>{"8k", "16k", "60k", "120k"}));
    EXPECT_EQ(config->MapBucket().name, "8k");
    EXPECT_EQ(config->buckets[1].model, "gemma3-4b-16k");  // the default's other fields stay

    // A bucket the defaults lack is placed by its size among them; a file's own list must be in order.
    auto added = LoadConfig({.file = WriteConfig("added", R"({"buckets": {
        "120k": {"model": "m", "num_ctx": 122880, "keep_alive": "5m"}, "4k": {"model": "s", "num_ctx": 4096,
        "keep_alive": "5m"}}})")});
    ASSERT_FALSE(added.ok());
    EXPECT_NE(added.error().message.find("must be larger than buckets.120k.num_ctx"),
              std::string::npos)
        << added.error().message;
    EXPECT_NE(added.error().message.find("smallest context first"), std::string::npos);
    auto one = LoadConfig({.file = WriteConfig("added_one", R"({"buckets": {
        "120k": {"model": "m", "num_ctx": 122880, "keep_alive": "5m"}}})")});
    ASSERT_TRUE(one.ok()) << one.error().message;
    names.clear();
    for (const auto& b : one->buckets) names.push_back(b.name);
    EXPECT_EQ(names, (std::vector<std::string>{"16k", "60k", "120k"}));
}

TEST(ConfigBuckets, NullRemovesADefaultBucketAndTheHotOneIsWhereMapReduceRuns) {
    std::string file = WriteConfig("one_bucket", R"({"buckets": {"60k": null, "16k": {"num_ctx": 32768}}})");
    auto config = LoadConfig({.file = file});
    ASSERT_TRUE(config.ok()) << config.error().message;
    ASSERT_EQ(config->buckets.size(), 1u);
    EXPECT_EQ(config->buckets[0].num_ctx, 32768);
    EXPECT_EQ(config->MapBucket().name, "16k");
    EXPECT_EQ(config->HotBucket(), &config->buckets[0]);

    std::string three = WriteConfig("hot_middle", R"({"buckets": {
        "8k": {"model": "m8", "num_ctx": 8192, "keep_alive": "5m"}, "16k": {"hot": false}, "60k": {"hot": true}}})");
    auto hot60 = LoadConfig({.file = three});
    ASSERT_TRUE(hot60.ok()) << hot60.error().message;
    EXPECT_EQ(hot60->MapBucket().name, "60k");
    EXPECT_EQ(hot60->BucketIndex(hot60->MapBucket()), 2u);
}

TEST(ConfigBuckets, BucketsAreSetFromFlagsAndEnvironmentByName) {
    std::string file = WriteConfig("new_bucket", R"({"buckets": {"120k": {"model": "big", "num_ctx": 122880,
                                                                      "keep_alive": "5m"}}})");
    auto config = LoadConfig({.file = file,
                              .env = {{"SUMMARIZER_BUCKET_120K_KEEP_ALIVE", "1m"}},
                              .flags = {{"buckets.120k.model", "bigger"}}});
    ASSERT_TRUE(config.ok()) << config.error().message;
    const BucketConfig* b = config->FindBucket("120k");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->model, "bigger");
    EXPECT_EQ(b->keep_alive, "1m");
    EXPECT_NE(ConfigToJson(*config).find("\"120k\""), std::string::npos);
}

TEST(ConfigBuckets, BadBucketsAreRejectedNamingTheKey) {
    struct Case {
        std::string json, needle;
    };
    for (const auto& c : std::vector<Case>{
             {R"({"buckets": {"8k": {"model": "m", "num_ctx": 8192, "keep_alive": "5m", "hot": true}}})",
              "only one bucket can be hot"},
             {R"({"buckets": {"map_reduce": {"model": "m", "num_ctx": 99999, "keep_alive": "5m"}}})", "map_reduce"},
             {R"({"buckets": {"2k": {"num_ctx": 2048, "keep_alive": "5m"}}})", "buckets.2k.model"},
             {R"({"buckets": {"16k": null, "60k": null}})", "at least one bucket"},
             {R"({"buckets": {"16k": {"color": "red"}}})", "unknown key 'buckets.16k.color'"},
             {R"({"buckets": ["16k"]})", "buckets must be an object"},
         }) {
        auto config = LoadConfig({.file = WriteConfig("bad_bucket", c.json)});
        ASSERT_FALSE(config.ok()) << c.json;
        EXPECT_NE(config.error().message.find(c.needle), std::string::npos) << config.error().message;
    }
}

}  // namespace
}  // namespace summarizer
