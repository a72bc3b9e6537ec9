#ifndef GAPWATCH_JOURNAL_CHAIN_H
#define GAPWATCH_JOURNAL_CHAIN_H

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace gapwatch {

// The write side of the audit journal's hash chain (gateway/journal/record-chain.ts is the
// reference): each appended record gets the next seq, hash = SHA-256(prev_hash || prefix || suffix),
// and a frame (u32le length || u32le CRC-32(length || payload) || payload, payload = prefix ||
// hash field || suffix) in a pending buffer; write() puts the oldest pending frames into the active
// segment with one pwrite. The caller encodes the suffix (time and body, canonical protobuf) and owns
// everything around it: acknowledgements, fdatasync, rotation, checkpoints.
//
// Every method takes the object's mutex, so appends may come from more than one thread (the native
// data paths append and write their own write-ahead records without a trip through JavaScript).
class JournalChain {
 public:
  static constexpr std::size_t kHashBytes = 32;

  struct Written {
    std::size_t bytes = 0;       // 0: nothing was pending up to the requested seq
    uint64_t seq = 0;            // last record written (valid when bytes > 0)
    unsigned char hash[kHashBytes] = {};
    uint64_t size = 0;           // active segment size after the write
    // (seq, offset) of each written record with (seq - index_first_seq) % index_interval == 0
    std::vector<std::pair<uint64_t, uint64_t>> index;
  };

  JournalChain(const std::string& gateway_id, uint64_t last_seq, const unsigned char* last_hash);
  ~JournalChain();
  JournalChain(const JournalChain&) = delete;
  JournalChain& operator=(const JournalChain&) = delete;

  // Chains one record; returns its seq. `frame_out`, when given, receives a copy of its frame, and
  // `frame_length_out` its length.
  uint64_t append(const unsigned char* suffix, std::size_t suffix_length, std::vector<unsigned char>* frame_out,
                  std::size_t* frame_length_out = nullptr);

  // Last assigned seq and hash (the head of the chain, written or not).
  uint64_t head(unsigned char* hash_out) const;

  // A record that must follow the head it reads (a checkpoint signs the head it covers): lock_head()
  // takes the lock and returns the head; append_and_unlock() appends and releases it (unlock() alone
  // when the caller gave up). `segment_starts_here`: the record opens the next segment — frames after
  // the current head are not written until set_active() installs that segment.
  uint64_t lock_head(unsigned char* hash_out);
  uint64_t append_and_unlock(const unsigned char* suffix, std::size_t suffix_length, std::vector<unsigned char>* frame_out,
                             bool segment_starts_here);
  void unlock();

  // Last written seq and hash, and the active segment's size (what any writer has put in the file).
  uint64_t written_head(unsigned char* hash_out, uint64_t* size_out) const;

  // Where write() puts frames: an open segment file, its current size, and the offset index's
  // anchor (the segment's first seq) and interval.
  void set_active(int fd, uint64_t size, uint64_t index_first_seq, uint64_t index_interval);

  // Writes the pending frames with seq <= upto_seq (oldest first) at the end of the active segment.
  // Throws std::system_error when the write fails; the frames then stay pending. Keeps zeros written
  // ahead of the data (zero_ahead_locked()), so the segment's size and blocks rarely change under an
  // fdatasync.
  Written write(uint64_t upto_seq);

  std::size_t pending_bytes() const;
  // Bytes of every frame appended so far (by any writer): a journal's segment-size accounting.
  uint64_t framed_bytes() const;
  // What a native data path's fdatasync covers, read together under the lock: a dup of the active
  // segment's descriptor (the caller closes it; a rotation may close the original meanwhile) and the
  // last record written to it. -1 when no segment is active.
  int sync_target(uint64_t* seq, unsigned char* hash_out, uint64_t* size_out, uint64_t* segment_out) const;
  // A native data path's fdatasync covered the file up to `seq` (whose hash and size it read first).
  // `size` is the size of the segment whose first seq is `segment` (the sync_target's).
  void note_synced(uint64_t seq, const unsigned char* hash, uint64_t size, uint64_t segment);
  uint64_t synced_head(unsigned char* hash_out, uint64_t* size_out, uint64_t* segment_out) const;
  // Requests a native data path wrote ahead, by the level they waited for, and the fdatasync rounds
  // native data paths ran (note_synced calls) — the journal's stats.
  void count_ack(bool durable);
  void acks(uint64_t* written, uint64_t* durable, uint64_t* sync_rounds) const;
  // Drops every pending frame (the journal failed: they will never be written).
  void discard();

 private:
  uint64_t append_locked(const unsigned char* suffix, std::size_t suffix_length, std::vector<unsigned char>* frame_out,
                         std::size_t* frame_length_out);
  void zero_ahead_locked();

  static constexpr uint64_t kZeroChunk = 2u << 20;     // zeros written ahead of the data, at most
  static constexpr uint64_t kZeroLowWater = 1u << 20;  // written again when fewer are left ahead

  struct Pending {
    uint64_t seq;
    std::size_t length;
    unsigned char hash[kHashBytes];
  };

  mutable std::mutex mutex_;
  std::vector<unsigned char> id_field_;  // field 1 as encoded (empty for an empty id)
  EVP_MD_CTX* digest_;
  EVP_MD* sha256_;  // fetched once
  uint64_t seq_;
  unsigned char hash_[kHashBytes];
  std::vector<unsigned char> buffer_;    // pending frames, oldest first, from buffer_start_
  std::size_t buffer_start_ = 0;
  std::deque<Pending> pending_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t zeroed_to_ = 0;  // the active segment holds zeros from size_ up to here
  uint64_t written_seq_ = 0;
  unsigned char written_hash_[kHashBytes] = {};
  std::deque<uint64_t> barriers_;  // last seq of each segment rotations are finishing, oldest first
  uint64_t framed_bytes_ = 0;  // last seq of the segment being finished by a rotation
  uint64_t synced_seq_ = 0;
  unsigned char synced_hash_[kHashBytes] = {};
  uint64_t synced_size_ = 0;
  uint64_t synced_segment_ = 0;
  uint64_t acks_written_ = 0, acks_durable_ = 0, sync_rounds_ = 0;
  uint64_t index_first_seq_ = 1;
  uint64_t index_interval_ = 0;
};

}  // namespace gapwatch

#endif
