// The HTTP gateway's native data path (gateway/http/README.md, "The native data path"). JavaScript
// accepts each agent connection and hands its socket over at once; one epoll thread then reads
// requests, and serves natively those of a strict HTTP/1.1 subset (http-framing.*: no request
// Transfer-Encoding, Expect or Upgrade, a body of at most bufferBodyBytes) whose token, route and
// policy JavaScript has decided to allow — decisions it keeps for a second per (Authorization, Host,
// method, path), dropped at once when the identity file or the credential file changes. It writes the
// same HttpRequest record ahead of forwarding and the same HttpExchange outcome as listener.ts
// (http-records.*), through the journal's one chain, forwards with the resource's credential in
// place of the agent's over keep-alive upstream connections of its own, and relays the response
// (Content-Length, chunked or until close) while recording its excerpt. Anything else — a request
// outside the subset, a refusal, a review, a WebSocket upgrade, an https upstream, a slow head — is
// handed back: JavaScript gets the socket and the bytes not yet consumed, and listener.ts serves the
// rest of the connection as it serves any other.
#include "http-datapath.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "chain-syncer.h"
#include "http-framing.h"
#include "http-records.h"
#include "journal-chain.h"
#include "loop-channel.h"
#include "pg-datapath.h"

namespace gapwatch {

namespace {

int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// What the loop is configured with (gateway.http, read once).
struct Settings {
  uint64_t max_header_bytes = 16384;
  uint64_t max_body_bytes = 0;
  uint64_t buffer_body_bytes = 0;
  int64_t headers_timeout_ns = 0, request_timeout_ns = 0, keep_alive_timeout_ns = 0, upstream_timeout_ns = 0;
  bool write_ahead = true;
  bool read_durable = false;  // readDurability 'durable'
  uint64_t body_bytes = 0;
  bool binary_bodies = false;
  httprec::NameSet recorded, redacted;
};

// A file whose change drops every kept decision (the identity file: a revocation; a credential file:
// a rotation): what stat() says of it, or that it is absent.
struct FileStamp {
  bool present = false;
  uint64_t ino = 0, size = 0, mode = 0, uid = 0;
  int64_t mtime_sec = 0, mtime_nsec = 0, ctime_sec = 0, ctime_nsec = 0;
  bool operator==(const FileStamp& o) const {
    return present == o.present && ino == o.ino && size == o.size && mode == o.mode && uid == o.uid && mtime_sec == o.mtime_sec &&
           mtime_nsec == o.mtime_nsec && ctime_sec == o.ctime_sec && ctime_nsec == o.ctime_nsec;
  }
};

FileStamp stamp_of(const std::string& path) {
  struct stat st;
  FileStamp out;
  if (stat(path.c_str(), &st) != 0) return out;
  out.present = true;
  out.ino = st.st_ino;
  out.size = static_cast<uint64_t>(st.st_size);
  out.mode = st.st_mode;
  out.uid = st.st_uid;
  out.mtime_sec = st.st_mtim.tv_sec;
  out.mtime_nsec = st.st_mtim.tv_nsec;
  out.ctime_sec = st.st_ctim.tv_sec;
  out.ctime_nsec = st.st_ctim.tv_nsec;
  return out;
}

// An upstream a decision names: where its connections go and what its requests carry.
struct Target {
  sockaddr_storage address{};
  socklen_t address_length = 0;
  std::string display;  // "ip:port", for error messages as undici words them
  http::ForwardTarget forward;
  std::string resource;
};

// A request JavaScript allowed (token, route and policy), kept for the requests that look the same.
struct Decision {
  std::string login;     // the session key is (login, resource)
  size_t target = 0;
  std::string route_path;     // admitted.path: what is recorded
  std::string upstream_path;  // the base path and route_path: what is sent
  std::string rule;
  std::string credential_name, credential_value, secret;
  int64_t valid_until = 0;  // monotonic
  std::vector<std::pair<std::string, FileStamp>> files;  // path, and what stat() said when decided
};

struct SessionSlot {
  std::string session_id;
  uint64_t event_seq = 0;
  uint32_t exchanges = 0;
  uint64_t bytes_from_client = 0, bytes_to_client = 0;
};

struct Conn;

// Either side of the loop's sockets, as epoll reports them.
struct Endpoint {
  int fd = -1;
  bool upstream = false;
  bool want_in = true, want_out = false;  // what epoll reports now
  std::string in;
  size_t in_at = 0;  // consumed prefix of `in`
  std::string out;
  size_t view() const { return in.size() - in_at; }
  void consume(size_t n) {
    in_at += n;
    if (in_at == in.size()) {
      in.clear();
      in_at = 0;
    } else if (in_at > 65536 && in_at * 2 > in.size()) {
      in.erase(0, in_at);
      in_at = 0;
    }
  }
};

struct Upstream : Endpoint {
  bool dead = false;  // closed; freed at the end of the epoll round (events of this round may still name it)
  size_t target = 0;
  Conn* conn = nullptr;  // null while idle in the pool
  bool connecting = false;
  bool reused = false;
  int64_t idle_since = 0;
};

enum class Phase {
  Head,      // reading a request head (or idle between requests)
  Asking,    // JavaScript decides
  Body,      // reading the request body
  Queued,    // its record is being written (end of this round)
  Parked,    // its record waits for an fdatasync
  Waiting,   // forwarded; the upstream's response head is awaited
  Relaying,  // the response body streams through
  Closing,   // the response is out; the connection closes when the output drains
};

// The exchange in progress on a connection.
struct Exchange {
  std::string method, path, query, host, version;
  std::string cache_key;
  std::shared_ptr<Decision> decision;
  SessionSlot* session = nullptr;
  uint32_t exchange_id = 0;
  int64_t started_ns = 0;  // realtime, for the records
  int64_t started_mono = 0;
  uint64_t content_length = 0;
  bool has_body = false;
  size_t head_bytes = 0;
  std::vector<httprec::HeaderPair> raw_headers;  // views into the client's input while the request is there
  std::string request_copy;                      // the head and body, once the input moves on
  bool client_close = false;                     // the agent said Connection: close
  std::optional<httprec::BodyExcerpt> request_body, response_body;
  std::vector<httprec::RecordedHeader> request_headers;
  uint64_t request_seq = 0;
  bool needs_durable = false;
  bool request_written = false;  // the request record (with the whole body) is in the journal file
  std::string upstream_request;  // kept until the first response byte (a retry on a fresh connection)
  bool retried = false;
  // The response.
  http::ResponseHead response;
  bool response_started = false;  // the head went to the agent
  int status = 0;
  int64_t first_byte_ns = 0;
  uint64_t response_remaining = 0;
  http::ChunkedScanner chunked;
  std::string response_head;                          // the upstream's response head, as received
  std::vector<httprec::HeaderPair> response_fields;  // views into response_head, recorded at the end
  bool upstream_reusable = true;
  bool recorded = false;
  std::string head_pending;  // the response head, sent with the body's first bytes
  http::RequestHead head;  // parsed again from request_copy: its views stay valid while the input moves on

  // For the next request: every field as new, the buffers' capacity kept (this runs per request).
  void reset() {
    for (std::string* text : {&method, &path, &query, &host, &version, &cache_key, &request_copy, &upstream_request, &response_head, &head_pending}) text->clear();
    decision.reset();
    session = nullptr;
    exchange_id = 0;
    started_ns = started_mono = 0;
    content_length = 0;
    has_body = false;
    head_bytes = 0;
    raw_headers.clear();
    client_close = false;
    request_body.reset();
    response_body.reset();
    request_headers.clear();
    request_seq = 0;
    needs_durable = retried = request_written = false;
    response_started = false;
    status = 0;
    first_byte_ns = 0;
    response_remaining = 0;
    chunked.reset();
    response_fields.clear();
    upstream_reusable = true;
    recorded = false;
  }
};

struct Conn : Endpoint {
  uint64_t handle = 0;
  std::string client_ip;
  Phase phase = Phase::Head;
  int64_t deadline = 0;  // monotonic; 0: none
  bool head_started = false;
  Upstream* upstream = nullptr;
  Exchange x;
  bool in_exchange = false;
  std::unordered_map<std::string, std::unique_ptr<SessionSlot>> sessions;  // login \0 resource
  uint64_t bytes_in = 0, bytes_out = 0;
  bool ended = false;
  bool queued = false;
  uint64_t asked = 0;  // the question in flight (Phase::Asking)
  http::RequestHead head;
};

struct Event {
  enum Kind { Decide, Durable, HandBack, Ended } kind;
  uint64_t handle = 0;
  uint64_t question = 0;
  std::string method, path, query, host, authorization;
  bool has_authorization = false;
  int fd = -1;
  std::string rest;     // HandBack: the bytes read and not consumed
  std::string pending;  // HandBack: bytes for the agent not yet sent
  std::string failure;
  uint64_t bytes_in = 0, bytes_out = 0;
  std::vector<SessionSlot> sessions;
};

struct Command {
  enum Kind { Adopt, Decided, Synced, Stop } kind;
  uint64_t handle = 0;
  int fd = -1;
  std::string client_ip;
  uint64_t question = 0;
  std::shared_ptr<Decision> decision;  // Decided: null means hand the connection back
  std::string session_key;
  SessionSlot session;
  std::optional<Target> target;  // Decided: the target's first use
  uint64_t synced_seq = 0;   // Synced: the last record the fdatasync covered
  std::string sync_failure;  // Synced: why the sync thread stopped
};

void deliver_http_events(Napi::Env env, Napi::Function callback, std::vector<Event> events);

constexpr size_t kMaxKeptDecisions = 4096;
constexpr int64_t kSecond = 1000000000;
constexpr size_t kClientOutHigh = 1 << 20;  // past this the upstream is not read until the agent catches up
constexpr size_t kIdlePerTarget = 256;
// fdatasync rounds for unsafe requests start at least this far apart: under load many requests share a
// round (POST 1 KiB, 64 agents: 6-7 µs less CPU per request, 5-15 % more requests/s in the in-process
// harness); a request waits up to this much longer for its round.
constexpr std::chrono::microseconds kSyncSpacing{1000};

class HttpLoop : public NativeLoop<Command, Event> {
 public:
  HttpLoop(JournalChain* chain, Napi::ThreadSafeFunction events, Settings settings)
      : NativeLoop(chain, events, deliver_http_events, kSyncSpacing), chain_(chain), settings_(std::move(settings)) {
    if (RAND_bytes(salt_, sizeof salt_) != 1) throw std::runtime_error("RAND_bytes failed");
    start();
  }

  ~HttpLoop() override { stop(); }

 private:
  void loop() override {
    epoll_event ready[64];
    for (;;) {
      const int timeout = !queued_.empty() ? 1 : conns_.empty() && idle_count_ == 0 ? -1 : 100;
      int n = epoll_wait(epoll_fd_, ready, 64, timeout);
      if (n < 0 && errno != EINTR) return;
      for (int i = 0; i < n; i++) {
        if (ready[i].data.ptr == nullptr) {
          if (!run_commands()) return;
          continue;
        }
        Endpoint* endpoint = static_cast<Endpoint*>(ready[i].data.ptr);
        const uint32_t events = ready[i].events;
        if (endpoint->upstream && static_cast<Upstream*>(endpoint)->dead) continue;
        if (endpoint->upstream) on_upstream(static_cast<Upstream*>(endpoint), events);
        else on_client(static_cast<Conn*>(endpoint), events);
      }
      flush_ahead();
      const int64_t now = monotonic_ns();
      if (now >= next_sweep_) {
        sweep(now);
        next_sweep_ = now + kSecond / 10;
      }
      reap();
    }
  }

  bool run_commands() {
    for (Command& c : channel_.take_commands()) {
      switch (c.kind) {
        case Command::Stop:
          // As when the JavaScript path's stop() destroys its sockets: exchanges in flight are
          // recorded as the agent's connection going away.
          for (auto& entry : conns_) client_failed(*entry.second, "");
          for (auto& pool : idle_) {
            for (auto& up : pool) dispose(up.release());
          }
          idle_.clear();
          reap();
          return false;
        case Command::Adopt:
          adopt(c);
          break;
        case Command::Synced:
          synced(c);
          break;
        case Command::Decided:
          decided(c);
          break;
      }
    }
    return true;
  }

  // ---------------------------------------------------------------- sockets

  // Closes an upstream connection; the object lives until reap(): epoll may have reported it in this round.
  void dispose(Upstream* up) {
    close_fd(up->fd);
    up->fd = -1;
    up->dead = true;
    up->conn = nullptr;
    dead_.push_back(up);
  }

  void close_fd(int fd) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    close(fd);
  }

  void watch(Endpoint& e, bool in, bool out, int op = EPOLL_CTL_MOD) {
    if (op == EPOLL_CTL_MOD && e.want_in == in && e.want_out == out) return;
    epoll_event ev{};
    ev.events = (in ? uint32_t{EPOLLIN} | uint32_t{EPOLLRDHUP} : 0u) | (out ? uint32_t{EPOLLOUT} : 0u);
    ev.data.ptr = &e;
    epoll_ctl(epoll_fd_, op, e.fd, &ev);
    e.want_in = in;
    e.want_out = out;
  }

  // Writes what it can now; the rest waits for EPOLLOUT. False when the socket failed.
  bool send_bytes(Endpoint& e, const char* data, size_t size) {
    if (size == 0) return true;
    if (e.out.empty()) {
      ssize_t n = send(e.fd, data, size, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
        n = 0;
      }
      data += n;
      size -= static_cast<size_t>(n);
      if (size == 0) return true;
    }
    e.out.append(data, size);
    if (!e.want_out) watch(e, wants_input(e), true);
    return true;
  }

  // Whether the loop reads this endpoint now (backpressure: a relaying upstream waits for the agent;
  // an agent that sends requests ahead waits while one is in flight and enough of them are buffered).
  bool wants_input(const Endpoint& e) const {
    if (!e.upstream) {
      const Conn& c = static_cast<const Conn&>(e);
      return c.phase == Phase::Head || c.phase == Phase::Body || c.view() < settings_.max_header_bytes + settings_.buffer_body_bytes + 65536;
    }
    const Upstream& up = static_cast<const Upstream&>(e);
    if (up.conn == nullptr) return true;  // idle: to see it close
    return up.conn->out.size() < kClientOutHigh;
  }

  // Sends what is pending; false when the socket failed.
  bool flush_out(Endpoint& e) {
    while (!e.out.empty()) {
      ssize_t n = send(e.fd, e.out.data(), e.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        return false;
      }
      e.out.erase(0, static_cast<size_t>(n));
    }
    watch(e, wants_input(e), false);
    return true;
  }

  // Reads what is there: >0 bytes read, 0 end of stream, -1 nothing now, -2 error (errno).
  ssize_t read_in(Endpoint& e) {
    char buffer[65536];
    ssize_t total = 0;
    for (;;) {
      ssize_t n = read(e.fd, buffer, sizeof buffer);
      if (n > 0) {
        e.in.append(buffer, static_cast<size_t>(n));
        total += n;
        if (static_cast<size_t>(n) < sizeof buffer) return total;
        continue;
      }
      if (n == 0) return total > 0 ? total : 0;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return total > 0 ? total : -1;
      if (errno == EINTR) continue;
      return total > 0 ? total : -2;
    }
  }

  // ---------------------------------------------------------------- agent side

  void adopt(Command& c) {
    auto conn = std::make_unique<Conn>();
    conn->handle = c.handle;
    conn->fd = c.fd;
    conn->client_ip = std::move(c.client_ip);
    fcntl(conn->fd, F_SETFL, fcntl(conn->fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    watch(*conn, true, false, EPOLL_CTL_ADD);
    conn->deadline = monotonic_ns() + settings_.keep_alive_timeout_ns;
    Conn& ref = *conn;
    conns_[c.handle] = std::move(conn);
    syncer_.connection_opened();
    // Bytes may already be waiting (the agent sent its request with the connection).
    on_client(&ref, EPOLLIN);
  }

  void on_client(Conn* conn, uint32_t events) {
    Conn& c = *conn;
    if (c.ended) return;
    if (events & EPOLLOUT) {
      if (!flush_out(c)) {
        client_failed(c, std::string("the client connection failed: ") + strerror(errno));
        return;
      }
      if (c.phase == Phase::Closing && c.out.empty()) {
        end(c, "");
        return;
      }
      // The agent caught up: the upstream is read again.
      if (c.upstream != nullptr && c.phase == Phase::Relaying && !c.upstream->want_out) watch(*c.upstream, wants_input(*c.upstream), false);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) return;
    const ssize_t n = read_in(c);
    if (n > 0) {
      c.bytes_in += static_cast<uint64_t>(n);
      advance(c);
      if (!c.ended && !wants_input(c)) watch(c, false, c.want_out);
      return;
    }
    if (n == -1) return;
    // The agent closed (or failed).
    client_failed(c, n == 0 ? "" : std::string("the client connection failed: ") + strerror(errno));
  }

  // The agent's side ended: an exchange in flight is recorded as the JavaScript path records it.
  void client_failed(Conn& c, const std::string& why) {
    if (c.ended) return;
    if (c.in_exchange) {
      switch (c.phase) {
        case Phase::Body:
        case Phase::Queued:
        case Phase::Parked:
          if (c.phase == Phase::Body) {
            // What arrived of the body is recorded, as the JavaScript path's recorder saw it.
            const size_t arrived = c.view() > c.x.head_bytes ? std::min<size_t>(c.view() - c.x.head_bytes, c.x.content_length) : 0;
            c.x.request_body->push(c.in.data() + c.in_at + c.x.head_bytes, arrived);
            record_exchange(c, 0, "the client stopped sending the body, or sent a malformed one");
          } else {
            record_exchange(c, 0, "the client went away before the request was forwarded");
          }
          break;
        case Phase::Waiting:
          record_exchange(c, 0, "the client went away before the response began");
          break;
        case Phase::Relaying:
          record_exchange(c, c.x.status, "the client went away before the response was complete");
          break;
        default:
          break;
      }
      drop_upstream(c);
    }
    // The session ends closed, as on the JavaScript path when an agent's socket closes or resets; the
    // exchange's record says what was cut short.
    (void)why;
    end(c, "");
  }

  // Serves what the agent has sent, as far as it can go now.
  void advance(Conn& c) {
    while (!c.ended) {
      switch (c.phase) {
        case Phase::Head:
          if (!start_request(c)) return;
          break;
        case Phase::Body:
          if (!body_complete(c)) return;
          break;
        default:
          return;
      }
    }
  }

  // Reads a request head; false when nothing more can happen until more bytes (or a decision) arrive.
  bool start_request(Conn& c) {
    if (c.view() == 0) return false;
    const char* data = c.in.data() + c.in_at;
    const http::HeadStatus status = http::parse_request_head(data, c.view(), settings_.max_header_bytes, c.head);
    if (status == http::HeadStatus::Incomplete) {
      if (!c.head_started) {
        c.head_started = true;
        c.deadline = monotonic_ns() + settings_.headers_timeout_ns;
      }
      return false;
    }
    c.head_started = false;
    if (status == http::HeadStatus::HandBack) {
      hand_back(c);
      return false;
    }
    uint64_t length = 0;
    bool has_length = false;
    std::string path;
    std::string_view query;
    if (!http::fast_path_request(c.head, settings_.max_body_bytes, settings_.buffer_body_bytes, length, has_length) ||
        !http::normalise_target(c.head.target, path, query)) {
      hand_back(c);
      return false;
    }
    Exchange& x = c.x;
    x.reset();
    x.started_ns = realtime_ns();
    x.started_mono = monotonic_ns();
    x.method.assign(c.head.method);
    x.path = std::move(path);
    x.query.assign(query);
    x.host.assign(c.head.host);
    x.version = c.head.version_minor == 1 ? "1.1" : "1.0";
    x.head_bytes = c.head.head_bytes;
    x.content_length = length;
    x.has_body = has_length;
    x.client_close = has_token(c.head.connection, "close");
    // The Authorization value enters the key only as a salted SHA-256: kept decisions never hold a token.
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    EVP_MD_CTX* md = digest_.get();
    EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
    EVP_DigestUpdate(md, salt_, sizeof salt_);
    EVP_DigestUpdate(md, c.head.has_authorization ? "1" : "0", 1);
    EVP_DigestUpdate(md, c.head.authorization.data(), c.head.authorization.size());
    EVP_DigestFinal_ex(md, digest, &digest_length);
    x.cache_key.reserve(digest_length + x.host.size() + x.method.size() + x.path.size() + 3);
    x.cache_key.append(reinterpret_cast<const char*>(digest), digest_length);
    x.cache_key.append(x.host).push_back('\0');
    x.cache_key.append(x.method).push_back('\0');
    x.cache_key.append(x.path);
    c.deadline = 0;
    std::shared_ptr<Decision> decision = kept(x.cache_key);
    if (decision) {
      auto slot = c.sessions.find(session_key(*decision));
      if (slot != c.sessions.end()) {
        admit(c, decision, slot->second.get());
        return true;
      }
    }
    ask(c);
    return false;
  }

  static bool has_token(std::string_view list, std::string_view token) {
    size_t at = 0;
    while (at <= list.size()) {
      size_t comma = list.find(',', at);
      if (comma == std::string_view::npos) comma = list.size();
      std::string_view item = list.substr(at, comma - at);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (item.size() == token.size() && strncasecmp(item.data(), token.data(), token.size()) == 0) return true;
      at = comma + 1;
    }
    return false;
  }

  std::string session_key(const Decision& d) const { return d.login + '\0' + targets_[d.target]->resource; }

  // A kept decision for this request, unless it expired or a file it depends on changed since.
  std::shared_ptr<Decision> kept(const std::string& key) {
    auto found = decisions_.find(key);
    if (found == decisions_.end()) return nullptr;
    const Decision& d = *found->second;
    if (d.valid_until <= monotonic_ns()) {
      decisions_.erase(found);
      return nullptr;
    }
    for (const auto& [path, stamp] : d.files) {
      if (!(stamp_of(path) == stamp)) {
        // A revocation or rotation may concern any of them.
        decisions_.clear();
        return nullptr;
      }
    }
    return found->second;
  }

  void ask(Conn& c) {
    c.phase = Phase::Asking;
    c.asked = ++questions_;
    Event e;
    e.kind = Event::Decide;
    e.handle = c.handle;
    e.question = c.asked;
    e.method = c.x.method;
    e.path = c.x.path;
    e.query = c.x.query;
    e.host = c.x.host;
    e.has_authorization = c.head.has_authorization;
    e.authorization.assign(c.head.authorization);
    post(std::move(e));
  }

  void decided(Command& cmd) {
    auto found = conns_.find(cmd.handle);
    if (found == conns_.end() || found->second->ended) return;
    Conn& c = *found->second;
    if (c.phase != Phase::Asking || c.asked != cmd.question) return;
    if (!cmd.decision) {
      hand_back(c);
      return;
    }
    if (cmd.target) {
      const size_t index = cmd.decision->target;
      if (targets_.size() <= index) targets_.resize(index + 1);
      targets_[index] = std::make_unique<Target>(std::move(*cmd.target));
      if (idle_.size() <= index) idle_.resize(index + 1);
    }
    if (cmd.decision->target >= targets_.size() || !targets_[cmd.decision->target]) {
      hand_back(c);
      return;
    }
    // More bytes may have arrived while JavaScript decided, moving the input: its head is read again.
    if (http::parse_request_head(c.in.data() + c.in_at, c.view(), settings_.max_header_bytes, c.head) != http::HeadStatus::Ok) {
      end(c, "native http data path: a request head read differently the second time");
      return;
    }
    for (auto& file : cmd.decision->files) file.second = stamp_of(file.first);
    if (decisions_.size() >= kMaxKeptDecisions) decisions_.clear();
    decisions_[c.x.cache_key] = cmd.decision;
    auto& slot = c.sessions[cmd.session_key];
    if (!slot) slot = std::make_unique<SessionSlot>(std::move(cmd.session));
    admit(c, cmd.decision, slot.get());
    advance(c);
  }

  // The request is allowed: its body is read next (when it has one).
  void admit(Conn& c, const std::shared_ptr<Decision>& decision, SessionSlot* session) {
    Exchange& x = c.x;
    x.decision = decision;
    x.session = session;
    x.exchange_id = ++session->exchanges;
    x.request_body.emplace(c.head.has_content_type ? c.head.content_type : std::string_view(), c.head.content_encoding, settings_.body_bytes,
                           settings_.binary_bodies);
    c.in_exchange = true;
    c.phase = Phase::Body;
    c.deadline = x.started_mono + settings_.request_timeout_ns;
  }

  bool body_complete(Conn& c) {
    Exchange& x = c.x;
    if (c.view() < x.head_bytes + x.content_length) return false;
    c.deadline = 0;
    // The input moves on (the agent may pipeline): the request is copied once, for its records and
    // forwarding, and its head read again from the copy so that every view stays valid.
    x.request_copy.assign(c.in, c.in_at, x.head_bytes + x.content_length);
    c.consume(x.head_bytes + x.content_length);
    if (http::parse_request_head(x.request_copy.data(), x.head_bytes, settings_.max_header_bytes, x.head) != http::HeadStatus::Ok) {
      end(c, "native http data path: a request head read differently the second time");
      return false;
    }
    x.raw_headers.clear();
    for (const http::HeaderField& f : x.head.fields) x.raw_headers.push_back({f.name, f.value});
    x.request_body->push(x.request_copy.data() + x.head_bytes, x.content_length);
    httprec::record_headers(x.request_headers, x.raw_headers.data(), x.raw_headers.size(), settings_.recorded, settings_.redacted);
    write_ahead(c);
    return false;
  }

  // The request's record goes into the chain now and into the file at the end of this round.
  void write_ahead(Conn& c) {
    Exchange& x = c.x;
    static const char* const kSafe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
    bool safe = false;
    for (const char* m : kSafe) safe = safe || x.method == m;
    if (!settings_.write_ahead) {
      // One record per exchange, written when it completes.
      forward(c);
      return;
    }
    x.needs_durable = !(safe && !settings_.read_durable);
    request_record_.exchange_id = x.exchange_id;
    request_record_.method = x.method;
    request_record_.path = x.decision->route_path;
    request_record_.query = x.query;
    request_record_.host = x.host;
    request_record_.http_version = x.version;
    request_record_.headers.swap(x.request_headers);
    request_record_.body = &*x.request_body;
    request_record_.policy_rule = x.decision->rule;
    scratch_.clear();
    const eventrec::EventHead head{x.session->session_id, ++x.session->event_seq, realtime_ns()};
    httprec::append_request_record(scratch_, head.time_unix_nano, head, request_record_);
    request_record_.headers.swap(x.request_headers);
    try {
      x.request_seq = chain_->append(scratch_.data(), scratch_.size(), nullptr);
    } catch (const std::exception& err) {
      audit_unavailable(c, std::string("journal append failed: ") + err.what());
      return;
    }
    chain_->count_ack(x.needs_durable);
    c.phase = Phase::Queued;
    if (!c.queued) {
      c.queued = true;
      queued_.push_back(c.handle);
    }
  }

  // Write-ahead for every connection served in this round: one write of the journal, then their requests.
  void flush_ahead() {
    if (queued_.empty()) return;
    std::string failure;
    try {
      chain_->write(UINT64_MAX);
    } catch (const std::exception& err) {
      failure = std::string("journal write failed: ") + err.what();
    }
    unsigned char hash[JournalChain::kHashBytes];
    uint64_t size = 0;
    const uint64_t written = chain_->written_head(hash, &size);
    std::vector<uint64_t> unwritten;
    for (uint64_t handle : queued_) {
      auto found = conns_.find(handle);
      if (found == conns_.end() || found->second->ended) continue;
      Conn& c = *found->second;
      if (failure.empty() && c.x.request_seq > written) {
        // A rotation is finishing the segment: the record goes into the next one.
        unwritten.push_back(handle);
        continue;
      }
      c.queued = false;
      if (!failure.empty() || (c.x.needs_durable && !sync_failed_.empty())) {
        audit_unavailable(c, failure.empty() ? sync_failed_ : failure);
        continue;
      }
      c.x.request_written = true;
      if (c.x.needs_durable) {
        c.phase = Phase::Parked;
        parked_.emplace_back(c.handle, written);
        syncer_.request(written);
        continue;
      }
      forward(c);
    }
    queued_.swap(unwritten);
  }

  void synced(const Command& cmd) {
    if (!cmd.sync_failure.empty()) sync_failed_ = cmd.sync_failure;
    std::vector<std::pair<uint64_t, uint64_t>> still;
    for (auto [handle, seq] : parked_) {
      auto found = conns_.find(handle);
      if (found == conns_.end() || found->second->ended || found->second->phase != Phase::Parked) continue;
      Conn& c = *found->second;
      if (!sync_failed_.empty()) {
        audit_unavailable(c, sync_failed_);
        continue;
      }
      if (seq > cmd.synced_seq) {
        still.emplace_back(handle, seq);
        continue;
      }
      forward(c);
    }
    parked_.swap(still);
  }

  // ---------------------------------------------------------------- upstream side

  void forward(Conn& c) {
    Exchange& x = c.x;
    const Decision& d = *x.decision;
    const Target& t = *targets_[d.target];
    // The request as the upstream gets it (forwardHeaders() of upstream-request.ts).
    fields_.clear();
    const std::optional<uint64_t> length = http::forwarded_content_length(x.method, x.content_length);
    http::forward_headers(fields_, x.head, t.forward, c.client_ip, false, length, d.credential_name, d.credential_value, number_);
    std::string& out = x.upstream_request;
    out.clear();
    out.reserve(256 + x.head_bytes + x.content_length);
    out.append(x.method).push_back(' ');
    out.append(d.upstream_path);
    if (!x.query.empty()) out.append("?").append(x.query);
    out.append(" HTTP/1.1\r\n");
    // In the order undici writes forwardHeaders()'s list on the JavaScript path: Host, then its own
    // Connection, the rest, and Content-Length last.
    std::string_view content_length;
    for (const auto& [name, value] : fields_) {
      if (equals_ci(name, "host")) out.append(name).append(": ").append(value).append("\r\n");
    }
    out.append("connection: keep-alive\r\n");
    for (const auto& [name, value] : fields_) {
      if (equals_ci(name, "host")) continue;
      if (equals_ci(name, "content-length")) {
        content_length = value;
        continue;
      }
      out.append(name).append(": ").append(value).append("\r\n");
    }
    if (!content_length.empty()) out.append("content-length: ").append(content_length).append("\r\n");
    out.append("\r\n");
    out.append(x.request_copy, x.head_bytes, x.content_length);
    c.phase = Phase::Waiting;
    c.deadline = monotonic_ns() + settings_.upstream_timeout_ns;
    if (!connect_upstream(c)) return;
    send_upstream(c);
  }

  // Takes an idle connection to the target, or opens one. False when that failed (answered already).
  bool connect_upstream(Conn& c) {
    const size_t index = c.x.decision->target;
    auto& pool = idle_[index];
    while (!pool.empty()) {
      std::unique_ptr<Upstream> up = std::move(pool.back());
      pool.pop_back();
      idle_count_--;
      up->conn = &c;
      up->reused = true;
      c.upstream = up.release();
      return true;
    }
    const Target& t = *targets_[index];
    int fd = socket(t.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      upstream_failed(c, std::string("socket: ") + strerror(errno));
      return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto up = std::make_unique<Upstream>();
    up->fd = fd;
    up->upstream = true;
    up->target = index;
    up->conn = &c;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.address), t.address_length) != 0 && errno != EINPROGRESS) {
      const int error = errno;
      close(fd);
      upstream_failed(c, connect_error(error, t));
      return false;
    }
    up->connecting = true;
    watch(*up, true, true, EPOLL_CTL_ADD);
    c.upstream = up.release();
    return true;
  }

  static std::string connect_error(int error, const Target& t) {
    const char* name = error == ECONNREFUSED ? "ECONNREFUSED" : error == ETIMEDOUT ? "ETIMEDOUT" : error == EHOSTUNREACH ? "EHOSTUNREACH" : error == ENETUNREACH ? "ENETUNREACH" : nullptr;
    return std::string("connect ") + (name ? name : strerror(error)) + " " + t.display;
  }

  void send_upstream(Conn& c) {
    Upstream& up = *c.upstream;
    if (up.connecting) return;  // sent once connected
    if (!send_bytes(up, c.x.upstream_request.data(), c.x.upstream_request.size())) upstream_broke(c, strerror(errno));
  }

  void on_upstream(Upstream* upstream, uint32_t events) {
    Upstream& up = *upstream;
    if (up.conn == nullptr) {
      // Idle in the pool: the upstream closed it (or sent something unasked): it is not used again.
      retire_idle(up);
      return;
    }
    Conn& c = *up.conn;
    if (up.connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      int error = 0;
      socklen_t len = sizeof error;
      getsockopt(up.fd, SOL_SOCKET, SO_ERROR, &error, &len);
      if (error != 0) {
        const std::string message = connect_error(error, *targets_[up.target]);
        drop_upstream(c);
        upstream_failed(c, message);
        return;
      }
      up.connecting = false;
      watch(up, true, false);
      send_upstream(c);
      if (c.ended || c.upstream == nullptr) return;
    } else if (events & EPOLLOUT) {
      if (!flush_out(up)) {
        upstream_broke(c, strerror(errno));
        return;
      }
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) return;
    if (!wants_input(up)) return;
    const ssize_t n = read_in(up);
    if (n == -1) return;
    if (n > 0) {
      on_response_bytes(c);
      return;
    }
    // The upstream closed (or failed).
    if (c.phase == Phase::Relaying && c.x.response.framing == http::BodyFraming::UntilClose && n == 0) {
      c.x.upstream_reusable = false;
      response_done(c);
      return;
    }
    upstream_broke(c, n == 0 ? "other side closed" : strerror(errno));
  }

  // The upstream connection failed before or during the response.
  void upstream_broke(Conn& c, const std::string& why) {
    Exchange& x = c.x;
    const bool nothing_yet = c.phase == Phase::Waiting && c.upstream != nullptr && c.upstream->view() == 0;
    const bool reused = c.upstream != nullptr && c.upstream->reused;
    drop_upstream(c);
    static const char* const kIdempotent[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    bool idempotent = false;
    for (const char* m : kIdempotent) idempotent = idempotent || x.method == m;
    if (nothing_yet && reused && !x.retried && idempotent) {
      // A kept-alive connection the upstream closed as it was reused: once more on a fresh one.
      x.retried = true;
      if (connect_upstream(c)) send_upstream(c);
      return;
    }
    if (c.phase == Phase::Waiting) {
      upstream_failed(c, why);
      return;
    }
    // The response had begun: the agent's connection is cut (it cannot be told otherwise).
    record_exchange(c, x.status, "the upstream broke off the response: " + why);
    end(c, "");
  }

  // No response: the agent gets the JavaScript path's 502 (or 504) and the exchange is recorded.
  void upstream_failed(Conn& c, const std::string& detail, int status = 502) {
    const std::string message = "the gateway could not complete the request to resource \"" + targets_[c.x.decision->target]->resource + "\": " + detail;
    answer_error(c, status, "GW_ERR_HTTP_UPSTREAM", message, false);
    record_exchange(c, status, message);
    finish_exchange(c);
  }

  void audit_unavailable(Conn& c, const std::string& why) {
    (void)why;
    const std::string message = "the gateway cannot write its audit journal, so it forwards nothing; the gateway operator should check the journal disk";
    answer_error(c, 503, "GW_ERR_HTTP_AUDIT_UNAVAILABLE", message, false);
    record_exchange(c, 503, message);
    finish_exchange(c);
  }

  // A JSON error answer, as listener.ts's refuse() writes it.
  void answer_error(Conn& c, int status, std::string_view code, const std::string& message, bool close_after) {
    std::string body = "{\"error\":\"";
    body.append(code).append("\",\"message\":");
    append_json_string(body, message);
    body.append("}\n");
    const char* reason = status == 502 ? "Bad Gateway" : status == 503 ? "Service Unavailable" : status == 504 ? "Gateway Timeout" : "Error";
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\ncontent-type: application/json\r\ncontent-length: " + std::to_string(body.size()) + "\r\n";
    if (close_after || c.x.client_close) out.append("connection: close\r\n");
    out.append("\r\n").append(body);
    c.bytes_out += out.size();
    if (!send_bytes(c, out.data(), out.size())) c.x.client_close = true;
  }

  static void append_json_string(std::string& out, std::string_view text) {
    out.push_back('"');
    for (unsigned char ch : text) {
      switch (ch) {
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        default:
          if (ch < 0x20) {
            char escaped[8];
            snprintf(escaped, sizeof escaped, "\\u%04x", ch);
            out.append(escaped);
          } else {
            out.push_back(static_cast<char>(ch));
          }
      }
    }
    out.push_back('"');
  }

  void on_response_bytes(Conn& c) {
    Exchange& x = c.x;
    Upstream& up = *c.upstream;
    while (c.phase == Phase::Waiting) {
      std::string error;
      const http::ResponseStatus status = http::parse_response_head(up.in.data() + up.in_at, up.view(), 65536, x.method, x.response, error);
      if (status == http::ResponseStatus::Incomplete) return;
      if (status == http::ResponseStatus::Bad) {
        drop_upstream(c);
        upstream_failed(c, "the upstream's response is malformed: " + error);
        return;
      }
      const size_t head_bytes = x.response.head_bytes;
      if (x.response.status < 200) {
        // Interim responses (100 Continue, 103 Early Hints) are the upstream's business.
        up.consume(head_bytes);
        continue;
      }
      x.upstream_request.clear();
      x.status = x.response.status;
      x.first_byte_ns = monotonic_ns() - x.started_mono;
      // The head the agent gets: the upstream's, without hop-by-hop fields.
      response_fields_.clear();
      http::response_headers(response_fields_, x.response);
      std::string head = "HTTP/1.1 " + std::to_string(x.status) + " ";
      head.append(x.response.reason).append("\r\n");
      std::string_view content_type, content_encoding;
      // The head's bytes are kept (the input moves on) for the outcome record's headers.
      const char* received = up.in.data() + up.in_at;
      x.response_head.assign(received, head_bytes);
      x.response_fields.clear();
      for (const http::HeaderField& f : x.response.fields) {
        x.response_fields.push_back({std::string_view(x.response_head.data() + (f.name.data() - received), f.name.size()),
                                     std::string_view(x.response_head.data() + (f.value.data() - received), f.value.size())});
      }
      for (const http::HeaderField& f : response_fields_) {
        head.append(f.name).append(": ").append(f.value).append("\r\n");
      }
      for (const http::HeaderField& f : x.response.fields) {
        if (content_type.empty() && equals_ci(f.name, "content-type")) content_type = f.value;
        if (content_encoding.empty() && equals_ci(f.name, "content-encoding")) content_encoding = f.value;
      }
      std::vector<std::string> secrets;
      if (!x.decision->secret.empty()) secrets.push_back(x.decision->secret);
      x.response_body.emplace(content_type, content_encoding, settings_.body_bytes, settings_.binary_bodies, std::move(secrets));
      const bool until_close = x.response.framing == http::BodyFraming::UntilClose;
      if (x.response.framing == http::BodyFraming::Chunked) head.append("transfer-encoding: chunked\r\n");
      if (until_close || x.client_close) head.append("connection: close\r\n");
      head.append("\r\n");
      x.upstream_reusable = !x.response.close && !until_close;
      up.consume(head_bytes);
      c.bytes_out += head.size();
      x.response_started = true;
      x.response_remaining = x.response.framing == http::BodyFraming::Length ? x.response.content_length : 0;
      c.phase = Phase::Relaying;
      c.deadline = 0;
      if (x.response.framing == http::BodyFraming::None || (x.response.framing == http::BodyFraming::Length && x.response_remaining == 0)) {
        if (!send_bytes(c, head.data(), head.size())) {
          client_failed(c, std::string("the client connection failed: ") + strerror(errno));
          return;
        }
        response_done(c);
        return;
      }
      // The head goes out with the body's first bytes, in one send (one segment, one wake-up of the agent).
      x.head_pending = std::move(head);
    }
    if (c.phase == Phase::Relaying) relay(c);
  }

  static bool equals_ci(std::string_view a, std::string_view b) { return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0; }

  void relay(Conn& c) {
    Exchange& x = c.x;
    Upstream& up = *c.upstream;
    const char* data = up.in.data() + up.in_at;
    size_t take = up.view();
    bool done = false;
    switch (x.response.framing) {
      case http::BodyFraming::Length:
        take = std::min<uint64_t>(take, x.response_remaining);
        x.response_body->push(data, take);
        x.response_remaining -= take;
        done = x.response_remaining == 0;
        break;
      case http::BodyFraming::Chunked:
        take = x.chunked.feed(data, take, [&](const char* p, size_t n) { x.response_body->push(p, n); });
        if (x.chunked.bad()) {
          const std::string why = "the upstream's chunked body is malformed: " + x.chunked.error();
          record_exchange(c, x.status, "the upstream broke off the response: " + why);
          drop_upstream(c);
          end(c, "");
          return;
        }
        done = x.chunked.done();
        break;
      case http::BodyFraming::UntilClose:
        x.response_body->push(data, take);
        break;
      case http::BodyFraming::None:
        take = 0;
        done = true;
        break;
    }
    c.bytes_out += take;
    bool sent;
    if (!x.head_pending.empty()) {
      x.head_pending.append(data, take);
      sent = send_bytes(c, x.head_pending.data(), x.head_pending.size());
      x.head_pending.clear();
    } else {
      sent = send_bytes(c, data, take);
    }
    if (!sent) {
      up.consume(take);
      client_failed(c, std::string("the client connection failed: ") + strerror(errno));
      return;
    }
    up.consume(take);
    if (done) {
      response_done(c);
      return;
    }
    // Backpressure: the upstream waits while the agent's output is long.
    if (!wants_input(up)) watch(up, false, up.want_out);
  }

  void response_done(Conn& c) {
    Exchange& x = c.x;
    if (c.upstream != nullptr) {
      Upstream* up = c.upstream;
      c.upstream = nullptr;
      if (x.upstream_reusable && up->view() == 0 && up->out.empty() && idle_[up->target].size() < kIdlePerTarget) {
        up->conn = nullptr;
        up->reused = false;
        up->idle_since = monotonic_ns();
        watch(*up, true, false);
        idle_[up->target].emplace_back(up);
        idle_count_++;
      } else {
        dispose(up);
      }
    }
    record_exchange(c, x.status, "");
    finish_exchange(c);
  }

  // The exchange is over: the next request (or the close the agent asked for).
  void finish_exchange(Conn& c) {
    c.in_exchange = false;
    const bool close_after = c.x.client_close || (c.x.response_started && c.x.response.framing == http::BodyFraming::UntilClose);
    if (close_after) {
      c.phase = Phase::Closing;
      if (c.out.empty()) end(c, "");
      return;
    }
    c.phase = Phase::Head;
    c.deadline = monotonic_ns() + settings_.keep_alive_timeout_ns;
    watch(c, true, c.want_out);
    advance(c);
  }

  void drop_upstream(Conn& c) {
    if (c.upstream == nullptr) return;
    dispose(c.upstream);
    c.upstream = nullptr;
  }

  void retire_idle(Upstream& up) {
    auto& pool = idle_[up.target];
    for (size_t i = 0; i < pool.size(); i++) {
      if (pool[i].get() == &up) {
        dispose(pool[i].release());
        pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
        idle_count_--;
        return;
      }
    }
  }

  // ---------------------------------------------------------------- records

  void record_exchange(Conn& c, int status, const std::string& error) {
    Exchange& x = c.x;
    if (x.session == nullptr || x.recorded) return;
    x.recorded = true;
    httprec::ExchangeRecord& r = exchange_record_;
    r.method = x.method;
    r.path = x.decision->route_path;
    r.status = static_cast<uint32_t>(status);
    r.query = x.query;
    r.exchange_id = x.exchange_id;
    // A body read in part (its connection failed) still has its excerpt; one never reached has none.
    r.request_body = &*x.request_body;
    // Written ahead, the request record holds the body whole (the loop reads it before forwarding).
    r.request_body_in_record = x.request_written;
    r.response.reset();
    if (x.response_started) {
      r.response.emplace();
      httprec::record_headers(r.response->headers, x.response_fields.data(), x.response_fields.size(), settings_.recorded, settings_.redacted);
      r.response->body = &*x.response_body;
      r.response->first_byte_nano = x.first_byte_ns;
      x.session->bytes_to_client += x.response_body->size();
    }
    x.session->bytes_from_client += x.request_body->size();
    r.duration_nano = monotonic_ns() - x.started_mono;
    r.error = error;
    r.request_headers.clear();
    r.policy_rule = std::string_view();
    if (!settings_.write_ahead) {
      r.request_headers.swap(x.request_headers);
      r.policy_rule = x.decision->rule;
    }
    scratch_.clear();
    const eventrec::EventHead head{x.session->session_id, ++x.session->event_seq, realtime_ns()};
    httprec::append_exchange_record(scratch_, head.time_unix_nano, head, r);
    if (!settings_.write_ahead) r.request_headers.swap(x.request_headers);
    try {
      // Deferred, as the JavaScript path's outcome: written with the next round's write, synced within 5 ms.
      chain_->append(scratch_.data(), scratch_.size(), nullptr);
    } catch (const std::exception& err) {
      end(c, std::string("journal append failed: ") + err.what());
    }
  }

  // ---------------------------------------------------------------- endings

  // The connection goes back to JavaScript at the request that starts at its input's front.
  void hand_back(Conn& c) {
    if (c.ended) return;
    if (c.upstream != nullptr) drop_upstream(c);
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) & ~O_NONBLOCK);
    Event e;
    e.kind = Event::HandBack;
    e.handle = c.handle;
    e.fd = c.fd;
    e.rest.assign(c.in, c.in_at, std::string::npos);
    // The end of a response the agent has not taken yet: JavaScript writes it first.
    e.pending.swap(c.out);
    e.bytes_in = c.bytes_in;  // the rest included: JavaScript does not read those bytes from the socket again
    e.bytes_out = c.bytes_out;
    for (auto& [key, slot] : c.sessions) e.sessions.push_back(*slot);
    c.fd = -1;
    c.ended = true;
    post(std::move(e));
    ended_.push_back(c.handle);
  }

  void end(Conn& c, const std::string& failure) {
    if (c.ended) return;
    c.ended = true;
    drop_upstream(c);
    if (!c.out.empty()) {
      ssize_t ignored = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)ignored;
    }
    close_fd(c.fd);
    Event e;
    e.kind = Event::Ended;
    e.handle = c.handle;
    e.failure = failure;
    e.bytes_in = c.bytes_in;
    e.bytes_out = c.bytes_out;
    for (auto& [key, slot] : c.sessions) e.sessions.push_back(*slot);
    post(std::move(e));
    ended_.push_back(c.handle);
  }

  // Deadlines: a head not complete in time goes back to JavaScript (which answers 408 as it does),
  // an idle keep-alive connection closes, an upstream that does not answer in time gets a 504.
  void sweep(int64_t now) {
    std::vector<Conn*> due;
    for (auto& entry : conns_) {
      Conn& c = *entry.second;
      if (!c.ended && c.deadline != 0 && c.deadline <= now) due.push_back(&c);
    }
    for (Conn* c : due) {
      if (c->ended) continue;
      switch (c->phase) {
        case Phase::Head:
          if (c->view() > 0) hand_back(*c);
          else end(*c, "");
          break;
        case Phase::Body:
          hand_back_mid_body(*c);
          break;
        case Phase::Waiting:
          drop_upstream(*c);
          upstream_failed(*c, "no response within " + std::to_string(settings_.upstream_timeout_ns / 1000000) + " ms", 504);
          break;
        default:
          break;
      }
    }
    // Idle upstream connections are closed after the agents' keep-alive time.
    for (auto& pool : idle_) {
      for (size_t i = 0; i < pool.size();) {
        if (now - pool[i]->idle_since > settings_.keep_alive_timeout_ns) {
          dispose(pool[i].release());
          pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
          idle_count_--;
        } else {
          i++;
        }
      }
    }
  }

  // A body that does not arrive in time: the exchange is recorded as the JavaScript path's request
  // timeout would leave it, and the connection closes (its bytes cannot be replayed once admitted).
  void hand_back_mid_body(Conn& c) {
    record_exchange(c, 0, "the client stopped sending the body, or sent a malformed one");
    end(c, "");
  }

  void reap() {
    for (uint64_t handle : ended_) {
      if (conns_.erase(handle) > 0) syncer_.connection_closed();
    }
    ended_.clear();
    for (Upstream* up : dead_) delete up;
    dead_.clear();
  }

  JournalChain* chain_;
  Settings settings_;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::vector<uint64_t> ended_;
  std::vector<uint64_t> queued_;
  std::vector<std::pair<uint64_t, uint64_t>> parked_;  // handle, the seq its record needs durable
  std::string sync_failed_;
  std::unordered_map<std::string, std::shared_ptr<Decision>> decisions_;
  unsigned char salt_[32];
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> digest_{EVP_MD_CTX_new(), EVP_MD_CTX_free};  // of the kept decisions' Authorization digests (per process, never leaves it)
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<std::vector<std::unique_ptr<Upstream>>> idle_;
  size_t idle_count_ = 0;
  std::vector<Upstream*> dead_;  // disposed this round
  uint64_t questions_ = 0;
  int64_t next_sweep_ = 0;
  std::vector<unsigned char> scratch_;
  std::vector<std::pair<std::string_view, std::string_view>> fields_;
  std::vector<http::HeaderField> response_fields_;
  httprec::RequestRecord request_record_;
  httprec::ExchangeRecord exchange_record_;
  std::string number_;
};

Napi::Array session_array(Napi::Env env, const std::vector<SessionSlot>& sessions) {
  Napi::Array out = Napi::Array::New(env, sessions.size());
  for (size_t i = 0; i < sessions.size(); i++) {
    const SessionSlot& s = sessions[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("sessionId", s.session_id);
    o.Set("eventSeq", Napi::Number::New(env, static_cast<double>(s.event_seq)));
    o.Set("exchanges", Napi::Number::New(env, s.exchanges));
    o.Set("bytesFromClient", Napi::Number::New(env, static_cast<double>(s.bytes_from_client)));
    o.Set("bytesToClient", Napi::Number::New(env, static_cast<double>(s.bytes_to_client)));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

void deliver_http_events(Napi::Env env, Napi::Function callback, std::vector<Event> events) {
  Napi::Array out = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) {
    const Event& e = events[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("handle", Napi::Number::New(env, static_cast<double>(e.handle)));
    switch (e.kind) {
      case Event::Decide:
        o.Set("kind", "decide");
        o.Set("question", Napi::Number::New(env, static_cast<double>(e.question)));
        o.Set("method", e.method);
        o.Set("path", e.path);
        o.Set("query", e.query);
        o.Set("host", Napi::Buffer<char>::Copy(env, e.host.data(), e.host.size()));
        if (e.has_authorization) o.Set("authorization", Napi::Buffer<char>::Copy(env, e.authorization.data(), e.authorization.size()));
        break;
      case Event::Durable:
        break;
      case Event::HandBack:
        o.Set("kind", "handback");
        o.Set("fd", Napi::Number::New(env, e.fd));
        o.Set("rest", Napi::Buffer<char>::Copy(env, e.rest.data(), e.rest.size()));
        o.Set("pending", Napi::Buffer<char>::Copy(env, e.pending.data(), e.pending.size()));
        break;
      case Event::Ended:
        o.Set("kind", "ended");
        o.Set("failure", e.failure);
        break;
    }
    if (e.kind == Event::HandBack || e.kind == Event::Ended) {
      o.Set("bytesIn", Napi::Number::New(env, static_cast<double>(e.bytes_in)));
      o.Set("bytesOut", Napi::Number::New(env, static_cast<double>(e.bytes_out)));
      o.Set("sessions", session_array(env, e.sessions));
    }
    out.Set(static_cast<uint32_t>(i), o);
  }
  callback.Call({out});
}

std::string string_of(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

double number_of(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
}

httprec::NameSet name_set(const Napi::Value& value) {
  httprec::NameSet out;
  if (!value.IsArray()) return out;
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) out.push_back(array.Get(i).As<Napi::String>().Utf8Value());
  return httprec::make_name_set(std::move(out));
}

class HttpDataPathBinding : public Napi::ObjectWrap<HttpDataPathBinding> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "HttpDataPath",
                       {
                           InstanceMethod<&HttpDataPathBinding::Adopt>("adopt"),
                           InstanceMethod<&HttpDataPathBinding::Decided>("decided"),
                           InstanceMethod<&HttpDataPathBinding::Stop>("stop"),
                       });
  }

  // new HttpDataPath(chain: JournalChain, onEvents: (events: object[]) => void, settings)
  explicit HttpDataPathBinding(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HttpDataPathBinding>(info) {
    JournalChain* chain = unwrap_journal_chain(info[0]);
    chain_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    if (!info[2].IsObject()) throw Napi::TypeError::New(info.Env(), "settings must be an object");
    Napi::Object o = info[2].As<Napi::Object>();
    Settings s;
    s.max_header_bytes = static_cast<uint64_t>(number_of(o, "maxHeaderBytes"));
    s.max_body_bytes = static_cast<uint64_t>(number_of(o, "maxBodyBytes"));
    s.buffer_body_bytes = static_cast<uint64_t>(number_of(o, "bufferBodyBytes"));
    s.headers_timeout_ns = static_cast<int64_t>(number_of(o, "headersTimeoutMs")) * 1000000;
    s.request_timeout_ns = static_cast<int64_t>(number_of(o, "requestTimeoutMs")) * 1000000;
    s.keep_alive_timeout_ns = static_cast<int64_t>(number_of(o, "keepAliveTimeoutMs")) * 1000000;
    s.upstream_timeout_ns = static_cast<int64_t>(number_of(o, "upstreamTimeoutMs")) * 1000000;
    s.write_ahead = o.Get("writeAhead").ToBoolean();
    s.read_durable = o.Get("readDurable").ToBoolean();
    s.body_bytes = static_cast<uint64_t>(number_of(o, "bodyBytes"));
    s.binary_bodies = o.Get("binaryBodies").ToBoolean();
    s.recorded = name_set(o.Get("recordHeaders"));
    s.redacted = name_set(o.Get("redactHeaders"));
    auto tsfn = Napi::ThreadSafeFunction::New(info.Env(), info[1].As<Napi::Function>(), "gapwatch-http-datapath", 0, 1);
    loop_ = std::make_unique<HttpLoop>(chain, tsfn, std::move(s));
  }

  ~HttpDataPathBinding() override {
    if (loop_) loop_->stop();
  }

 private:
  // adopt(fd, handle, clientIp): the descriptor is dup'd; the caller closes its own.
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    Command c;
    c.kind = Command::Adopt;
    // Close-on-exec, as Node's own descriptors are (see pg-datapath.cc).
    c.fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    if (c.fd < 0) throw Napi::Error::New(info.Env(), std::string("F_DUPFD_CLOEXEC: ") + strerror(errno));
    c.handle = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    c.client_ip = info[2].As<Napi::String>().Utf8Value();
    const int fd = c.fd;
    if (!loop_->command(std::move(c))) {
      close(fd);
      throw Napi::Error::New(info.Env(), "the native http data path has stopped (the gateway is shutting down)");
    }
    return info.Env().Undefined();
  }

  // decided(handle, question, answer | null): null hands the connection back.
  Napi::Value Decided(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Command c;
    c.kind = Command::Decided;
    c.handle = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    c.question = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
    if (info[2].IsObject()) {
      Napi::Object a = info[2].As<Napi::Object>();
      auto d = std::make_shared<Decision>();
      d->login = string_of(a, "login");
      d->target = static_cast<size_t>(number_of(a, "target"));
      d->route_path = string_of(a, "routePath");
      d->upstream_path = string_of(a, "upstreamPath");
      d->rule = string_of(a, "rule");
      d->credential_name = string_of(a, "credentialName");
      d->credential_value = string_of(a, "credentialValue");
      d->secret = string_of(a, "secret");
      d->valid_until = monotonic_ns() + static_cast<int64_t>(number_of(a, "validMs")) * 1000000;
      Napi::Value files = a.Get("files");
      if (files.IsArray()) {
        Napi::Array list = files.As<Napi::Array>();
        for (uint32_t i = 0; i < list.Length(); i++) d->files.emplace_back(list.Get(i).As<Napi::String>().Utf8Value(), FileStamp());
      }
      Napi::Object session = a.Get("session").As<Napi::Object>();
      c.session.session_id = string_of(session, "sessionId");
      c.session.event_seq = static_cast<uint64_t>(number_of(session, "eventSeq"));
      c.session.exchanges = static_cast<uint32_t>(number_of(session, "exchanges"));
      Napi::Value spec = a.Get("targetSpec");
      if (spec.IsObject()) {
        Napi::Object t = spec.As<Napi::Object>();
        Target target;
        const std::string address = string_of(t, "address");
        const uint16_t port = static_cast<uint16_t>(number_of(t, "port"));
        sockaddr_in v4{};
        sockaddr_in6 v6{};
        if (inet_pton(AF_INET, address.c_str(), &v4.sin_addr) == 1) {
          v4.sin_family = AF_INET;
          v4.sin_port = htons(port);
          std::memcpy(&target.address, &v4, sizeof v4);
          target.address_length = sizeof v4;
          target.display = address + ":" + std::to_string(port);
        } else if (inet_pton(AF_INET6, address.c_str(), &v6.sin6_addr) == 1) {
          v6.sin6_family = AF_INET6;
          v6.sin6_port = htons(port);
          std::memcpy(&target.address, &v6, sizeof v6);
          target.address_length = sizeof v6;
          target.display = address + ":" + std::to_string(port);
        } else {
          throw Napi::TypeError::New(env, "targetSpec.address must be an IP address");
        }
        target.forward = http::make_forward_target(string_of(t, "hostHeader"), string_of(t, "credentialHeader"));
        target.resource = string_of(t, "resource");
        c.target = std::move(target);
      }
      c.session_key = d->login + '\0' + string_of(a, "resource");
      c.decision = std::move(d);
    }
    loop_->command(std::move(c));
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (loop_) loop_->stop();
    return info.Env().Undefined();
  }

  Napi::ObjectReference chain_ref_;
  std::unique_ptr<HttpLoop> loop_;
};

}  // namespace

void register_http_datapath(Napi::Env env, Napi::Object exports) { exports.Set("HttpDataPath", HttpDataPathBinding::Define(env)); }

}  // namespace gapwatch
