#ifndef GAPWATCH_RING_READER_H
#define GAPWATCH_RING_READER_H

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "../bpf/events.h"
#include "sensor-session.h"

struct ring_buffer;

namespace gapwatch {

struct ReaderOptions {
  // A batch is handed over once it holds this many bytes ...
  std::uint32_t batch_bytes = 256u << 10;
  // ... or once its first record is this old. Also the poll timeout: records
  // the kernel queued without a wakeup wait at most this long.
  std::uint32_t flush_ms = 20;
  // How often the kernel's drop counters are compared with the last look.
  std::uint32_t loss_check_ms = 100;
};

struct ReaderStats {
  std::uint64_t records = 0;
  std::uint64_t batches = 0;
  std::uint64_t bytes = 0;
  std::array<std::uint64_t, GW_EVENT_TYPE_COUNT> queue_drops{};
  std::uint64_t queue_dropped_batches = 0;
};

// Drains the sensor's ring buffer on its own thread and packs records, back
// to back as the kernel wrote them, into batches. A batch that JavaScript
// cannot take (queue full) is counted per event type and reported in the next
// gw_loss record, which travels in-band with the records it follows.
class RingReader {
 public:
  // Takes ownership of the batch when it returns true; false means the
  // consumer's queue is full and the batch stays with the reader.
  using Deliver = std::function<bool(std::vector<std::uint8_t>* batch)>;

  RingReader(const SensorSession& session, const ReaderOptions& options, Deliver deliver);
  ~RingReader();
  RingReader(const RingReader&) = delete;
  RingReader& operator=(const RingReader&) = delete;

  // Drains what is left, delivers the last batch and joins the thread.
  void stop();
  ReaderStats stats() const;

 private:
  static int on_sample(void* context, void* data, std::size_t size);
  void run();
  void append(const void* data, std::size_t size);
  void check_loss();
  void flush();
  void count_dropped(const std::vector<std::uint8_t>& batch);

  const SensorSession& session_;
  ReaderOptions options_;
  Deliver deliver_;
  ring_buffer* ring_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  std::vector<std::uint8_t> batch_;
  std::uint32_t batch_records_ = 0;
  std::chrono::steady_clock::time_point batch_started_;
  std::chrono::steady_clock::time_point last_loss_check_;
  std::array<std::uint64_t, GW_EVENT_TYPE_COUNT> kernel_seen_{};
  // Losses not yet carried by a delivered gw_loss record.
  std::array<std::uint64_t, GW_EVENT_TYPE_COUNT> pending_kernel_{};
  std::array<std::uint64_t, GW_EVENT_TYPE_COUNT> pending_queue_{};

  std::atomic<std::uint64_t> records_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::array<std::atomic<std::uint64_t>, GW_EVENT_TYPE_COUNT> queue_drops_{};
  std::atomic<std::uint64_t> queue_dropped_batches_{0};
};

}  // namespace gapwatch

#endif
