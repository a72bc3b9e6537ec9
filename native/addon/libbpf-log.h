#ifndef GAPWATCH_LIBBPF_LOG_H
#define GAPWATCH_LIBBPF_LOG_H

#include <cstddef>
#include <string>

namespace gapwatch {

// Routes libbpf's diagnostics away from stderr into the active
// LibbpfLogCapture of the calling thread. With GAPWATCH_LIBBPF_DEBUG=1 every
// message (debug level included) is also written to stderr.
void install_libbpf_log();

// Collects the warning/info messages libbpf emits on this thread while the
// capture is alive. libbpf calls its print callback synchronously from the
// thread that called into it, so a thread-local sink keeps concurrent
// worker_threads from mixing each other's logs.
class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;

  // The most recent whole lines, at most max_bytes in total; the last lines
  // carry the verdict (verifier result, attach failure reason).
  std::string tail(std::size_t max_bytes) const;

 private:
  std::string buffer_;
  std::string* previous_sink_;
};

}  // namespace gapwatch

#endif
