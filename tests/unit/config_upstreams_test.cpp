// The pool in the config: the file form, SUMMARIZER_UPSTREAMS, --upstream (flags over the
// environment over the file, details kept by name), OLLAMA_HOST alone, slots and the derived
// concurrency, and bad set-ups stopping start-up with a message that names the key and its source.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "summarizer/config.hpp"
#include "temp_file.hpp"

namespace summarizer {
namespace {

std::string WriteUpstreamsConfig(const std::string& name, const std::string& content) {
    return testing::WriteTempFile("summarizer_upstreams_test", name + ".json", content);
}

TEST(ConfigUpstreams, OllamaHostAloneIsTheSingleUpstream) {
    auto config = LoadConfig({.env = {{"OLLAMA_HOST", "gpu-box:11500"}, {"OLLAMA_NUM_PARALLEL", "2"}}});
    ASSERT_TRUE(config.ok()) << config.error().message;
    EXPECT_TRUE(config->upstreams.empty());
    const auto pool = config->Upstreams();
    ASSERT_EQ(pool.size(), 1u);
    EXPECT_EQ(pool[0].name, "ollama");
    EXPECT_EQ(pool[0].kind, "ollama");
    EXPECT_EQ(pool[0].url, "http://gpu-box:11500");
    EXPECT_EQ(pool[0].slots, 2);
    EXPECT_EQ(config->MapConcurrency(), 2);
    EXPECT_EQ(config->MaxInflight(), 4);
}

TEST(ConfigUpstreams, TheEnvironmentShortFormListsThePool) {
    auto config = LoadConfig({.env = {{"SUMMARIZER_UPSTREAMS",
                                       "gpu1=ollama@http://10.0.0.5:11434  gpu2=ollama@10.0.0.6\n"
                                       "vllm=openai@http://10.0.0.7:8000/v1/"},
                                      {"OLLAMA_NUM_PARALLEL", "2"}}});
    ASSERT_TRUE(config.ok()) << config.error().message;
    ASSERT_EQ(config->upstreams.size(), 3u);
    EXPECT_EQ(config->upstreams[0].name, "gpu1");
    EXPECT_EQ(config->upstreams[1].url, "http://10.0.0.6:11434");  // as OLLAMA_HOST is read
    EXPECT_EQ(config->upstreams[2].kind, "openai");
    EXPECT_EQ(config->upstreams[2].url, "http://10.0.0.7:8000");   // an SDK's base_url: /v1 dropped
    const auto pool = config->Upstreams();
    EXPECT_EQ(pool[0].slots, 2);                    // ollama.num_parallel
    EXPECT_EQ(pool[2].slots, kDefaultOpenAiSlots);  // vLLM does not report it
    EXPECT_EQ(config->MapConcurrency(), 2 + 2 + kDefaultOpenAiSlots);
    EXPECT_EQ(config->MaxInflight(), 2 * (2 + 2 + kDefaultOpenAiSlots));
}

TEST(ConfigUpstreams, FlagsOverTheEnvironmentOverTheFileKeepingDetailsByName) {
    const std::string file = WriteUpstreamsConfig("precedence", R"({"upstreams": {
        "gpu1": {"kind": "ollama", "url": "http://10.0.0.5:11434", "slots": 4, "api_key": "k1", "buckets": ["16k"]},
        "gpu2": {"kind": "ollama", "url": "http://10.0.0.6:11434", "buckets": ["60k"]}}})");
    auto from_file = LoadConfig({.file = file});
    ASSERT_TRUE(from_file.ok()) << from_file.error().message;
    ASSERT_EQ(from_file->upstreams.size(), 2u);
    EXPECT_EQ(from_file->upstreams[0].slots, 4);
    EXPECT_EQ(from_file->upstreams[1].buckets, std::vector<std::string>{"60k"});

    ConfigSources sources{.file = file,
                          .env = {{"SUMMARIZER_UPSTREAMS", "gpu1=ollama@http://10.1.0.5:11434"}},
                          .upstream_flags = {"gpu1=ollama@http://10.2.0.5:11434", "vllm=openai@http://10.2.0.7:8000"}};
    // The flags name the pool; gpu1 keeps the file's slots, key and buckets; vllm serves every bucket.
    auto config = LoadConfig(sources);
    ASSERT_TRUE(config.ok()) << config.error().message;
    ASSERT_EQ(config->upstreams.size(), 2u);
    EXPECT_EQ(config->upstreams[0].url, "http://10.2.0.5:11434");
    EXPECT_EQ(config->upstreams[0].slots, 4);
    EXPECT_EQ(config->upstreams[0].api_key, "k1");
    EXPECT_EQ(config->upstreams[0].buckets, std::vector<std::string>{"16k"});
    EXPECT_EQ(config->upstreams[1].name, "vllm");
    // Without flags the environment's list is the pool.
    sources.upstream_flags.clear();
    auto env_only = LoadConfig(sources);
    ASSERT_FALSE(env_only.ok()) << "gpu1 alone serves 16k only: 60k has no upstream";
    EXPECT_NE(env_only.error().message.find("no upstream serves bucket 60k"), std::string::npos)
        << env_only.error().message;
}

TEST(ConfigUpstreams, EachUpstreamsKnobsComeFromTheEnvironmentAndSetAndTheKeyIsMasked) {
    auto config = LoadConfig({.env = {{"SUMMARIZER_UPSTREAMS", "vllm=openai@http://10.0.0.7:8000"},
                                      {"SUMMARIZER_UPSTREAM_VLLM_API_KEY", "secret"},
                                      {"SUMMARIZER_UPSTREAM_VLLM_SLOTS", "32"}},
                              .flags = {{"upstreams.vllm.model", "google/gemma-3-4b-it"}}});
    ASSERT_TRUE(config.ok()) << config.error().message;
    ASSERT_EQ(config->upstreams.size(), 1u);
    EXPECT_EQ(config->upstreams[0].api_key, "secret");
    EXPECT_EQ(config->upstreams[0].slots, 32);
    EXPECT_EQ(config->upstreams[0].model, "google/gemma-3-4b-it");
    const auto doc = nlohmann::json::parse(ConfigToJson(*config));
    EXPECT_EQ(doc["upstreams"]["vllm"]["api_key"], "<set>");
    EXPECT_EQ(doc["upstreams"]["vllm"]["url"], "http://10.0.0.7:8000");
    EXPECT_EQ(ConfigToJson(*config).find("secret"), std::string::npos);
}

TEST(ConfigUpstreams, SlotsAreCountedOverTheUpstreamsThatServeTheMapBucket) {
    Config config;
    config.upstreams = {{"a", "ollama", "http://a:11434", 2, "", {"16k"}}, {"b", "ollama", "http://b:11434", 3, "", {"60k"}},
                        {"c", "openai", "http://c:8000", 0, "", {}}};
    EXPECT_EQ(config.PoolSlots("16k"), 2 + kDefaultOpenAiSlots);
    EXPECT_EQ(config.PoolSlots("60k"), 3 + kDefaultOpenAiSlots);
    EXPECT_EQ(config.MapConcurrency(), 2 + kDefaultOpenAiSlots);  // the hot 16k bucket runs map-reduce
    config.map_reduce.concurrency = 5;
    EXPECT_EQ(config.MapConcurrency(), 5);
}

TEST(ConfigUpstreams, OpenAiUrlsAreNormalised) {
    EXPECT_EQ(NormalizeOpenAiUrl("http://10.0.0.7:8000"), "http://10.0.0.7:8000");
    EXPECT_EQ(NormalizeOpenAiUrl("http://vllm/v1"), "http://vllm:80");
    EXPECT_EQ(NormalizeOpenAiUrl("https://gateway.example.com/llm/v1/"), "https://gateway.example.com:443/llm");
    EXPECT_EQ(NormalizeOpenAiUrl("http://[::1]:8000"), "http://[::1]:8000");
    EXPECT_FALSE(NormalizeOpenAiUrl("ftp://x:21"));
    EXPECT_FALSE(NormalizeOpenAiUrl("10.0.0.7:8000"));  // the scheme is required
    EXPECT_FALSE(NormalizeOpenAiUrl("http://x:99999"));
    EXPECT_TRUE(ParseUpstreamItem("a=ollama@http://h:1").ok());
    EXPECT_FALSE(ParseUpstreamItem("a=http://h:1").ok());
    EXPECT_FALSE(ParseUpstreamItem("=ollama@h").ok());
}

struct BadPool {
    std::string name;
    ConfigSources sources;
    std::string must_mention;
};

class ConfigUpstreamsReject : public ::testing::TestWithParam<BadPool> {};

TEST_P(ConfigUpstreamsReject, NamingTheKeyAndItsSource) {
    auto config = LoadConfig(GetParam().sources);
    ASSERT_FALSE(config.ok()) << GetParam().name;
    EXPECT_NE(config.error().message.find(GetParam().must_mention), std::string::npos) << config.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    BadPools, ConfigUpstreamsReject,
    ::testing::Values(
        BadPool{"DuplicateNameInTheEnvironment",
                {.env = {{"SUMMARIZER_UPSTREAMS", "gpu=ollama@http://a:11434 gpu=ollama@http://b:11434"}}},
                "the name gpu is given twice (env SUMMARIZER_UPSTREAMS)"},
        BadPool{"DuplicateNameInFlags", {.upstream_flags = {"g=ollama@http://a:1", "g=openai@http://b:2"}},
                "given twice (flag --upstream)"},
        BadPool{"NotAnItem", {.env = {{"SUMMARIZER_UPSTREAMS", "gpu1 http://a"}}}, "is not NAME=KIND@URL"},
        BadPool{"UnknownKind", {.env = {{"SUMMARIZER_UPSTREAMS", "t=tgi@http://a:80"}}},
                "upstreams.t.kind = tgi (env SUMMARIZER_UPSTREAMS): must be ollama or openai"},
        BadPool{"UnreachableScheme", {.upstream_flags = {"v=openai@ftp://a:21"}},
                "upstreams.v.url = ftp://a:21 (flag --upstream): the scheme must be http or https"},
        BadPool{"BucketNobodyServes",
                {.file = WriteUpstreamsConfig("unserved", R"({"upstreams": {"a": {"url": "http://a:11434", "buckets": ["16k"]}}})")},
                "upstreams.a.buckets = 16k (file"},
        BadPool{"UnknownBucket",
                {.file = WriteUpstreamsConfig("unknown_bucket", R"({"upstreams": {"a": {"url": "http://a:11434", "buckets": ["8k"]}}})")},
                "8k is not a bucket"},
        BadPool{"ModelOnAnOllamaUpstream", {.flags = {{"upstreams.a.model", "m"}}, .upstream_flags = {"a=ollama@http://a:1"}},
                "only for kind openai"},
        BadPool{"NoUrl", {.file = WriteUpstreamsConfig("no_url", R"({"upstreams": {"a": {"kind": "openai"}}})")},
                "upstreams.a.url: must be set"},
        BadPool{"BadSlots", {.flags = {{"upstreams.a.slots", "-2"}}, .upstream_flags = {"a=ollama@http://a:1"}},
                "upstreams.a.slots"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace summarizer
