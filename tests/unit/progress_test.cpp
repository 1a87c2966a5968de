// The time-left model of progress events: its prior, its calibration by observed calls, and the
// shape of a level run in parallel.
#include "summarizer/progress.hpp"

#include <gtest/gtest.h>

namespace summarizer {
namespace {

using namespace std::chrono_literals;

TEST(TimeLeftEstimator, StartsFromTheRatesAndTheFillPrior) {
    TimeLeftEstimator estimator(1000, 50);  // 1 ms per prompt token, 20 ms per output token
    EXPECT_EQ(estimator.ExpectedOutput(400), 300);  // 75 % of the cap
    EXPECT_DOUBLE_EQ(estimator.CallMs({2000, 100}), 2000 + 2000);
}

TEST(TimeLeftEstimator, ALevelTakesItsShareOfTheSlotsButNoLessThanItsLongestCall) {
    TimeLeftEstimator estimator(1000, 50);
    const std::vector<TimeLeftEstimator::Call> four(4, {1000, 0});  // 1 s each
    EXPECT_DOUBLE_EQ(estimator.LevelMs(four, 1), 4000);
    EXPECT_DOUBLE_EQ(estimator.LevelMs(four, 2), 2000);
    EXPECT_DOUBLE_EQ(estimator.LevelMs(four, 8), 1000);
    EXPECT_DOUBLE_EQ(estimator.LevelMs({}, 2), 0);
}

TEST(TimeLeftEstimator, ObservedCallsCalibrateTheScaleAndTheFill) {
    TimeLeftEstimator estimator(1000, 50);
    // The calls really take a tenth of what the rates say, and fill half their cap.
    for (int i = 0; i < 20; ++i) estimator.Observe(1000, 200, 400, 500ms);  // rates: 1 s + 4 s = 5 s
    const TimeCalibration c = estimator.calibration();
    EXPECT_NEAR(c.scale, 0.1, 0.05);
    EXPECT_NEAR(c.fill, 0.5, 0.02);
    EXPECT_NEAR(estimator.CallMs({1000, 200}), 500, 250);
    EXPECT_NEAR(static_cast<double>(estimator.ExpectedOutput(400)), 200, 10);
}

TEST(TimeLeftEstimator, ThePriorWeighsAsOneCall) {
    TimeLeftEstimator estimator(1000, 50, TimeCalibration{2.0, 0.75});
    estimator.Observe(1000, 0, 0, 1000ms);  // exactly the rates: scale 1
    EXPECT_NEAR(estimator.calibration().scale, 1.5, 1e-9);
    EXPECT_DOUBLE_EQ(estimator.calibration().fill, 0.75);  // no cap observed
}

TEST(TimeLeftEstimator, NothingObservedFromAnEmptyCall) {
    TimeLeftEstimator estimator(1000, 50);
    estimator.Observe(0, 0, 400, 5s);
    EXPECT_DOUBLE_EQ(estimator.calibration().scale, 1.0);
}

}  // namespace
}  // namespace summarizer
