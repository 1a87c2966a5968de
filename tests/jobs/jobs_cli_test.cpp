// The CLI's jobs commands against a running server: submit (and --watch) prints the id (and the
// summary), fetch prints the summary of a done job and exits 3 while one runs, cancel stops one.
#include <fstream>

#include "child_process.hpp"
#include "jobs_fixture.hpp"

namespace summarizer::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct CliRun {
    int code = -1;
    std::string output;  // stdout and stderr
};

class JobsCliTest : public JobsTest {
protected:
    CliRun Cli(std::vector<std::string> args) {
        static int n = 0;
        ChildOptions options;
        options.argv = {SUMMARIZER_BINARY, "jobs", "--url", "http://127.0.0.1:" + std::to_string(port)};
        options.argv.insert(options.argv.end(), args.begin(), args.end());
        options.log_path = dir.File("cli-" + std::to_string(++n) + ".log");
        ChildProcess child(options);
        CliRun run;
        run.code = child.WaitExit(30s);
        run.output = child.Log();
        return run;
    }
    std::string TextFile(const std::string& text) {
        const std::string path = dir.File("input.txt");
        std::ofstream(path) << text;
        return path;
    }
};

TEST_F(JobsCliTest, SubmitWatchFetchAndCancel) {
    StartJobs();
    const std::string text = "The museum reopens on Saturday after two years of work.";
    const std::string expected = "Summary: " + text.substr(0, 60);
    auto watched = Cli({"submit", TextFile(text), "--watch"});
    ASSERT_EQ(watched.code, 0) << watched.output;
    EXPECT_NE(watched.output.find(expected), std::string::npos) << watched.output;

    auto submitted = Cli({"-q", "submit", TextFile(text + " Again."), "--style", "bullets"});
    ASSERT_EQ(submitted.code, 0) << submitted.output;
    const std::string id = submitted.output.substr(0, 32);
    ASSERT_EQ(WaitFinished(id)["state"], "done");
    auto fetched = Cli({"fetch", id});
    EXPECT_EQ(fetched.code, 0) << fetched.output;
    EXPECT_NE(fetched.output.find("Summary: "), std::string::npos) << fetched.output;
    auto missing = Cli({"fetch", "0123456789abcdef0123456789abcdef"});
    EXPECT_EQ(missing.code, 1);
    EXPECT_NE(missing.output.find("404"), std::string::npos) << missing.output;

    FakeBehavior endless;
    endless.reply = std::string(4000, 'w');
    endless.piece_chars = 4;
    endless.piece_delay_ms = 10;
    fake.SetBehavior(endless);
    auto slow = Cli({"-q", "submit", TextFile("A text that takes a long time.")});
    ASSERT_EQ(slow.code, 0) << slow.output;
    const std::string slow_id = slow.output.substr(0, 32);
    ASSERT_TRUE(fake.WaitForRequests(3, 5s));  // the two before, then this one's
    auto running = Cli({"fetch", slow_id});
    EXPECT_EQ(running.code, 3) << running.output;
    auto cancelled = Cli({"cancel", slow_id});
    EXPECT_EQ(cancelled.code, 0) << cancelled.output;
    EXPECT_EQ(WaitFinished(slow_id, 5s)["state"], "cancelled");
    auto watch_cancelled = Cli({"watch", slow_id});
    EXPECT_EQ(watch_cancelled.code, 1) << watch_cancelled.output;
    EXPECT_NE(watch_cancelled.output.find("cancelled"), std::string::npos);
}

}  // namespace
}  // namespace summarizer::testing
