#include "proto-writer.h"

#include <cstring>

namespace gapwatch::protowire {

namespace {

constexpr unsigned char kReplacement[] = {0xef, 0xbf, 0xbd};  // U+FFFD

// The UTF-8 sequence at p (p < end, *p >= 0x80) as the WHATWG decoder reads it, which V8 and so
// Buffer.toString('utf8') follow: returns its length and sets *valid, or, for an invalid sequence,
// the length of its maximal subpart (at least 1), which decodes to one U+FFFD. Lead bytes C0, C1
// and F5-FF start nothing (overlong or beyond U+10FFFF); the second byte's range excludes the
// overlong forms after E0 and F0, the surrogates D800-DFFF after ED, and code points above
// U+10FFFF after F4. A byte that breaks a sequence is not part of its subpart: it is read again.
std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end, bool* valid) {
  const unsigned char lead = *p;
  std::size_t continuations;
  unsigned char lower = 0x80;
  unsigned char upper = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    continuations = 1;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    continuations = 2;
    if (lead == 0xe0) lower = 0xa0;
    if (lead == 0xed) upper = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    continuations = 3;
    if (lead == 0xf0) lower = 0x90;
    if (lead == 0xf4) upper = 0x8f;
  } else {
    *valid = false;
    return 1;
  }
  for (std::size_t n = 1; n <= continuations; n++) {
    if (p + n == end || p[n] < lower || p[n] > upper) {
      *valid = false;
      return n;
    }
    lower = 0x80;
    upper = 0xbf;
  }
  *valid = true;
  return continuations + 1;
}

}  // namespace

void append_node_utf8(std::vector<unsigned char>& out, std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* const end = p + bytes.size();
  const unsigned char* run = p;
  while (p < end) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    bool valid;
    const std::size_t length = utf8_sequence(p, end, &valid);
    if (!valid) {
      out.insert(out.end(), run, p);
      out.insert(out.end(), kReplacement, kReplacement + sizeof kReplacement);
      run = p + length;
    }
    p += length;
  }
  out.insert(out.end(), run, end);
}

void append_latin1_utf8(std::vector<unsigned char>& out, std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* const end = p + bytes.size();
  const unsigned char* run = p;
  for (; p < end; p++) {
    if (*p < 0x80) continue;
    out.insert(out.end(), run, p);
    // U+0080-U+00FF: 110000xx 10xxxxxx
    out.push_back(static_cast<unsigned char>(0xc0 | *p >> 6));
    out.push_back(static_cast<unsigned char>(0x80 | (*p & 0x3f)));
    run = p + 1;
  }
  out.insert(out.end(), run, end);
}

void FieldWriter::end(std::size_t start) {
  const std::size_t length = out_.size() - start;
  if (length < 0x80) {
    out_[start - 1] = static_cast<unsigned char>(length);
    return;
  }
  unsigned char head[10];
  std::size_t n = 0;
  std::size_t rest = length;
  for (; rest >= 0x80; rest >>= 7) head[n++] = static_cast<unsigned char>(rest | 0x80);
  head[n++] = static_cast<unsigned char>(rest);
  out_.insert(out_.begin() + static_cast<std::ptrdiff_t>(start), n - 1, 0);
  std::memcpy(out_.data() + start - 1, head, n);
}

}  // namespace gapwatch::protowire
