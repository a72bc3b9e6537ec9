#include "ring-reader.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>

namespace gapwatch {

RingReader::RingReader(const SensorSession& session, const ReaderOptions& options, Deliver deliver)
    : session_(session), options_(options), deliver_(std::move(deliver)) {
  ring_ = ring_buffer__new(session_.ring_fd(), on_sample, this, nullptr);
  if (ring_ == nullptr) {
    int error_number = errno;
    throw SensorError("SENSOR_ERR_BPF_UNAVAILABLE",
                      std::string("mapping the sensor ring buffer failed: ") + std::strerror(error_number));
  }
  KernelDrops drops = session_.read_drops();
  for (std::size_t type = 0; type < GW_EVENT_TYPE_COUNT; ++type) kernel_seen_[type] = drops.per_type[type];
  batch_.reserve(options_.batch_bytes + sizeof(gw_exec) + GW_ARGV_AREA);
  last_loss_check_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { run(); });
}

RingReader::~RingReader() {
  stop();
  if (ring_ != nullptr) ring_buffer__free(ring_);
}

void RingReader::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  thread_.join();
}

int RingReader::on_sample(void* context, void* data, std::size_t size) {
  static_cast<RingReader*>(context)->append(data, size);
  return 0;
}

void RingReader::run() {
  while (!stopping_.load(std::memory_order_relaxed)) {
    // Wakes early only when the kernel forced a wakeup (wakeup_bytes queued).
    ring_buffer__poll(ring_, static_cast<int>(options_.flush_ms));
    // Records submitted with BPF_RB_NO_WAKEUP: take them on the timer.
    ring_buffer__consume(ring_);
    auto now = std::chrono::steady_clock::now();
    if (now - last_loss_check_ >= std::chrono::milliseconds(options_.loss_check_ms)) {
      last_loss_check_ = now;
      check_loss();
    }
    if (!batch_.empty() && now - batch_started_ >= std::chrono::milliseconds(options_.flush_ms)) flush();
  }
  ring_buffer__consume(ring_);
  check_loss();
  flush();
}

void RingReader::append(const void* data, std::size_t size) {
  if (batch_.empty()) batch_started_ = std::chrono::steady_clock::now();
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  batch_.insert(batch_.end(), bytes, bytes + size);
  ++batch_records_;
  if (batch_.size() >= options_.batch_bytes) flush();
}

void RingReader::check_loss() {
  KernelDrops drops = session_.read_drops();
  gw_loss loss{};
  bool any = false;
  for (std::size_t type = 0; type < GW_EVENT_TYPE_COUNT; ++type) {
    loss.kernel_drops[type] = pending_kernel_[type] + (drops.per_type[type] - kernel_seen_[type]);
    loss.queue_drops[type] = pending_queue_[type];
    kernel_seen_[type] = drops.per_type[type];
    pending_kernel_[type] = 0;
    pending_queue_[type] = 0;
    any = any || loss.kernel_drops[type] != 0 || loss.queue_drops[type] != 0;
  }
  if (!any) return;
  loss.header.type = GW_EVENT_LOSS;
  loss.header.size = sizeof loss;
  timespec now{};
  clock_gettime(CLOCK_BOOTTIME, &now);
  loss.header.time_ns = static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull + now.tv_nsec;
  append(&loss, sizeof loss);
}

void RingReader::flush() {
  if (batch_.empty()) return;
  auto* batch = new std::vector<std::uint8_t>();
  batch->reserve(batch_.capacity());
  batch->swap(batch_);
  std::uint32_t records = batch_records_;
  std::size_t size = batch->size();
  batch_records_ = 0;
  if (deliver_(batch)) {
    records_ += records;
    bytes_ += size;
    ++batches_;
    return;
  }
  count_dropped(*batch);
  ++queue_dropped_batches_;
  delete batch;
}

// A batch JavaScript could not take: count its records as queue drops and
// carry forward any loss record inside it, so no count is lost with it.
void RingReader::count_dropped(const std::vector<std::uint8_t>& batch) {
  std::size_t offset = 0;
  while (offset + sizeof(gw_header) <= batch.size()) {
    gw_header header;
    std::memcpy(&header, batch.data() + offset, sizeof header);
    if (header.size < sizeof(gw_header) || offset + header.size > batch.size()) break;
    if (header.type == GW_EVENT_LOSS && header.size >= sizeof(gw_loss)) {
      gw_loss loss;
      std::memcpy(&loss, batch.data() + offset, sizeof loss);
      for (std::size_t type = 0; type < GW_EVENT_TYPE_COUNT; ++type) {
        pending_kernel_[type] += loss.kernel_drops[type];
        pending_queue_[type] += loss.queue_drops[type];
      }
    } else if (header.type < GW_EVENT_TYPE_COUNT) {
      ++pending_queue_[header.type];
      ++queue_drops_[header.type];
    }
    offset += header.size;
  }
}

ReaderStats RingReader::stats() const {
  ReaderStats stats;
  stats.records = records_;
  stats.batches = batches_;
  stats.bytes = bytes_;
  for (std::size_t type = 0; type < GW_EVENT_TYPE_COUNT; ++type) stats.queue_drops[type] = queue_drops_[type];
  stats.queue_dropped_batches = queue_dropped_batches_;
  return stats;
}

}  // namespace gapwatch
