#include "libbpf-log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace gapwatch {
namespace {

// A failed program load makes libbpf print the whole verifier log, which can
// be megabytes; only the end is ever reported, so older text is dropped.
constexpr std::size_t kMaxCapturedBytes = 64 * 1024;

thread_local std::string* t_sink = nullptr;
bool g_echo_to_stderr = false;

void append_bounded(std::string& sink, const char* text, std::size_t length) {
  sink.append(text, length);
  if (sink.size() > kMaxCapturedBytes) {
    sink.erase(0, sink.size() - kMaxCapturedBytes);
  }
}

int print_to_sink(enum libbpf_print_level level, const char* format, va_list args) {
  if (g_echo_to_stderr) {
    va_list echo;
    va_copy(echo, args);
    std::vfprintf(stderr, format, echo);
    va_end(echo);
  }
  if (t_sink == nullptr || level == LIBBPF_DEBUG) {
    return 0;
  }

  char small[512];
  va_list measure;
  va_copy(measure, args);
  int length = std::vsnprintf(small, sizeof small, format, measure);
  va_end(measure);
  if (length < 0) {
    return 0;
  }
  if (static_cast<std::size_t>(length) < sizeof small) {
    append_bounded(*t_sink, small, static_cast<std::size_t>(length));
  } else {
    std::vector<char> large(static_cast<std::size_t>(length) + 1);
    std::vsnprintf(large.data(), large.size(), format, args);
    append_bounded(*t_sink, large.data(), static_cast<std::size_t>(length));
  }
  return length;
}

}  // namespace

void install_libbpf_log() {
  const char* debug = std::getenv("GAPWATCH_LIBBPF_DEBUG");
  g_echo_to_stderr = debug != nullptr && std::strcmp(debug, "1") == 0;
  libbpf_set_print(print_to_sink);
}

LibbpfLogCapture::LibbpfLogCapture() : previous_sink_(t_sink) { t_sink = &buffer_; }

LibbpfLogCapture::~LibbpfLogCapture() { t_sink = previous_sink_; }

std::string LibbpfLogCapture::tail(std::size_t max_bytes) const {
  std::size_t end = buffer_.size();
  while (end > 0 && (buffer_[end - 1] == '\n' || buffer_[end - 1] == ' ')) {
    --end;
  }
  if (end <= max_bytes) {
    return buffer_.substr(0, end);
  }
  // Cut at a line boundary so the first reported line is not a fragment.
  std::size_t start = end - max_bytes;
  if (buffer_[start - 1] != '\n') {
    std::size_t newline = buffer_.find('\n', start);
    if (newline != std::string::npos && newline + 1 < end) {
      start = newline + 1;
    }
  }
  return buffer_.substr(start, end - start);
}

}  // namespace gapwatch
