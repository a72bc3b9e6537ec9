#include "journal-chain.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace gapwatch {

namespace {

std::size_t put_varint(unsigned char* out, uint64_t value) {
  std::size_t n = 0;
  while (value >= 0x80) {
    out[n++] = static_cast<unsigned char>(value | 0x80);
    value >>= 7;
  }
  out[n++] = static_cast<unsigned char>(value);
  return n;
}

void put_u32le(unsigned char* out, uint32_t value) {
  out[0] = static_cast<unsigned char>(value);
  out[1] = static_cast<unsigned char>(value >> 8);
  out[2] = static_cast<unsigned char>(value >> 16);
  out[3] = static_cast<unsigned char>(value >> 24);
}

constexpr std::size_t kFrameHeaderBytes = 8;
// seq tag + longest varint + prev_hash tag and length
constexpr std::size_t kPrefixFixedBound = 1 + 10 + 2 + JournalChain::kHashBytes;

}  // namespace

JournalChain::JournalChain(const std::string& gateway_id, uint64_t last_seq, const unsigned char* last_hash)
    // An explicit fetch: with EVP_sha256() OpenSSL 3 looks the implementation up again at every
    // EVP_DigestInit_ex (a hash-table lookup under a lock; visible in a profile of the data path).
    : digest_(EVP_MD_CTX_new()), sha256_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), seq_(last_seq), written_seq_(last_seq) {
  if (digest_ == nullptr || sha256_ == nullptr) throw std::bad_alloc();
  std::memcpy(hash_, last_hash, kHashBytes);
  std::memcpy(written_hash_, last_hash, kHashBytes);
  if (!gateway_id.empty()) {
    unsigned char head[11];
    head[0] = 0x0a;  // gateway_id: field 1, length-delimited
    std::size_t n = 1 + put_varint(head + 1, gateway_id.size());
    id_field_.assign(head, head + n);
    id_field_.insert(id_field_.end(), gateway_id.begin(), gateway_id.end());
  }
}

JournalChain::~JournalChain() {
  EVP_MD_CTX_free(digest_);
  EVP_MD_free(sha256_);
}

uint64_t JournalChain::append(const unsigned char* suffix, std::size_t suffix_length, std::vector<unsigned char>* frame_out,
                              std::size_t* frame_length_out) {
  std::lock_guard<std::mutex> lock(mutex_);
  return append_locked(suffix, suffix_length, frame_out, frame_length_out);
}

uint64_t JournalChain::lock_head(unsigned char* hash_out) {
  mutex_.lock();
  std::memcpy(hash_out, hash_, kHashBytes);
  return seq_;
}

uint64_t JournalChain::append_and_unlock(const unsigned char* suffix, std::size_t suffix_length, std::vector<unsigned char>* frame_out,
                                         bool segment_starts_here) {
  std::lock_guard<std::mutex> lock(mutex_, std::adopt_lock);
  if (segment_starts_here) barriers_.push_back(seq_);
  return append_locked(suffix, suffix_length, frame_out, nullptr);
}

void JournalChain::unlock() { mutex_.unlock(); }

uint64_t JournalChain::append_locked(const unsigned char* suffix, std::size_t suffix_length, std::vector<unsigned char>* frame_out,
                                     std::size_t* frame_length_out) {
  const uint64_t seq = seq_ + 1;

  // The frame is built in place: header, prefix, hash field, suffix. The prefix is hashed from there.
  const std::size_t bound = kFrameHeaderBytes + id_field_.size() + kPrefixFixedBound + 2 + kHashBytes + suffix_length;
  const std::size_t at = buffer_.size();
  buffer_.resize(at + bound);
  unsigned char* frame = buffer_.data() + at;
  unsigned char* prefix = frame + kFrameHeaderBytes;
  std::size_t p = 0;
  if (!id_field_.empty()) std::memcpy(prefix, id_field_.data(), id_field_.size()), p += id_field_.size();
  prefix[p++] = 0x10;  // seq: field 2, varint
  p += put_varint(prefix + p, seq);
  prefix[p++] = 0x1a;  // prev_hash: field 3, length-delimited
  prefix[p++] = static_cast<unsigned char>(kHashBytes);
  std::memcpy(prefix + p, hash_, kHashBytes);
  p += kHashBytes;

  unsigned char hash[kHashBytes];
  unsigned int hash_length = 0;
  if (EVP_DigestInit_ex(digest_, sha256_, nullptr) != 1 || EVP_DigestUpdate(digest_, hash_, kHashBytes) != 1 ||
      EVP_DigestUpdate(digest_, prefix, p) != 1 || EVP_DigestUpdate(digest_, suffix, suffix_length) != 1 ||
      EVP_DigestFinal_ex(digest_, hash, &hash_length) != 1 || hash_length != kHashBytes) {
    buffer_.resize(at);
    throw std::runtime_error("SHA-256 of a journal record failed");
  }

  unsigned char* out = prefix + p;
  *out++ = 0x22;  // hash: field 4, length-delimited
  *out++ = static_cast<unsigned char>(kHashBytes);
  std::memcpy(out, hash, kHashBytes);
  out += kHashBytes;
  std::memcpy(out, suffix, suffix_length);
  out += suffix_length;
  const std::size_t payload_length = static_cast<std::size_t>(out - prefix);
  const std::size_t frame_length = kFrameHeaderBytes + payload_length;
  buffer_.resize(at + frame_length);
  frame = buffer_.data() + at;  // resize down never moves, but keep the pointer honest
  put_u32le(frame, static_cast<uint32_t>(payload_length));
  uLong crc = crc32(0L, frame, 4);
  crc = crc32(crc, frame + kFrameHeaderBytes, static_cast<uInt>(payload_length));
  put_u32le(frame + 4, static_cast<uint32_t>(crc));

  Pending entry;
  entry.seq = seq;
  entry.length = frame_length;
  std::memcpy(entry.hash, hash, kHashBytes);
  pending_.push_back(entry);
  seq_ = seq;
  std::memcpy(hash_, hash, kHashBytes);
  if (frame_out != nullptr) frame_out->assign(frame, frame + frame_length);
  if (frame_length_out != nullptr) *frame_length_out = frame_length;
  framed_bytes_ += frame_length;
  return seq;
}

uint64_t JournalChain::head(unsigned char* hash_out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::memcpy(hash_out, hash_, kHashBytes);
  return seq_;
}

uint64_t JournalChain::written_head(unsigned char* hash_out, uint64_t* size_out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::memcpy(hash_out, written_hash_, kHashBytes);
  *size_out = size_;
  return written_seq_;
}

void JournalChain::set_active(int fd, uint64_t size, uint64_t index_first_seq, uint64_t index_interval) {
  std::lock_guard<std::mutex> lock(mutex_);
  fd_ = fd;
  size_ = size;
  zeroed_to_ = size;
  if (!barriers_.empty()) barriers_.pop_front();  // the segment after that barrier is the active one now
  index_first_seq_ = index_first_seq;
  index_interval_ = index_interval;
}

JournalChain::Written JournalChain::write(uint64_t upto_seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  Written result;
  std::size_t count = 0;
  std::size_t bytes = 0;
  // Frames of the segment a rotation has begun stay pending until it is the active one.
  if (!barriers_.empty() && upto_seq > barriers_.front()) upto_seq = barriers_.front();
  for (const Pending& entry : pending_) {
    if (entry.seq > upto_seq) break;
    count++;
    bytes += entry.length;
  }
  result.size = size_;
  if (count == 0) return result;
  if (fd_ < 0) throw std::logic_error("journal chain: write() before setActive()");

  const unsigned char* data = buffer_.data() + buffer_start_;
  for (std::size_t done = 0; done < bytes;) {
    ssize_t n = pwrite(fd_, data + done, bytes - done, static_cast<off_t>(size_ + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "pwrite to the journal segment");
    }
    if (n == 0) throw std::system_error(EIO, std::generic_category(), "pwrite to the journal segment wrote nothing");
    done += static_cast<std::size_t>(n);
  }

  uint64_t offset = size_;
  for (std::size_t i = 0; i < count; i++) {
    const Pending& entry = pending_.front();
    if (index_interval_ > 0 && entry.seq >= index_first_seq_ && (entry.seq - index_first_seq_) % index_interval_ == 0) {
      result.index.emplace_back(entry.seq, offset);
    }
    offset += entry.length;
    if (i + 1 == count) {
      result.seq = entry.seq;
      std::memcpy(result.hash, entry.hash, kHashBytes);
    }
    pending_.pop_front();
  }
  size_ += bytes;
  written_seq_ = result.seq;
  std::memcpy(written_hash_, result.hash, kHashBytes);
  buffer_start_ += bytes;
  if (buffer_start_ == buffer_.size()) {
    buffer_.clear();
    buffer_start_ = 0;
  } else if (buffer_start_ > (1u << 20) && buffer_start_ * 2 > buffer_.size()) {
    // Frames beyond upto_seq stay; move them to the front once the written part dominates.
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(buffer_start_));
    buffer_start_ = 0;
  }
  result.bytes = bytes;
  result.size = size_;
  if (zeroed_to_ < size_ + kZeroLowWater) zero_ahead_locked();
  return result;
}

// Zeros past the data, so the appends after it overwrite blocks already allocated inside the file's
// size: their fdatasync then flushes the data alone, without the new size and block allocation a
// growing file makes it commit too (here 96-110 instead of 131-146 us, and less CPU). Readers take
// zeros up to the end of a file for its end (segment-format.ts), and the journal cuts them off when it
// seals or closes a segment (and at recovery). Best effort: on an error (a full disk) the file grows
// as before and the next write tries again; the data's own write reports what is wrong.
void JournalChain::zero_ahead_locked() {
  static const std::vector<unsigned char> zeros(kZeroChunk);
  uint64_t from = std::max(zeroed_to_, size_);
  const uint64_t to = size_ + kZeroChunk;
  while (from < to) {
    const ssize_t n = pwrite(fd_, zeros.data(), static_cast<std::size_t>(to - from), static_cast<off_t>(from));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    from += static_cast<uint64_t>(n);
    zeroed_to_ = from;
  }
}

void JournalChain::note_synced(uint64_t seq, const unsigned char* hash, uint64_t size, uint64_t segment) {
  std::lock_guard<std::mutex> lock(mutex_);
  sync_rounds_++;
  if (seq <= synced_seq_) return;
  synced_seq_ = seq;
  synced_size_ = size;
  synced_segment_ = segment;
  std::memcpy(synced_hash_, hash, kHashBytes);
}

uint64_t JournalChain::synced_head(unsigned char* hash_out, uint64_t* size_out, uint64_t* segment_out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::memcpy(hash_out, synced_hash_, kHashBytes);
  *size_out = synced_size_;
  *segment_out = synced_segment_;
  return synced_seq_;
}

void JournalChain::count_ack(bool durable) {
  std::lock_guard<std::mutex> lock(mutex_);
  (durable ? acks_durable_ : acks_written_)++;
}

void JournalChain::acks(uint64_t* written, uint64_t* durable, uint64_t* sync_rounds) const {
  std::lock_guard<std::mutex> lock(mutex_);
  *written = acks_written_;
  *durable = acks_durable_;
  *sync_rounds = sync_rounds_;
}

int JournalChain::sync_target(uint64_t* seq, unsigned char* hash_out, uint64_t* size_out, uint64_t* segment_out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  *segment_out = index_first_seq_;
  *seq = written_seq_;
  std::memcpy(hash_out, written_hash_, kHashBytes);
  *size_out = size_;
  return fd_ < 0 ? -1 : fcntl(fd_, F_DUPFD_CLOEXEC, 0);
}

uint64_t JournalChain::framed_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return framed_bytes_;
}

std::size_t JournalChain::pending_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return buffer_.size() - buffer_start_;
}

void JournalChain::discard() {
  std::lock_guard<std::mutex> lock(mutex_);
  buffer_.clear();
  buffer_start_ = 0;
  pending_.clear();
}

}  // namespace gapwatch
