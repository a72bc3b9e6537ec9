#include "chain-syncer.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <chrono>

#include "journal-chain.h"

namespace gapwatch {

ChainSyncer::ChainSyncer(JournalChain* chain, Done done, std::chrono::microseconds spacing) : chain_(chain), done_(std::move(done)), spacing_(spacing) {
  thread_ = std::thread([this] { run(); });
}

ChainSyncer::~ChainSyncer() { stop(); }

void ChainSyncer::request(uint64_t seq) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (seq <= requested_) return;
    requested_ = seq;
  }
  cv_.notify_one();
}

void ChainSyncer::connection_opened() {
  if (running_.fetch_add(1, std::memory_order_relaxed) == 0) {
    // The thread waits without a timeout while nothing runs: its timed rounds start now.
    std::lock_guard<std::mutex> lock(mutex_);
    cv_.notify_one();
  }
}

void ChainSyncer::connection_closed() {
  if (running_.fetch_sub(1, std::memory_order_relaxed) != 1) return;
  // The last one: its timed rounds stop, so one more covers what was written up to now.
  unsigned char hash[JournalChain::kHashBytes];
  uint64_t size = 0;
  request(chain_->written_head(hash, &size));
}

void ChainSyncer::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void ChainSyncer::run() {
  uint64_t done = 0;
  auto last_start = std::chrono::steady_clock::now() - spacing_;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto due = [&] { return stop_ || requested_ > done; };
      const auto running = [&] { return running_.load(std::memory_order_relaxed) > 0; };
      bool requested = true;
      if (!running()) cv_.wait(lock, [&] { return due() || running(); });
      if (!due()) requested = cv_.wait_for(lock, std::chrono::milliseconds(kSyncWithinMs), due);
      if (stop_) return;
      if (!requested) {
        lock.unlock();
        unsigned char head_hash[JournalChain::kHashBytes];
        uint64_t size = 0;
        if (chain_->written_head(head_hash, &size) <= done) continue;
      }
    }
    // Rounds start at least spacing_ apart: what arrives meanwhile joins the round.
    const auto next = last_start + spacing_;
    if (spacing_.count() > 0 && std::chrono::steady_clock::now() < next) std::this_thread::sleep_until(next);
    last_start = std::chrono::steady_clock::now();
    unsigned char hash[JournalChain::kHashBytes];
    uint64_t size = 0;
    uint64_t covered = 0;
    uint64_t segment = 0;
    const int fd = chain_->sync_target(&covered, hash, &size, &segment);
    const bool synced = fd >= 0 && fdatasync(fd) == 0;
    const int error = errno;
    if (fd >= 0) close(fd);
    if (!synced) {
      done_(0, std::string("journal fdatasync failed: ") + strerror(fd < 0 ? EBADF : error));
      return;
    }
    chain_->note_synced(covered, hash, size, segment);
    done = covered;
    done_(covered, std::string());
  }
}

}  // namespace gapwatch
