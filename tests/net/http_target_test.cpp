// ParseRequestTarget (include/summarizer/http_target.hpp): the path and query of a request.
#include "summarizer/http_target.hpp"

#include <gtest/gtest.h>

namespace summarizer {
namespace {

RequestTarget Parsed(std::string_view target) {
    auto result = ParseRequestTarget(target);
    EXPECT_TRUE(result.ok()) << target << ": " << (result.ok() ? "" : result.error().message);
    return result.ok() ? *result : RequestTarget{};
}

TEST(HttpTargetTest, PathIsPercentDecodedAndPlusStays) {
    EXPECT_EQ(Parsed("/summarize").path, "/summarize");
    EXPECT_EQ(Parsed("/a%20b+c").path, "/a b+c");
    EXPECT_EQ(Parsed("/%E6%97%A5%e6%9c%ac").path, "/\xE6\x97\xA5\xE6\x9C\xAC");
    EXPECT_EQ(Parsed("/a%2Fb").path, "/a/b");
}

TEST(HttpTargetTest, QueryIsSplitAndDecodedWithPlusAsSpace) {
    const auto target = Parsed("/s?language=ja&style=a+b%2Bc&flag&&empty=&x=%3D%26");
    EXPECT_EQ(target.path, "/s");
    EXPECT_EQ(target.query.at("language"), "ja");
    EXPECT_EQ(target.query.at("style"), "a b+c");
    EXPECT_EQ(target.query.at("flag"), "");
    EXPECT_EQ(target.query.at("empty"), "");
    EXPECT_EQ(target.query.at("x"), "=&");
    EXPECT_EQ(target.query.size(), 5u);
}

TEST(HttpTargetTest, RepeatedQueryNameKeepsTheLast) { EXPECT_EQ(Parsed("/?a=1&a=2").query.at("a"), "2"); }

TEST(HttpTargetTest, QueryValuesMayBeAnyBytes) { EXPECT_EQ(Parsed("/?t=%FF%00").query.at("t"), std::string("\xFF\0", 2)); }

TEST(HttpTargetTest, AbsoluteAndAsteriskForms) {
    EXPECT_EQ(Parsed("http://example.com:8080/healthz?x=1").path, "/healthz");
    EXPECT_EQ(Parsed("HTTPS://example.com").path, "/");
    EXPECT_EQ(Parsed("http://example.com?x=1").query.at("x"), "1");
    EXPECT_EQ(Parsed("*").path, "*");
}

TEST(HttpTargetTest, FragmentIsDropped) {
    const auto target = Parsed("/p?x=1#frag?y=2");
    EXPECT_EQ(target.path, "/p");
    EXPECT_EQ(target.query.size(), 1u);
}

TEST(HttpTargetTest, MalformedTargetsAreErrors) {
    for (const char* bad : {"", "summarize", "ftp://x/", "/%", "/%4", "/%zz", "/%00", "/a%0Ab", "/%7F", "/?a=%",
                            "/?%g0=1"}) {
        auto result = ParseRequestTarget(bad);
        EXPECT_FALSE(result.ok()) << bad;
        if (!result.ok()) {
            EXPECT_EQ(result.error().code, ErrorCode::kInvalidRequest) << bad;
            EXPECT_FALSE(result.error().message.empty());
        }
    }
}

// Such a path names no endpoint (a 404 from the routes, as with the transport before); logs see U+FFFD.
TEST(HttpTargetTest, APathOfInvalidUtf8IsTakenWithReplacementCharacters) {
    EXPECT_EQ(Parsed("/%FF%FE").path, "/\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(Parsed("/a%C3").path, "/a\xEF\xBF\xBD");
    EXPECT_EQ(Parsed("/\xFFx").path, "/\xEF\xBF\xBDx");
}

TEST(HttpTargetTest, EncodeThenDecodeIsTheIdentity) {
    const std::string raw("/a b/\xE6\x97\xA5?&=+%\xFF");
    std::string back;
    ASSERT_TRUE(PercentDecode(PercentEncode(raw, true), false, back));
    EXPECT_EQ(back, raw);
    ASSERT_TRUE(PercentDecode(PercentEncode(raw, false), true, back));
    EXPECT_EQ(back, raw);
}

}  // namespace
}  // namespace summarizer
