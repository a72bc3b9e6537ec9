#ifndef GAPWATCH_PROTO_WRITER_H
#define GAPWATCH_PROTO_WRITER_H

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

// Protobuf field writing for the journal records encoded in C++ (pg-records.cc, http-records.cc),
// following the canonical encoding's rules (gateway/journal/canonical-encoding.ts): the callers
// write fields in ascending number order; implicit-presence fields (strings, integers, bools,
// repeated) are omitted when they hold the proto3 default; message fields and oneof members are
// written whenever present, an empty one as a zero-length field; repeated strings and messages one
// entry per element, empty elements included; minimal varints, negative int64 as ten-byte two's
// complement.
//
// Strings come as the bytes received and are written as JavaScript would have decoded them:
// - utf8: as Node's Buffer.toString('utf8') decodes them: valid UTF-8 as it is, each maximal
//   invalid subpart as U+FFFD (the WHATWG decoder). Strings that are valid UTF-8 are unchanged.
// - latin1: one character per byte, as Node's HTTP parser makes header names and values: bytes
//   0x80-0xFF become two-byte UTF-8 sequences (0xE9 'é' as C3 A9), ASCII stays as it is.
namespace gapwatch::protowire {

constexpr uint32_t varint_field(uint32_t number) { return number << 3; }
constexpr uint32_t delimited(uint32_t number) { return number << 3 | 2; }

// `bytes` as Buffer.toString('utf8') decodes them, re-encoded (what Buffer.write gives back).
void append_node_utf8(std::vector<unsigned char>& out, std::string_view bytes);

// `bytes` as Buffer.toString('latin1') decodes them, encoded as UTF-8.
void append_latin1_utf8(std::vector<unsigned char>& out, std::string_view bytes);

// Appends protobuf fields to the caller's buffer. A length-delimited field whose length is not known
// up front (a nested message, a decoded string) reserves one length byte and moves its content along
// when the length needs more (128 bytes and up), as the JavaScript ByteSink does: most fields are short.
class FieldWriter {
 public:
  explicit FieldWriter(std::vector<unsigned char>& out) : out_(out) {}

  void varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<unsigned char>(value | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<unsigned char>(value));
  }

  // An implicit-presence integer: omitted when 0. int64 values come cast to uint64 (two's complement).
  void integer(uint32_t tag, uint64_t value) {
    if (value == 0) return;
    varint(tag);
    varint(value);
  }

  void flag(uint32_t tag, bool value) {
    if (!value) return;
    varint(tag);
    varint(1);
  }

  // An implicit-presence string, decoded as UTF-8: omitted when empty (bytes decode to "" only when
  // there are none).
  void string(uint32_t tag, std::string_view bytes) {
    if (!bytes.empty()) entry(tag, bytes);
  }

  // A UTF-8 string written even when empty: an element of a repeated field, a oneof member.
  void entry(uint32_t tag, std::string_view bytes) {
    const std::size_t at = begin(tag);
    append_node_utf8(out_, bytes);
    end(at);
  }

  // An implicit-presence string, decoded as latin1: omitted when empty.
  void latin1(uint32_t tag, std::string_view bytes) {
    if (!bytes.empty()) latin1_entry(tag, bytes);
  }

  // A latin1 string written even when empty.
  void latin1_entry(uint32_t tag, std::string_view bytes) {
    const std::size_t at = begin(tag);
    append_latin1_utf8(out_, bytes);
    end(at);
  }

  // A bytes field written even when empty (a oneof member): the bytes as they are.
  void bytes_entry(uint32_t tag, std::string_view bytes) {
    varint(tag);
    varint(bytes.size());
    raw(bytes);
  }

  void raw(std::string_view bytes) { out_.insert(out_.end(), bytes.begin(), bytes.end()); }

  // Starts a length-delimited field; returns where its content starts, for end().
  std::size_t begin(uint32_t tag) {
    varint(tag);
    out_.push_back(0);
    return out_.size();
  }

  // Ends the field begin() started: writes its length, moving the content when it takes more than a byte.
  void end(std::size_t start);

  std::vector<unsigned char>& out() { return out_; }

 private:
  std::vector<unsigned char>& out_;
};

}  // namespace gapwatch::protowire

#endif  // GAPWATCH_PROTO_WRITER_H
