// SseReader: the events of a Server-Sent Events stream, whatever its chunking (inside "data:", inside
// a line break, inside a multi-byte character), its line breaks, its comments and multi-line data.
#include "summarizer/sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace summarizer {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;  // (event, data)

Pairs Read(std::string_view stream, const std::vector<size_t>& cuts, bool finish = false) {
    SseReader reader;
    Pairs events;
    const auto take = [&](std::vector<SseEvent> batch) {
        for (auto& e : batch) events.emplace_back(std::move(e.event), std::move(e.data));
    };
    size_t start = 0;
    for (const size_t cut : cuts) {
        take(reader.Feed(stream.substr(start, cut - start)));
        start = cut;
    }
    take(reader.Feed(stream.substr(start)));
    if (finish) take(reader.Finish());
    return events;
}

TEST(SseReaderTest, ParsesEventsFedOneByteAtATime) {
    const std::string stream =
        ": ping\n\nevent: meta\ndata: {\"route\":\"16k\"}\n\nevent: delta\r\ndata: {\"text\":\"a\"}\r\n\r\n"
        "data: line1\ndata: line2\n\nevent: done\ndata:{}\n\n";
    SseReader reader;
    std::vector<SseEvent> events;
    for (const char c : stream) {
        for (auto& event : reader.Feed(std::string_view(&c, 1))) events.push_back(std::move(event));
    }
    ASSERT_EQ(events.size(), 4u);
    EXPECT_EQ(events[0].event, "meta");
    EXPECT_EQ(events[0].data, "{\"route\":\"16k\"}");
    EXPECT_EQ(events[1].event, "delta");
    EXPECT_EQ(events[1].data, "{\"text\":\"a\"}");
    EXPECT_EQ(events[2].event, "message");
    EXPECT_EQ(events[2].data, "line1\nline2");
    EXPECT_EQ(events[3].event, "done");
    EXPECT_EQ(events[3].data, "{}");
}

TEST(SseReaderTest, EveryCutGivesTheSameEvents) {
    // Cuts land inside "data:", inside "\r\n", inside 日 and 😀.
    const std::string stream =
        "event: delta\r\ndata: {\"text\":\"日本😀\"}\r\n\r\ndata: a\rdata: b\r\revent: done\ndata: {}\n\n";
    const Pairs expected = {{"delta", "{\"text\":\"日本😀\"}"}, {"message", "a\nb"}, {"done", "{}"}};
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
        EXPECT_EQ(Read(stream, {cut}), expected) << "cut at " << cut;
        for (size_t second = cut; second <= stream.size(); second += 7) {
            EXPECT_EQ(Read(stream, {cut, second}), expected) << "cuts at " << cut << ", " << second;
        }
    }
}

TEST(SseReaderTest, FieldsAsTheSpecReadsThem) {
    // No space after the colon; one space dropped, a second kept; a line without a colon is a field
    // with an empty value; "data" alone adds an empty line; unknown fields and "id" are ignored.
    EXPECT_EQ(Read("data:x\n\n", {}), (Pairs{{"message", "x"}}));
    EXPECT_EQ(Read("data:  two\n\n", {}), (Pairs{{"message", " two"}}));
    EXPECT_EQ(Read("data\ndata\n\n", {}), (Pairs{{"message", "\n"}}));
    EXPECT_EQ(Read("data: a:b\n\n", {}), (Pairs{{"message", "a:b"}}));
    EXPECT_EQ(Read("id: 7\nretry: 10\ncolour: blue\ndata: x\n\n", {}), (Pairs{{"message", "x"}}));
    EXPECT_EQ(Read("event:\ndata: x\n\n", {}), (Pairs{{"message", "x"}}));  // an empty name is "message"
}

TEST(SseReaderTest, CommentsAndEventsWithoutDataAreNotDispatched) {
    EXPECT_TRUE(Read(": keep-alive\n\n:\n\n", {}).empty());
    EXPECT_TRUE(Read("event: meta\n\n", {}).empty());
    // The name of an event without data does not leak into the next one.
    EXPECT_EQ(Read("event: meta\n\ndata: x\n\n", {}), (Pairs{{"message", "x"}}));
}

TEST(SseReaderTest, EmptyInputHasNoEvents) {
    EXPECT_TRUE(Read("", {}).empty());
    EXPECT_TRUE(Read("", {0}, true).empty());
    EXPECT_TRUE(Read("\n\n\r\n", {}, true).empty());
}

TEST(SseReaderTest, FinishDispatchesAnEventCutOffBeforeItsBlankLine) {
    EXPECT_TRUE(Read("event: done\ndata: {}", {}).empty());
    EXPECT_EQ(Read("event: done\ndata: {}", {}, true), (Pairs{{"done", "{}"}}));
    EXPECT_EQ(Read("event: done\ndata: {}\n", {}, true), (Pairs{{"done", "{}"}}));
    EXPECT_EQ(Read("event: done\ndata: {}\r", {}, true), (Pairs{{"done", "{}"}}));
    EXPECT_EQ(Read("data: a\n\nevent: x", {}, true), (Pairs{{"message", "a"}}));  // no data: nothing more
}

TEST(SseReaderTest, DropsALeadingByteOrderMark) {
    const std::string stream =
        "\xEF\xBB\xBF"
        "data: x\n\n\xEF\xBB\xBF"
        "data: y\n\n";
    for (size_t cut = 0; cut <= 4; ++cut) {
        // Only the first one: later it is part of a field name, and that field is unknown.
        EXPECT_EQ(Read(stream, {cut}), (Pairs{{"message", "x"}})) << "cut at " << cut;
    }
}

TEST(SseReaderTest, KeepsEachEventsIdForLastEventId) {
    SseReader reader;
    auto events = reader.Feed("id: 7\nevent: progress\ndata: {}\n\ndata: no id\n\nid: 9\ndata: x\n\n");
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(events[0].id, "7");
    EXPECT_EQ(events[0].event, "progress");
    EXPECT_EQ(events[1].id, "");
    EXPECT_EQ(events[2].id, "9");
}

}  // namespace
}  // namespace summarizer
