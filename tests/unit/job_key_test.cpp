// The result cache's key: SHA-256 over the text, the options and the model configuration, and
// nothing else; a job's options stored and read back.
#include "summarizer/job_key.hpp"

#include <gtest/gtest.h>

namespace summarizer {
namespace {

TEST(JobKey, Sha256OfKnownVectors) {
    EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

SummarizeRequest Request(std::string text = "The council met on Tuesday.") {
    SummarizeRequest r;
    r.text = std::move(text);
    return r;
}

TEST(JobKey, TheSameRequestHasTheSameHashWhateverItsIdOrPolicy) {
    Config config;
    SummarizeRequest a = Request(), b = Request();
    a.request_id = "one";
    b.request_id = "two";
    EXPECT_EQ(ContentHash(a, config), ContentHash(b, config));
    EXPECT_EQ(ContentHash(a, config).size(), 64u);
    Config cost = config;
    cost.routing.policy = "cost";
    EXPECT_EQ(ContentHash(a, config), ContentHash(a, cost)) << "the policy picks a route, not what is said";
    SummarizeRequest explicit_cap = a;
    explicit_cap.max_tokens = config.generation.num_predict;
    EXPECT_EQ(ContentHash(a, config), ContentHash(explicit_cap, config)) << "max_tokens 0 is the default cap";
}

TEST(JobKey, TextOptionsAndModelConfigurationChangeTheHash) {
    const Config config;
    const SummarizeRequest base = Request();
    const std::string hash = ContentHash(base, config);
    auto differs = [&](const SummarizeRequest& r, const Config& c, const char* what) {
        EXPECT_NE(ContentHash(r, c), hash) << what;
    };
    SummarizeRequest r = base;
    r.text += " ";
    differs(r, config, "text");
    r = base;
    r.language = "ja";
    differs(r, config, "language");
    r = base;
    r.style = SummaryStyle::kBullets;
    differs(r, config, "style");
    r = base;
    r.max_tokens = 300;
    differs(r, config, "max_tokens");
    r = base;
    r.strategy = Strategy::kMapReduce;
    differs(r, config, "strategy");
    Config c = config;
    c.buckets[0].model = "another-model";
    differs(base, c, "a bucket's model");
    c = config;
    c.buckets[1].num_ctx = 32768;
    differs(base, c, "a bucket's num_ctx");
    c = config;
    c.generation.temperature = 0.7;
    differs(base, c, "temperature");
    c = config;
    c.map_reduce.map_num_predict = 200;
    differs(base, c, "map caps");
    c = config;
    c.routing.hierarchical_chunk_max_chars = 20000;
    differs(base, c, "chunking");
}

TEST(JobKey, StoredOptionsReadBack) {
    SummarizeRequest r = Request();
    r.language = "ja";
    r.style = SummaryStyle::kBullets;
    r.max_tokens = 321;
    r.strategy = Strategy::kMapReduce;
    auto back = RequestFromStored("text", RequestOptionsJson(r), "job-1");
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->text, "text");
    EXPECT_EQ(back->request_id, "job-1");
    EXPECT_EQ(back->language, "ja");
    EXPECT_EQ(back->style, SummaryStyle::kBullets);
    EXPECT_EQ(back->max_tokens, 321);
    EXPECT_EQ(back->strategy, Strategy::kMapReduce);
    EXPECT_FALSE(RequestFromStored("t", R"({"style": "poem"})", "x").ok());
    EXPECT_FALSE(RequestFromStored("t", "not json", "x").ok());
}

TEST(JobKey, PasswordsAreRedactedFromConnectionUrls) {
    EXPECT_EQ(RedactPassword("postgresql://app:s3cret@db:5432/jobs"), "postgresql://app:<set>@db:5432/jobs");
    EXPECT_EQ(RedactPassword("postgresql://app@db/jobs?password=s3cret&sslmode=require"),
              "postgresql://app@db/jobs?password=<set>&sslmode=require");
    EXPECT_EQ(RedactPassword("data/jobs.db"), "data/jobs.db");
}

}  // namespace
}  // namespace summarizer
