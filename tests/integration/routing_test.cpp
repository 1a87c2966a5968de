// The router end to end: POST /summarize/plan on real texts (the bench cases), and the
// truncation guard against a fake Ollama that counts more tokens than the service estimated.
#include <fstream>
#include <sstream>

#include "service_fixture.hpp"
#include "summarizer/utf8.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;

std::string ReadCase(const std::string& name) {
    std::ifstream in(std::string(SUMMARIZER_SOURCE_DIR) + "/bench/cases/" + name, std::ios::binary);
    EXPECT_TRUE(in.good()) << name;
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The first `chars` code points of `text` repeated as needed (cut on a code point boundary).
std::string TakeChars(const std::string& text, size_t chars) {
    std::string out;
    size_t count = 0;
    while (count < chars) {
        for (size_t i = 0; i < text.size() && count < chars;) {
            const size_t start = i;
            DecodeCodePoint(text, i);
            out.append(text, start, i - start);
            ++count;
        }
        out += "\n\n";
        count += 2;
    }
    return out;
}

class RoutingTest : public ServiceTest {
protected:
    json Plan(const std::string& text, const std::string& query = "") {
        auto res = Http().Post("/summarize/plan" + query, text, "text/plain");
        EXPECT_TRUE(res);
        if (!res) return json();
        last_status = res->status;
        return json::parse(res->body);
    }
    int last_status = 0;
};

TEST_F(RoutingTest, PlansEachRouteOnRealTexts) {
    StartService();
    const std::string english = ReadCase("xl.en.txt");
    const std::string japanese = ReadCase("xl.ja.txt");

    // 30,000 English characters: ~7,000 tokens, the 16K bucket.
    json plan = Plan(TakeChars(english, 30000));
    ASSERT_EQ(last_status, 200) << plan.dump();
    EXPECT_EQ(plan["route"], "16k") << plan["reason"];
    EXPECT_EQ(plan["model"], "gemma3-4b-16k");
    EXPECT_EQ(plan["num_ctx"], 16384);
    EXPECT_LT(plan["estimated_prompt_tokens"].get<int>(), 16384 - 1200 - 512);

    // ~29,000 Japanese characters: ~19,000 tokens, over 16K: the 60K bucket.
    plan = Plan(japanese);
    ASSERT_EQ(last_status, 200) << plan.dump();
    EXPECT_EQ(plan["route"], "60k") << plan["reason"];
    EXPECT_GT(plan["estimated_prompt_tokens"].get<int>(), 16384 - 1200 - 512);
    EXPECT_FALSE(plan["reason"].get<std::string>().empty());

    // 60,000 Japanese characters: under the 150,000-char threshold, and still fits 61,440 by tokens.
    plan = Plan(TakeChars(japanese, 60000));
    EXPECT_EQ(plan["route"], "60k") << plan["reason"];
    EXPECT_LE(plan["estimated_prompt_tokens"].get<int>() + 1200 + 512, 61440);

    // 95,000 Japanese characters: under the char threshold, but over 61,440 tokens: map-reduce.
    plan = Plan(TakeChars(japanese, 95000));
    EXPECT_EQ(plan["route"], "map_reduce") << plan["reason"];
    EXPECT_GT(plan["chunks"].size(), 1u);

    // 160,000 English characters: ~36,000 tokens would fit 60K, but over HIERARCHICAL_THRESHOLD_CHARS.
    plan = Plan(TakeChars(english, 160000));
    EXPECT_EQ(plan["route"], "map_reduce") << plan["reason"];
    int64_t covered = 0;
    for (const auto& chunk : plan["chunks"]) {
        EXPECT_LE(chunk["chars"].get<int64_t>(), 30000);
        EXPECT_LE(chunk["estimated_tokens"].get<int64_t>(), 16384);
        covered += chunk["chars"].get<int64_t>();
    }
    EXPECT_EQ(covered, plan["chars"].get<int64_t>());

    // strategy=single on what fits no bucket: 422 with the reason.
    plan = Plan(TakeChars(japanese, 95000), "?strategy=single");
    EXPECT_EQ(last_status, 422);
    EXPECT_EQ(plan["error"]["code"], "input_too_large");
}

// Near the 16K limit by the service's estimate, while the fake counts 40% more tokens: a current
// Ollama refuses (400, "truncate": false); the service re-plans to the 60K bucket.
TEST_F(RoutingTest, OllamaRefusingTheLengthIsReplannedNotReturned) {
    FakeBehavior b;
    b.token_scale = 1.4;
    fake.SetBehavior(b);
    StartService();
    std::string text = TakeChars(ReadCase("xl.en.txt"), 52000);
    json plan = Plan(text);
    ASSERT_EQ(plan["route"], "16k") << plan["reason"];

    auto res = Http().Post("/summarize", text, "text/plain");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    json doc = json::parse(res->body);
    EXPECT_EQ(doc["route"], "60k");
    EXPECT_NE(doc["reason"].get<std::string>().find("re-planned"), std::string::npos) << doc["reason"];
    auto requests = fake.Requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0].body["options"]["num_ctx"], 16384);
    EXPECT_EQ(requests[1].body["options"]["num_ctx"], 61440);
    for (const auto& r : requests) EXPECT_EQ(r.body["truncate"], false);

    auto metrics = Http().Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->body.find("summarizer_context_overflows_total 1"), std::string::npos) << metrics->body;
}

// An old Ollama ignores "truncate": false and cuts silently, reporting prompt_eval_count ==
// num_ctx. That summary is never returned: the service re-plans and says so.
TEST_F(RoutingTest, SilentlyCutPromptIsReplannedNotReturned) {
    FakeBehavior b;
    b.token_scale = 1.4;
    b.ignore_truncate_flag = true;
    fake.SetBehavior(b);
    StartService();
    std::string text = TakeChars(ReadCase("xl.en.txt"), 52000);

    auto res = Http().Post("/summarize", text, "text/plain");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    json doc = json::parse(res->body);
    EXPECT_EQ(doc["route"], "60k");
    auto requests = fake.Requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0].body["options"]["num_ctx"], 16384);
    EXPECT_EQ(requests[1].body["options"]["num_ctx"], 61440);
    EXPECT_EQ(doc["usage"]["upstream_requests"], 2);
    EXPECT_NE(doc["reason"].get<std::string>().find("re-planned"), std::string::npos) << doc["reason"];
}

}  // namespace
}  // namespace summarizer::testing
