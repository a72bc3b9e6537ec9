#ifndef GAPWATCH_CHAIN_SYNCER_H
#define GAPWATCH_CHAIN_SYNCER_H

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace gapwatch {

class JournalChain;

// A native data path's sync thread (pg-datapath.cc, http-datapath.cc): one fdatasync of the journal's
// active segment covers every record written before it starts (group commit). It runs when a request
// waits for one (request()), and while the path has live connections (running() not 0), within
// kSyncWithinMs of any write to the chain — their safe requests' records, acknowledged as written,
// and their outcomes — and once more when the last connection closes, so the journal needs no
// fdatasync of its own for them and learns of the loop's progress less often. Each round ends with `done(covered, "")`; a failed fdatasync ends the thread
// with `done(0, why)` (fail-stop, as the journal does). `done` runs on the sync thread. With a
// `spacing`, rounds start at least that far apart (a round due sooner waits): more requests share each
// fdatasync, for as much more wait — fewer rounds cost less CPU when many requests wait at once.
class ChainSyncer {
 public:
  using Done = std::function<void(uint64_t covered, const std::string& failure)>;

  ChainSyncer(JournalChain* chain, Done done, std::chrono::microseconds spacing = std::chrono::microseconds(0));
  ~ChainSyncer();
  ChainSyncer(const ChainSyncer&) = delete;
  ChainSyncer& operator=(const ChainSyncer&) = delete;

  // A round covering at least `seq` is wanted now.
  void request(uint64_t seq);
  // Live connections: the timed rounds run while their count is not 0.
  void connection_opened();
  void connection_closed();
  // Joins the thread (idempotent).
  void stop();

  static constexpr int kSyncWithinMs = 5;

 private:
  void run();

  JournalChain* chain_;
  Done done_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t requested_ = 0;
  bool stop_ = false;
  std::atomic<size_t> running_{0};
  const std::chrono::microseconds spacing_;
};

}  // namespace gapwatch

#endif
