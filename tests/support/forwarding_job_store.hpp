// A JobStore that hands every call to a real store (SQLite or PostgreSQL): a test derives from it
// and overrides the one call whose timing it needs to arrange (e.g. a claim that lets a runner get
// there first). Not a fake: every answer is the real store's.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "summarizer/job_store.hpp"

namespace summarizer::testing {

class ForwardingJobStore : public JobStore {
public:
    explicit ForwardingJobStore(std::unique_ptr<JobStore> inner) : inner_(std::move(inner)) {}

    std::string Describe() const override { return inner_->Describe(); }
    StoreResult<Submission> Submit(const NewJob& job) override { return inner_->Submit(job); }
    StoreResult<Job> GetJob(const std::string& job_id, JobView view) override { return inner_->GetJob(job_id, view); }
    StoreResult<std::optional<Job>> FindByContentHash(const std::string& content_hash) override {
        return inner_->FindByContentHash(content_hash);
    }
    StoreResult<std::vector<Step>> ListSteps(const std::string& job_id) override { return inner_->ListSteps(job_id); }
    StoreResult<std::vector<Event>> ListEvents(const std::string& job_id, int64_t after_seq, int limit) override {
        return inner_->ListEvents(job_id, after_seq, limit);
    }
    StoreResult<int64_t> AppendEvent(const std::string& job_id, const NewEvent& event) override {
        return inner_->AppendEvent(job_id, event);
    }
    StoreResult<std::optional<Job>> ClaimNext(const std::string& owner, std::chrono::milliseconds lease) override {
        return inner_->ClaimNext(owner, lease);
    }
    StoreResult<std::optional<Job>> Claim(const std::string& job_id, const std::string& owner,
                                          std::chrono::milliseconds lease) override {
        return inner_->Claim(job_id, owner, lease);
    }
    StoreResult<LeaseState> RenewLease(const std::string& job_id, const std::string& owner,
                                       std::chrono::milliseconds lease) override {
        return inner_->RenewLease(job_id, owner, lease);
    }
    StoreStatus ReleaseLease(const std::string& job_id, const std::string& owner) override {
        return inner_->ReleaseLease(job_id, owner);
    }
    StoreResult<JobState> RequestCancel(const std::string& job_id) override { return inner_->RequestCancel(job_id); }
    StoreResult<bool> IsCancelRequested(const std::string& job_id) override {
        return inner_->IsCancelRequested(job_id);
    }
    StoreResult<int64_t> ExpireLeases(const std::string& except_owner) override {
        return inner_->ExpireLeases(except_owner);
    }
    StoreStatus SavePlan(const std::string& job_id, const std::string& owner, const PlanUpdate& plan) override {
        return inner_->SavePlan(job_id, owner, plan);
    }
    StoreStatus UpdateProgress(const std::string& job_id, const std::string& owner,
                               const JobProgress& progress) override {
        return inner_->UpdateProgress(job_id, owner, progress);
    }
    StoreResult<int64_t> RecordStep(const std::string& job_id, const std::string& owner, const Step& step,
                                    const std::optional<NewEvent>& event,
                                    const std::optional<JobProgress>& progress) override {
        return inner_->RecordStep(job_id, owner, step, event, progress);
    }
    StoreResult<int64_t> Finish(const std::string& job_id, const std::string& owner, const JobOutcome& outcome,
                                const std::optional<NewEvent>& event) override {
        return inner_->Finish(job_id, owner, outcome, event);
    }
    StoreResult<RetentionReport> EnforceRetention(std::chrono::milliseconds max_age,
                                                  int64_t max_total_bytes) override {
        return inner_->EnforceRetention(max_age, max_total_bytes);
    }
    StoreResult<StoreStats> Stats() override { return inner_->Stats(); }

protected:
    JobStore& inner() { return *inner_; }

private:
    std::unique_ptr<JobStore> inner_;
};

}  // namespace summarizer::testing
