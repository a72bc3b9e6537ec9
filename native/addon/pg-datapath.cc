// The PostgreSQL gateway's native session loop (gateway/postgres/README.md, "The native data path").
// After JavaScript has authenticated a session and logged in upstream it hands both sockets over; one
// epoll thread then frames both directions, keeps prepared statements, portals and the queue of
// answers owed (as proxy-session.ts's units), writes the same PgRequest record ahead of forwarding and
// the same Statement outcome after (pg-records.*) to the journal's one chain (journal-chain.*) — the
// request records of one epoll round in one write —, asks JavaScript (a thread-safe function) for a
// policy decision on each statement text it has not seen, and answers refusals, reviews, COPY,
// FunctionCall, cancels and bad input as the JavaScript proxy does. Requests that can change state
// wait for a sync thread's fdatasync before they are forwarded. Sessions whose results are masked
// stay on the JavaScript path (listener.ts decides at hand-off).
#include "pg-datapath.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "chain-syncer.h"
#include "journal-chain.h"
#include "loop-channel.h"
#include "literal-shape.h"
#include "pg-records.h"

namespace gapwatch {

namespace {

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint32_t be32(const unsigned char* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// Reads one frontend/backend message body.
struct Reader {
  const unsigned char* p;
  const unsigned char* end;
  bool ok = true;
  std::string_view cstring() {
    const unsigned char* z = static_cast<const unsigned char*>(std::memchr(p, 0, static_cast<size_t>(end - p)));
    if (z == nullptr) {
      ok = false;
      return {};
    }
    std::string_view out(reinterpret_cast<const char*>(p), static_cast<size_t>(z - p));
    p = z + 1;
    return out;
  }
  uint32_t u32() {
    if (end - p < 4) {
      ok = false;
      return 0;
    }
    uint32_t v = be32(p);
    p += 4;
    return v;
  }
  uint16_t u16() {
    if (end - p < 2) {
      ok = false;
      return 0;
    }
    uint16_t v = be16(p);
    p += 2;
    return v;
  }
  std::string_view bytes(size_t n) {
    if (static_cast<size_t>(end - p) < n) {
      ok = false;
      return {};
    }
    std::string_view out(reinterpret_cast<const char*>(p), n);
    p += n;
    return out;
  }
};

// What a statement may do, for the write-ahead record's acknowledgement (statement-durability.ts).
enum class Effect { None, Begin, Savepoint, Rollback, RollbackChain, Commit, CommitChain, Transactional, Immediate };

struct Decision {
  bool allow = false;
  bool review = false;  // held until a human decides (JavaScript runs the review)
  std::string rule, reason;
  std::vector<std::string> classes;
  std::vector<std::string> statements;  // a simple Query's statements, in order
  bool effects_known = false;           // false: unclassified, so durable before forwarding
  std::vector<Effect> effects;
  // The evaluation changed the session's policy state (search_path, prepared statement names): the
  // decision is for this statement only, and every decision kept before it is dropped.
  bool stateful = false;
  // Holds for every text of the statement's literal shape (literal_shape()): the statements' spans
  // in the shape, from which another text of the shape gets its statement texts.
  bool has_shape = false;
  std::vector<std::pair<size_t, size_t>> shape_spans;
  // How the statement, once allowed, moves the transaction block as the policy engine follows it
  // (blockTransition() of policy-engine.ts): 'k' keeps it, 'n' leaves no block open, 'm' may open one.
  char block = 'k';
};

// The policy engine's view of the transaction block after a statement with this transition.
static bool next_policy_block(bool maybe, char transition) { return transition == 'k' ? maybe : transition == 'm'; }

// String.prototype.trim() for the ASCII texts literal shapes are made of.
static std::string_view trim_ascii(std::string_view text) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

// requestAck() of statement-durability.ts: whether the request must be durable (fsync'd) before it
// is forwarded, and the transaction block it leaves the session in.
bool needs_durable_ack(const std::vector<Effect>& effects, bool& in_block) {
  bool durable = false;
  for (Effect e : effects) {
    switch (e) {
      case Effect::None:
      case Effect::Savepoint:
      case Effect::RollbackChain:
        break;
      case Effect::Begin:
        in_block = true;
        break;
      case Effect::Rollback:
        in_block = false;
        break;
      case Effect::Commit:
        durable = true;
        in_block = false;
        break;
      case Effect::CommitChain:
        durable = true;
        break;
      case Effect::Transactional:
        if (!in_block) durable = true;
        break;
      case Effect::Immediate:
        durable = true;
        break;
    }
  }
  return durable;
}

// A result's column names; null while unknown. Shared: a portal's Describe usually repeats its
// statement's columns, and then costs no allocation.
using Columns = std::shared_ptr<const std::vector<std::string>>;

struct Statement {
  std::string text;
  std::shared_ptr<Decision> decision;
  Columns columns;
};

struct Portal {
  std::string statement_name;
  std::shared_ptr<Statement> statement;
  std::vector<std::string> parameters;  // as parameterDisplay shows them (raw bytes for text)
  Columns columns;
};

struct Run {
  const char* via = "";
  std::shared_ptr<Portal> portal;  // extended: what was bound (a later Bind makes a new one)
  std::string portal_name;
  std::shared_ptr<Decision> decision;
  const std::string* text = nullptr;  // simple query: one of decision->statements
  int64_t start_ns = 0;
  uint64_t rows = 0;
  Columns columns;
  std::string own_text;  // a FunctionCall's "function <oid>(<arguments>)"
  bool finished = false;  // a FunctionCall's outcome is journaled (its ReadyForQuery still to come)
  bool copy = false;  // the statement is a COPY: its transfer is journaled after it
  bool copy_in = false;
  uint64_t copy_bytes = 0;
};

enum class UnitKind { Parse, Bind, Close, Describe, Execute, Sync, Query, LocalAnswer, FunctionCall };

struct Unit {
  explicit Unit(UnitKind k) : kind(k) {}
  UnitKind kind;
  std::string name;                      // Parse: statement; Describe: target name
  bool portal_target = false;            // Describe
  std::shared_ptr<Statement> statement;  // Parse
  Run run;                               // Execute; Query: the current statement's
  std::shared_ptr<Decision> decision;    // Query
  size_t index = 0;                      // Query: statements done
  bool run_open = false;                 // Query
  bool ready_at_send = false;            // LocalAnswer: ends with ReadyForQuery in the status of its time
  bool released = false;                 // LocalAnswer: its records are written (and fsync'd when they
                                         // must be): it may go out once everything before it is answered
  std::vector<unsigned char> answer;     // LocalAnswer: sent once everything before it is answered;
                                         // Sync: a refusal sent before its ReadyForQuery
  bool saw_error = false;                // Sync
};

struct Side {
  int fd = -1;
  bool client = false;
  struct Session* session = nullptr;
  std::vector<unsigned char> in;    // received, not yet handled
  std::vector<unsigned char> out;   // to send, not yet taken by the socket
  bool want_out = false;
  bool reading = true;  // EPOLLIN wanted: off while too much from this side waits to go on (pace())
};

struct Session {
  uint64_t handle = 0;
  std::string session_id;
  uint64_t event_seq = 0;
  Side client, upstream;
  std::unordered_map<std::string, std::shared_ptr<Statement>> statements;
  std::unordered_map<std::string, std::shared_ptr<Portal>> portals;
  std::deque<Unit> units;
  // Decisions kept for reuse while the session's policy state stays as it is: by text ("<via>\0<text>")
  // or, for literal-blind ones, by literal shape ("<via>\1<shape>").
  std::unordered_map<std::string, std::shared_ptr<Decision>> decisions;
  // The decision for each message of the input not yet handled (by position; null: not decided or no
  // statement), and the questions to JavaScript not answered yet: their positions and keys, in the
  // order asked, which is the order the answers come in.
  std::vector<std::shared_ptr<Decision>> pinned;
  // The loop follows the transaction block as the policy engine does, from the decisions it pins
  // (decisions kept for transaction control need no question then): whether a block may be open
  // after the last pinned message, and before each pinned message. A question carries it when no
  // other is open (else JavaScript's own view, moved on by the questions before, is the same).
  bool policy_block = false;
  std::vector<unsigned char> pinned_block;
  std::deque<size_t> asked_at;
  std::deque<std::string> asked_keys;
  // A Close of a prepared statement changes JavaScript's policy state (the name is forgotten): it is
  // told in the asking pass, in order with the questions, once per message (forget_told, by position
  // like pinned).
  std::vector<unsigned char> forget_told;
  bool waiting_for_answers() const { return !asked_at.empty(); }
  uint64_t bytes_from_client = 0, bytes_to_client = 0;
  bool skip_until_sync = false;  // a refused Parse: everything up to Sync is withheld
  // The server failed a message of an extended batch whose Sync it has not been sent yet: it skips
  // everything up to that Sync, so what is forwarded meanwhile is owed no answer (a pipelining client
  // that sends the rest of its batch later, or a statement held for review behind the failed one).
  bool upstream_skipping = false;
  std::vector<unsigned char> batch_refusal;
  bool forwarded_in_batch = false;
  bool needs_durable = false;    // this round's request record must be fsync'd before its bytes go on
  bool parked = false;           // waiting for the sync thread's fdatasync (durable_at)
  uint64_t durable_at = 0;
  uint64_t request_seq = 0;      // the last request record appended for it
  Run* copy_in = nullptr;        // the COPY FROM STDIN running: the agent's CopyData counts into it
  // A statement held for review: 1 = asked JavaScript to open the review, 2 = held until it ends.
  // It stays at the front of client.in meanwhile; once approved it runs, its record already written.
  int review_stage = 0;
  char review_via = 0;
  std::string review_text, review_id;
  std::shared_ptr<Decision> review_decision;
  bool review_block = false;     // the policy block before the held statement
  bool review_approved = false;
  bool in_block = false;         // inside a transaction block, as far as the gateway can tell
  bool read_durable = false;     // readDurability: durable — every request waits for its fdatasync
  // audit.durability before-reply: a request that needs durable goes upstream at once (its record
  // written first, as every request's is), and everything for the agent from then on is held until
  // the fdatasync covering that record is done (reply_after <= the loop's synced_).
  bool before_reply = false;
  uint64_t reply_after = 0;
  bool holding = false;                 // listed in holding_
  std::vector<unsigned char> held;      // bytes for the agent, in order, while held
  unsigned char transaction_status = 'I';
  bool ended = false;
  // Bytes for upstream whose request record waits for this round's one write of the journal.
  std::vector<unsigned char> ahead;
  bool terminate_after = false;  // Terminate received: forwarded once every answer owed is in
  bool client_gone = false;      // the client closed its side: answers owed are still journaled
  bool queued = false;
  uint32_t max_message_bytes = 0;
};

std::string decision_key(char via, std::string_view text) {
  std::string key(1, via);
  key.push_back('\0');
  key.append(text);
  return key;
}

// The key of a decision kept for every text of a literal shape.
std::string shape_key(char via, const Shape& shape) {
  std::string key(1, via);
  key.push_back('\1');
  key.append(shape.key);
  return key;
}

struct Event {
  enum Kind { Decide, Review, Forget, Ended } kind;
  uint64_t handle = 0;
  char via = 0;
  std::string text;
  std::string name;  // a Parse's or a Close's statement name (JavaScript's policy state follows named statements)
  char block = 0;    // Decide, Review: the policy block before the statement ('n', 'm'), 0 when JavaScript's own holds
  bool failed = false;
  std::string failure;
  uint64_t bytes_in = 0, bytes_out = 0, event_seq = 0;
};

struct Command {
  enum Kind { Adopt, Decided, Synced, Reviewing, Reviewed, Terminate, Stop } kind;
  uint64_t handle = 0;
  int client_fd = -1, upstream_fd = -1;
  std::string session_id;
  uint64_t event_seq = 0;
  uint32_t max_message_bytes = 0;
  bool read_durable = false;
  bool before_reply = false;
  char via = 0;
  std::string text;
  std::shared_ptr<Decision> decision;
  std::string review_id, outcome, reviewer, reason;  // Reviewing / Reviewed; Terminate: reason
  uint64_t synced_seq = 0;   // Synced: the last record the fdatasync covered
  std::string sync_failure;  // Synced: why the sync thread stopped
};

void deliver_events(Napi::Env env, Napi::Function callback, std::vector<Event> events);

class DataPath : public NativeLoop<Command, Event> {
 public:
  DataPath(JournalChain* chain, Napi::ThreadSafeFunction events) : NativeLoop(chain, events, deliver_events, std::chrono::microseconds(0)), chain_(chain) {
    start();
  }

  ~DataPath() override { stop(); }

 private:
  void loop() override {
    epoll_event ready[64];
    for (;;) {
      int n = epoll_wait(epoll_fd_, ready, 64, queued_.empty() ? -1 : 1);
      if (n < 0 && errno != EINTR) return;
      for (int i = 0; i < n; i++) {
        if (ready[i].data.ptr == nullptr) {
          if (!run_commands()) return;
          continue;
        }
        Side* side = static_cast<Side*>(ready[i].data.ptr);
        Session* s = side->session;
        if (s->ended) continue;
        if (ready[i].events & EPOLLOUT) flush(*side);
        if (s->ended) continue;
        if (ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) receive(*side);
      }
      flush_ahead();
      reap();
    }
  }

  bool run_commands() {
    for (Command& c : channel_.take_commands()) {
      switch (c.kind) {
        case Command::Stop:
          // The agent is told, as PostgreSQL tells it (admin_shutdown), and the session ends closed.
          for (auto& entry : sessions_) terminate(*entry.second, "terminating connection: the gateway is shutting down", false, "");
          reap();
          return false;
        case Command::Terminate: {
          auto found = sessions_.find(c.handle);
          if (found != sessions_.end()) terminate(*found->second, "terminating connection: " + c.reason, true, c.reason);
          break;
        }
        case Command::Adopt:
          adopt(c);
          break;
        case Command::Synced:
          if (!c.sync_failure.empty()) {
            for (const std::vector<uint64_t>* waiting : {&parked_, &holding_}) {
              for (uint64_t handle : *waiting) {
                auto found = sessions_.find(handle);
                if (found != sessions_.end()) end(*found->second, true, c.sync_failure);
              }
            }
            parked_.clear();
            holding_.clear();
            sync_failed_ = c.sync_failure;
            break;
          }
          if (c.synced_seq > synced_) synced_ = c.synced_seq;
          release_parked();
          release_replies();
          break;
        case Command::Reviewing:
        case Command::Reviewed: {
          auto found = sessions_.find(c.handle);
          if (found == sessions_.end() || found->second->ended || found->second->review_stage == 0) break;
          if (c.kind == Command::Reviewing) review_opened(*found->second, c.review_id);
          else review_closed(*found->second, c.outcome, c.reviewer, c.reason);
          pace(*found->second);
          break;
        }
        case Command::Decided: {
          auto found = sessions_.find(c.handle);
          if (found == sessions_.end() || found->second->ended) break;
          Session& s = *found->second;
          if (s.asked_at.empty() || s.asked_keys.front() != decision_key(c.via, c.text) || s.asked_at.front() >= s.pinned.size()) {
            end(s, true, "native data path: a policy decision out of step with the questions asked");
            break;
          }
          pin(s, s.asked_at.front(), c.decision);
          s.asked_at.pop_front();
          s.asked_keys.pop_front();
          // JavaScript's policy state moved on with this statement: no decision kept before holds for
          // what follows it (those already pinned to messages before it stay theirs).
          if (c.decision->stateful) s.decisions.clear();
          else keep_decision(s, c.via, c.text, c.decision);
          if (!s.waiting_for_answers() && !s.parked) handle_client(s);
          pace(s);
          break;
        }
      }
    }
    return true;
  }

  void adopt(const Command& c) {
    auto s = std::make_unique<Session>();
    s->handle = c.handle;
    s->session_id = c.session_id;
    s->event_seq = c.event_seq;
    s->max_message_bytes = c.max_message_bytes;
    s->read_durable = c.read_durable;
    s->before_reply = c.before_reply;
    s->client.fd = c.client_fd;
    s->client.client = true;
    s->client.session = s.get();
    s->upstream.fd = c.upstream_fd;
    s->upstream.session = s.get();
    for (Side* side : {&s->client, &s->upstream}) {
      fcntl(side->fd, F_SETFL, fcntl(side->fd, F_GETFL) | O_NONBLOCK);
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.ptr = side;
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, side->fd, &e);
    }
    sessions_[c.handle] = std::move(s);
    syncer_.connection_opened();
  }

  void watch(Side& side, bool out) {
    if (side.want_out == out) return;
    side.want_out = out;
    interest(side);
  }

  void interest(Side& side) {
    epoll_event e{};
    e.events = (side.reading ? EPOLLIN : 0) | (side.want_out ? EPOLLOUT : 0);
    e.data.ptr = &side;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, side.fd, &e);
  }

  // Backpressure: a side is read no further while what came from it and has not gone on yet (bytes
  // for its peer the peer's socket has not taken, answers held for an fdatasync, the agent's messages
  // waiting for a policy answer or an fdatasync) reaches kPauseAt, and again once that is under
  // kResumeAt. An agent that stops reading a large result stops the server's side, as PostgreSQL
  // itself would be stopped by a full socket: the loop holds about kPauseAt per direction and
  // session, plus the message being read (before 2026-11-26 23:30 it held the whole result). A
  // message still arriving never counts: it goes on only once it is whole.
  static constexpr size_t kPauseAt = 1u << 20;
  static constexpr size_t kResumeAt = 256u << 10;

  void pace(Session& s) {
    if (s.ended) return;
    const bool waiting = s.waiting_for_answers() || s.parked || s.review_stage != 0;
    if (!s.client_gone) set_reading(s.client, (waiting ? s.client.in.size() : 0) + s.ahead.size() + s.upstream.out.size());
    set_reading(s.upstream, s.held.size() + s.client.out.size());
  }

  void set_reading(Side& side, size_t waiting) {
    const bool reading = side.reading ? waiting < kPauseAt : waiting < kResumeAt;
    if (reading == side.reading) return;
    side.reading = reading;
    interest(side);
  }

  void send_to(Side& side, const unsigned char* bytes, size_t length) {
    if (length == 0) return;
    if (side.client && side.session->reply_after > synced_) {
      // before-reply: held until the fdatasync the session's last durable request waits for.
      side.session->held.insert(side.session->held.end(), bytes, bytes + length);
      return;
    }
    if (side.out.empty()) {
      ssize_t n = send(side.fd, bytes, length, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          end(*side.session, true, std::string("send failed: ") + strerror(errno));
          return;
        }
        n = 0;
      }
      bytes += n;
      length -= static_cast<size_t>(n);
      if (length == 0) return;
      watch(side, true);
    }
    side.out.insert(side.out.end(), bytes, bytes + length);
  }

  void flush(Side& side) {
    if (side.out.empty()) {
      watch(side, false);
      return;
    }
    ssize_t n = send(side.fd, side.out.data(), side.out.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      end(*side.session, true, std::string("send failed: ") + strerror(errno));
      return;
    }
    side.out.erase(side.out.begin(), side.out.begin() + n);
    if (side.out.empty()) watch(side, false);
    pace(*side.session);
  }

  void receive(Side& side) {
    unsigned char buffer[65536];
    Session& s = *side.session;
    ssize_t n = read(side.fd, buffer, sizeof buffer);
    if (n == 0) {
      if (side.client) client_closed(s);
      else end(s, true, "the upstream server closed the connection");
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      end(s, true, std::string(side.client ? "client" : "upstream") + " connection error: " + strerror(errno));
      return;
    }
    side.in.insert(side.in.end(), buffer, buffer + n);
    if (side.client) {
      s.bytes_from_client += static_cast<uint64_t>(n);
      if (!s.waiting_for_answers() && !s.parked) handle_client(s);
    } else {
      handle_upstream(s);
    }
    pace(s);
  }

  // ------------------------------------------------------------------ agent -> upstream

  // Complete messages at the start of `in`: [offset, length) of each, and how far they reach.
  static size_t frames(const std::vector<unsigned char>& in, std::vector<std::pair<size_t, size_t>>& out) {
    size_t at = 0;
    while (in.size() - at >= 5) {
      uint32_t length = be32(in.data() + at + 1);
      if (length < 4 || in.size() - at < 1 + static_cast<size_t>(length)) break;
      out.emplace_back(at, 1 + static_cast<size_t>(length));
      at += 1 + length;
    }
    return at;
  }

  // A decision kept for this text: by its text, else by its literal shape (with this text's statements).
  std::shared_ptr<Decision> kept_decision(Session& s, char via, std::string_view text) {
    auto found = s.decisions.find(decision_key(via, text));
    if (found != s.decisions.end()) return found->second;
    if (!literal_shape(text, shape_)) return nullptr;
    found = s.decisions.find(shape_key(via, shape_));
    if (found == s.decisions.end()) return nullptr;
    auto occurrence = std::make_shared<Decision>(*found->second);
    occurrence->statements.clear();
    for (auto [start, end] : occurrence->shape_spans) {
      const size_t from = std::min(shape_.original(start), text.size());
      const size_t to = std::min(std::max(shape_.original(end), from), text.size());
      occurrence->statements.emplace_back(trim_ascii(text.substr(from, to - from)));
    }
    return occurrence;
  }

  // Keeps a decision (one that did not change the policy state), by literal shape when it holds for it.
  void keep_decision(Session& s, char via, std::string_view text, const std::shared_ptr<Decision>& d) {
    if (s.decisions.size() >= kMaxKeptDecisions) s.decisions.clear();
    if (d->has_shape && literal_shape(text, shape_)) s.decisions[shape_key(via, shape_)] = d;
    else s.decisions[decision_key(via, text)] = d;
  }

  // A forwarded message the server will answer: owed, unless the server is skipping to a Sync not
  // sent yet (upstream_skipping), which answers nothing before it.
  static void owe(Session& s, Unit&& u) {
    if (!s.upstream_skipping) s.units.push_back(std::move(u));
  }

  // The first `count` messages of the input are gone, and their decisions with them (nothing is asked
  // meanwhile: a batch is handled only once every question about it is answered).
  static void forget_pinned(Session& s, size_t count) {
    s.pinned.erase(s.pinned.begin(), s.pinned.begin() + static_cast<std::ptrdiff_t>(std::min(count, s.pinned.size())));
    s.pinned_block.erase(s.pinned_block.begin(), s.pinned_block.begin() + static_cast<std::ptrdiff_t>(std::min(count, s.pinned_block.size())));
    s.forget_told.erase(s.forget_told.begin(), s.forget_told.begin() + static_cast<std::ptrdiff_t>(std::min(count, s.forget_told.size())));
  }

  // Pins a decision to message i, in message order, and follows the block as the policy engine does:
  // an allowed statement moves it (a held one only once approved, a refused one never).
  static void pin(Session& s, size_t i, std::shared_ptr<Decision> d) {
    s.pinned_block[i] = s.policy_block;
    if (d->allow) s.policy_block = next_policy_block(s.policy_block, d->block);
    s.pinned[i] = std::move(d);
  }

  // The agent's complete messages as one batch, once each statement in it has its decision.
  void handle_client(Session& s) {
    if (s.ended || s.terminate_after || s.review_stage != 0 || s.waiting_for_answers()) return;
    std::vector<std::pair<size_t, size_t>>& messages = frames_;
    messages.clear();
    size_t used = frames(s.client.in, messages);
    if (std::string problem = frontend_problem(s, used); !problem.empty()) return protocol_violation(s, problem);
    if (messages.empty()) return;
    const unsigned char* base = s.client.in.data();

    // Every statement of the batch has its decision before anything is journaled, in order: one
    // pinned already (an answer, or kept before), else a decision kept for its text or shape, else
    // JavaScript is asked, which decides in the policy state the statements before it leave. The
    // engine sees what the JavaScript path would show it, in its order: one question at a time (the
    // walk stops at a question and goes on with its answer), nothing past a statement held for
    // review until it is approved, nothing from a refused Parse to its Sync (withheld unread, as the
    // server would skip it), and a Close of a prepared statement where it comes (`forgetStatement`).
    if (s.pinned.size() < messages.size()) {
      s.pinned.resize(messages.size());
      s.pinned_block.resize(messages.size());
      s.forget_told.resize(messages.size());
    }
    bool asking = false;
    bool skipping = s.skip_until_sync;
    for (size_t i = 0; i < messages.size(); i++) {
      auto [at, length] = messages[i];
      unsigned char type = base[at];
      if (skipping) {
        if (type == 'S') skipping = false;
        continue;
      }
      if (type == 'C') {
        if (s.forget_told[i]) continue;
        Reader r{base + at + 5, base + at + length};
        const unsigned char target = r.p < r.end ? *r.p++ : 0;
        std::string_view name = r.cstring();
        if (!r.ok) return end(s, true, "malformed frontend message");
        s.forget_told[i] = 1;
        if (target != 'S') continue;
        // What was decided in the policy state before the Close is not reused after it.
        s.decisions.clear();
        Event e;
        e.kind = Event::Forget;
        e.handle = s.handle;
        e.name.assign(name);
        post(std::move(e));
        continue;
      }
      if (type != 'Q' && type != 'P' && type != 'F') continue;
      if (!s.pinned[i]) {
        Reader r{base + at + 5, base + at + length};
        std::string_view text, name;
        std::string call;
        if (type == 'F') {
          call = function_call_text(r, nullptr);
          text = call;
        } else {
          if (type == 'P') name = r.cstring();
          text = r.cstring();
        }
        if (!r.ok) return end(s, true, "malformed frontend message");
        const char via = type == 'Q' ? 'q' : type == 'P' ? 'p' : 'f';
        // A named Parse is always asked, even when its text has a kept decision (from an unnamed
        // Parse): JavaScript's policy state must learn what the name runs, for a later SQL EXECUTE.
        std::shared_ptr<Decision> d = type == 'P' && !name.empty() ? nullptr : kept_decision(s, via, text);
        if (!d) {
          s.asked_at.push_back(i);
          s.asked_keys.push_back(decision_key(via, text));
          asking = true;
          Event e;
          e.kind = Event::Decide;
          e.handle = s.handle;
          e.via = via;
          e.text.assign(text);
          e.name.assign(name);
          if (s.asked_at.size() == 1) e.block = s.policy_block ? 'm' : 'n';
          post(std::move(e));
          break;
        }
        pin(s, i, std::move(d));
      }
      const Decision& d = *s.pinned[i];
      if (d.review && !(i == 0 && s.review_approved)) break;  // held here: what follows waits for the review
      if (type == 'P' && !d.allow && !d.review) skipping = true;
    }
    if (asking) return;

    // Message records are reused from batch to batch (their vectors keep their capacity).
    size_t record_count = 0;
    size_t consumed = used;  // less when a statement is held for review: it stays at the front
    size_t consumed_messages = messages.size();
    std::vector<unsigned char>& forward = s.ahead;
    bool terminate = false;
    for (size_t i = 0; i < messages.size(); i++) {
      auto [at, length] = messages[i];
      const unsigned char* raw = base + at;
      Reader r{raw + 5, raw + length};
      if (records_.size() == record_count) records_.emplace_back();
      pgrec::PgMessage& m = records_[record_count];
      m.type = {};
      m.withheld = false;
      m.text = m.statement_name = m.portal = {};
      m.parameters.clear();
      m.max_rows = m.function_oid = 0;
      m.parameter_types.clear();
      const unsigned char type = raw[0];
      bool copy_data = false;
      bool journaled = false;  // an approved held statement: its record went out when it was held
      bool held = false;
      if (s.skip_until_sync && type != 'S' && type != 'X') {
        // After a refused Parse the server would skip everything until Sync; so does the gateway.
        fill_record(m, type, r);
        m.withheld = true;
        record_count++;
        continue;
      }
      switch (type) {
        case 'Q': {
          m.type = "Query";
          m.text = r.cstring();
          const std::shared_ptr<Decision>& decision = s.pinned[i];
          const Gate gate = policy_gate(s, 'q', m.text, i, journaled, m);
          if (gate == Gate::Held) {
            consumed = at;
            consumed_messages = i;
            held = true;
            break;
          }
          if (gate == Gate::Refused) {
            record_count++;
            continue;
          }
          forwarding(s, decision.get());
          // The next message runs even if this one fails: its block is known only from the server.
          s.in_block = false;
          Unit u(UnitKind::Query);
          u.decision = decision;
          u.run.start_ns = now_ns();
          owe(s, std::move(u));
          break;
        }
        case 'P': {
          m.type = "Parse";
          m.statement_name = r.cstring();
          m.text = r.cstring();
          uint16_t count = r.u16();
          for (uint16_t k = 0; k < count && r.ok; k++) m.parameter_types.push_back(r.u32());
          const std::shared_ptr<Decision>& decision = s.pinned[i];
          const Gate gate = policy_gate(s, 'p', m.text, i, journaled, m);
          if (gate == Gate::Held) {
            consumed = at;
            consumed_messages = i;
            held = true;
            break;
          }
          if (gate == Gate::Refused) {
            record_count++;
            continue;
          }
          Unit u(UnitKind::Parse);
          u.name.assign(m.statement_name);
          u.statement = std::make_shared<Statement>();
          u.statement->text.assign(m.text);
          u.statement->decision = decision;
          s.statements[u.name] = u.statement;  // as the JS proxy: known from the Parse on
          owe(s, std::move(u));
          break;
        }
        case 'B': {
          m.type = "Bind";
          m.portal = r.cstring();
          m.statement_name = r.cstring();
          uint16_t format_count = r.u16();
          std::vector<uint16_t> formats;
          for (uint16_t i = 0; i < format_count && r.ok; i++) formats.push_back(r.u16());
          uint16_t count = r.u16();
          std::shared_ptr<Portal>& slot = s.portals[std::string(m.portal)];
          // Reused in place unless a queued Execute still holds the previous binding.
          if (!slot || slot.use_count() > 1) slot = std::make_shared<Portal>();
          Portal* portal = slot.get();
          portal->parameters.clear();
          portal->columns.reset();
          portal->statement_name.assign(m.statement_name);
          auto found = s.statements.find(portal->statement_name);
          portal->statement = found != s.statements.end() ? found->second : std::make_shared<Statement>();
          for (uint16_t i = 0; i < count && r.ok; i++) {
            uint32_t value_length = r.u32();
            uint16_t format = format_count == 0 ? 0 : format_count == 1 ? formats[0] : (i < formats.size() ? formats[i] : 0);
            pgrec::Parameter p;
            if (value_length == 0xffffffffu) {
              p.kind = pgrec::ParameterKind::Null;
              portal->parameters.emplace_back("NULL");
            } else {
              p.value = r.bytes(value_length);
              p.kind = format == 1 ? pgrec::ParameterKind::Binary : pgrec::ParameterKind::Text;
              portal->parameters.push_back(display(p));
            }
            m.parameters.push_back(p);
          }
          portal->columns = portal->statement->columns;
          owe(s, Unit(UnitKind::Bind));
          break;
        }
        case 'D':
        case 'C': {
          m.type = type == 'D' ? "Describe" : "Close";
          const unsigned char target = r.p < r.end ? *r.p++ : 0;
          std::string_view name = r.cstring();
          if (target == 'P') m.portal = name;
          else m.statement_name = name;
          Unit u(type == 'D' ? UnitKind::Describe : UnitKind::Close);
          u.name.assign(name);
          u.portal_target = target == 'P';
          if (type == 'C') {
            if (target == 'P') s.portals.erase(u.name);
            else s.statements.erase(u.name);
          }
          owe(s, std::move(u));
          break;
        }
        case 'E': {
          m.type = "Execute";
          m.portal = r.cstring();
          m.max_rows = r.u32();
          Unit u(UnitKind::Execute);
          auto found = s.portals.find(std::string(m.portal));
          u.run.via = "extended";
          u.run.portal_name.assign(m.portal);
          if (found != s.portals.end()) {
            u.run.portal = found->second;
            u.run.decision = found->second->statement->decision;
            u.run.columns = found->second->columns;
          }
          forwarding(s, u.run.decision.get());
          u.run.start_ns = now_ns();
          owe(s, std::move(u));
          break;
        }
        case 'S': {
          m.type = "Sync";
          if (s.skip_until_sync && !s.forwarded_in_batch) {
            // Nothing of the batch went upstream: the gateway answers it itself, in order.
            Unit answer(UnitKind::LocalAnswer);
            answer.answer = std::move(s.batch_refusal);
            answer.ready_at_send = true;
            s.units.push_back(std::move(answer));
            s.skip_until_sync = false;
            s.batch_refusal.clear();
            record_count++;
            continue;
          }
          // The batch ends here: what follows runs whether or not it succeeded.
          s.in_block = false;
          Unit sync(UnitKind::Sync);
          sync.answer = std::move(s.batch_refusal);
          sync.saw_error = s.upstream_skipping;  // the server's error came before this Sync was sent
          s.upstream_skipping = false;
          s.batch_refusal.clear();
          s.skip_until_sync = false;
          s.forwarded_in_batch = false;
          s.units.push_back(std::move(sync));
          break;
        }
        case 'H':
          m.type = "Flush";
          break;
        case 'F': {
          // A function called by OID: nothing is known of what it does, so it is durable first.
          m.type = "FunctionCall";
          const std::string call = function_call_text(r, &m);
          const std::shared_ptr<Decision>& decision = s.pinned[i];
          const Gate gate = policy_gate(s, 'f', call, i, journaled, m);
          if (gate == Gate::Held) {
            consumed = at;
            consumed_messages = i;
            held = true;
            break;
          }
          if (gate == Gate::Refused) {
            record_count++;
            continue;
          }
          forwarding(s, nullptr);
          s.in_block = false;
          Unit u(UnitKind::FunctionCall);
          u.run.via = "function_call";
          u.run.own_text = call;
          u.run.decision = decision;
          u.run.start_ns = now_ns();
          owe(s, std::move(u));
          break;
        }
        case 'd':
          // Copy payload is counted, not journaled: the COPY statement itself was journaled before it ran.
          if (s.copy_in) s.copy_in->copy_bytes += length - 5;
          copy_data = true;
          break;
        case 'c':
        case 'f':
          m.type = type == 'c' ? "CopyDone" : "CopyFail";
          if (type == 'f') m.text = r.cstring();
          s.needs_durable = true;
          s.copy_in = nullptr;
          break;
        case 'X':
          m.type = "Terminate";
          terminate = true;
          // Nothing after Terminate is read: the client is done.
          break;
        default:
          return end(s, true, std::string("native data path: frontend message '") + static_cast<char>(type) + "' is not handled natively yet");
      }
      if (held) break;
      if (!r.ok) return end(s, true, "malformed frontend message");
      if (!copy_data && !journaled) record_count++;
      if (terminate) break;
      if (type != 'S') s.forwarded_in_batch = true;
      forward.insert(forward.end(), raw, raw + length);
    }

    if (s.read_durable) s.needs_durable = true;
    chain_->count_ack(s.needs_durable);
    // Write-ahead: the request record is in the journal file before its bytes go upstream (a batch of
    // CopyData alone has none: it waits only for the records before it).
    if (record_count > 0) {
      scratch_.clear();
      pgrec::EventHead head{s.session_id, ++s.event_seq, now_ns()};
      pgrec::append_request_record(scratch_, head.time_unix_nano, head, records_.data(), record_count);
      try {
        s.request_seq = chain_->append(scratch_.data(), scratch_.size(), nullptr);
      } catch (const std::exception& err) {
        return end(s, true, std::string("journal append failed: ") + err.what());
      }
    }
    s.client.in.erase(s.client.in.begin(), s.client.in.begin() + static_cast<std::ptrdiff_t>(consumed));
    forget_pinned(s, consumed_messages);
    if (terminate) s.terminate_after = true;
    if (!s.queued) {
      s.queued = true;
      queued_.push_back(s.handle);
    }
  }

  // Sessions waiting for an fdatasync (parked_, holding_): the ones `synced` now covers go on, in
  // the order they began to wait; ended ones leave the list.
  template <typename Waits, typename Release>
  void release_synced(std::vector<uint64_t>& waiting, Waits waits, Release release) {
    std::vector<uint64_t> still;
    for (uint64_t handle : waiting) {
      auto found = sessions_.find(handle);
      if (found == sessions_.end() || found->second->ended) continue;
      Session& s = *found->second;
      if (waits(s)) {
        still.push_back(handle);
        continue;
      }
      release(s);
      pace(s);
    }
    waiting.swap(still);
  }

  // before-forward: the requests parked for the fdatasync go upstream.
  void release_parked() {
    release_synced(parked_, [this](const Session& s) { return s.durable_at > synced_; }, [this](Session& s) {
      s.parked = false;
      s.needs_durable = false;
      send_to(s.upstream, s.ahead.data(), s.ahead.size());
      s.ahead.clear();
      release_answers(s);
      if (s.terminate_after || s.client_gone) settle_if_idle(s);
      if (!s.ended && !s.client.in.empty()) handle_client(s);
    });
  }

  // before-reply: the agent gets what was held for it.
  void release_replies() {
    release_synced(holding_, [this](const Session& s) { return s.reply_after > synced_; }, [this](Session& s) {
      s.holding = false;
      std::vector<unsigned char> held;
      held.swap(s.held);
      if (!s.client_gone) send_to(s.client, held.data(), held.size());
      if (!s.ended && (s.terminate_after || s.client_gone)) settle_if_idle(s);
    });
  }

  // Write-ahead for every session served in this round: one write of the journal, then their bytes.
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
      auto found = sessions_.find(handle);
      if (found == sessions_.end()) continue;
      Session& s = *found->second;
      if (s.ended) continue;
      if (failure.empty() && s.request_seq > written) {
        // A rotation is finishing the segment: its record goes into the next one, and its bytes
        // wait until it is written there (the loop retries every millisecond meanwhile).
        unwritten.push_back(handle);
        continue;
      }
      s.queued = false;
      if (!failure.empty()) {
        end(s, true, failure);
        continue;
      }
      if (s.needs_durable && !sync_failed_.empty()) {
        end(s, true, sync_failed_);
        continue;
      }
      if (s.needs_durable && s.before_reply) {
        // Its bytes go on now; what the agent gets from here waits for the fdatasync that covers its record.
        s.needs_durable = false;
        if (s.reply_after < written) s.reply_after = written;
        if (!s.holding) {
          s.holding = true;
          holding_.push_back(s.handle);
        }
        syncer_.request(written);
      }
      if (s.needs_durable) {
        // Its bytes (and any refusal it answers) wait for the fdatasync that covers its record.
        s.parked = true;
        s.durable_at = written;
        parked_.push_back(s.handle);
        syncer_.request(written);
        continue;
      }
      send_to(s.upstream, s.ahead.data(), s.ahead.size());
      s.ahead.clear();
      release_answers(s);
      if (s.terminate_after || s.client_gone) settle_if_idle(s);
    }
    queued_.swap(unwritten);
  }

  // ---------------------------------------------------------------- reviews

  enum class Gate { Run, Held, Refused };

  // The policy's word on a Query, Parse or FunctionCall ('q', 'p', 'f'): run it; hold it for review
  // (it stays at the front of the input); or refuse it, journaled and answered as the JavaScript
  // proxy does (`m`, its request record, marked withheld). An approved held statement runs, its record
  // already written (`journaled`).
  Gate policy_gate(Session& s, char via, std::string_view text, size_t i, bool& journaled, pgrec::PgMessage& m) {
    const std::shared_ptr<Decision>& decision = s.pinned[i];
    if (decision->review && !take_approval(s, journaled)) {
      hold_for_review(s, via, text, m.statement_name, decision, s.pinned_block[i] != 0);
      return Gate::Held;
    }
    if (decision->allow || journaled) return Gate::Run;
    m.withheld = true;
    refuse(s, *decision, text, via_name(via));
    answer_refusal(s, via, denial(*decision));
    return Gate::Refused;
  }

  static const char* via_name(char via) { return via == 'q' ? "query" : via == 'p' ? "extended" : "function_call"; }

  // A refused Query or FunctionCall is answered in order (the error, then ReadyForQuery); after a
  // refused Parse the batch is skipped up to Sync, whose answer carries the error.
  void answer_refusal(Session& s, char via, std::vector<unsigned char> error) {
    if (via == 'p') {
      s.skip_until_sync = true;
      s.batch_refusal = std::move(error);
      return;
    }
    Unit answer(UnitKind::LocalAnswer);
    answer.answer = std::move(error);
    answer.ready_at_send = true;
    owe_local(s, std::move(answer));
  }

  // A local answer, owed once everything before it is answered. The server keeps the answers to
  // extended messages until a Sync, a Flush or a simple Query makes it send them: when the last
  // message owed an answer is such a message, the gateway sends a Flush of its own (it answers
  // nothing) with what goes upstream next, or the agent — waiting for this answer before its next
  // message — would wait for ever.
  static void owe_local(Session& s, Unit&& answer) {
    for (auto u = s.units.rbegin(); u != s.units.rend(); ++u) {
      if (u->kind == UnitKind::LocalAnswer) continue;
      if (u->kind != UnitKind::Sync && u->kind != UnitKind::Query && u->kind != UnitKind::FunctionCall) {
        static const unsigned char flush[] = {'H', 0, 0, 0, 4};
        s.ahead.insert(s.ahead.end(), flush, flush + sizeof flush);
      }
      break;
    }
    s.units.push_back(std::move(answer));
  }

  // An approved held statement runs once: true (and `journaled`) when this is it.
  static bool take_approval(Session& s, bool& journaled) {
    if (!s.review_approved) return false;
    s.review_approved = false;
    journaled = true;
    return true;
  }

  void hold_for_review(Session& s, char via, std::string_view text, std::string_view name, const std::shared_ptr<Decision>& decision, bool block) {
    s.review_stage = 1;
    s.review_via = via;
    s.review_text.assign(text);
    s.review_decision = decision;
    s.review_block = block;
    Event e;
    e.kind = Event::Review;
    e.handle = s.handle;
    e.via = via;
    e.text.assign(text);
    e.name.assign(name);
    e.block = block ? 'm' : 'n';
    post(std::move(e));
  }

  // JavaScript opened the review: the REVIEW event, then the held statement's request record
  // (durable), then the notice — after whatever the server still owes the agent.
  void review_opened(Session& s, const std::string& review_id) {
    s.review_stage = 2;
    s.review_id = review_id;
    const Decision& d = *s.review_decision;
    policy_event(s, pgrec::PolicyAction::Review, d.rule, {}, d.reason, d.classes);
    const unsigned char* raw = s.client.in.data();
    Reader r{raw + 5, raw + 1 + be32(raw + 1)};
    pgrec::PgMessage m;
    m.type = s.review_via == 'q' ? "Query" : s.review_via == 'p' ? "Parse" : "FunctionCall";
    if (s.review_via == 'q') m.text = r.cstring();
    else if (s.review_via == 'p') {
      m.statement_name = r.cstring();
      m.text = r.cstring();
      const uint16_t count = r.u16();
      for (uint16_t i = 0; i < count && r.ok; i++) m.parameter_types.push_back(r.u32());
    } else {
      function_call_text(r, &m);
    }
    scratch_.clear();
    pgrec::EventHead head{s.session_id, ++s.event_seq, now_ns()};
    pgrec::append_request_record(scratch_, head.time_unix_nano, head, &m, 1);
    s.request_seq = chain_->append(scratch_.data(), scratch_.size(), nullptr);
    chain_->count_ack(true);
    s.needs_durable = true;
    Unit notice(UnitKind::LocalAnswer);
    notice.answer = notice_message('N', "NOTICE", "00000", "gapwatch: statement held for review " + review_id + ": " + d.reason, "",
                                   "a reviewer can run: gapwatch approve " + review_id + "  (or: gapwatch deny " + review_id + ")");
    owe_local(s, std::move(notice));
    // The agent left before the statement was held (its FIN came with the batch): the attempt is on
    // record, nobody waits for an answer, the session ends (JavaScript withdraws the review).
    if (s.client_gone) return end(s, false, "");
    queue(s);
  }

  // The review ended: approved, the statement runs (its record is written); else it is refused.
  void review_closed(Session& s, const std::string& outcome, const std::string& reviewer, const std::string& reason) {
    const Decision& d = *s.review_decision;
    const std::string& id = s.review_id;
    s.review_stage = 0;
    if (outcome == "approved") {
      policy_event(s, pgrec::PolicyAction::Approved, d.rule, reviewer, d.reason, d.classes);
      // The approval applied the statement's effects to JavaScript's policy state: nothing decided
      // before it holds for what follows (asked again, in order, after it).
      s.decisions.clear();
      if (s.pinned.size() > 1) {
        s.pinned.resize(1);
        s.pinned_block.resize(1);
        s.forget_told.resize(1);
      }
      s.policy_block = next_policy_block(s.review_block, d.block);
      s.review_approved = true;
      queue(s);
      handle_client(s);
      return;
    }
    std::string code = "42501", refused, message, detail = "rule: " + d.rule;
    if (outcome == "denied") {
      policy_event(s, pgrec::PolicyAction::Rejected, d.rule, reviewer, reason, d.classes);
      refused = "review " + id + " denied by " + reviewer;
      message = "gapwatch review " + id + " was denied by " + reviewer + ": " + reason;
    } else if (outcome == "timed_out") {
      policy_event(s, pgrec::PolicyAction::TimedOut, d.rule, {}, "no decision in time", d.classes);
      refused = "review " + id + " timed out";
      message = "gapwatch review " + id + " timed out without a decision; the statement did not run";
    } else {  // canceled by the agent while held
      policy_event(s, pgrec::PolicyAction::Rejected, d.rule, {}, "canceled by the agent while held", d.classes);
      code = "57014";
      refused = "canceled while held for review";
      message = "canceling statement due to user request (it was held for review)";
      detail.clear();
    }
    // The refused statement, as recordRefused() journals it (its decision is the review's).
    pgrec::StatementOutcome o;
    o.text = s.review_text;
    o.via = via_name(s.review_via);
    o.error_code = code;
    o.error_message = refused;
    pgrec::PolicyDecision decision;
    decision.action = pgrec::PolicyAction::Review;
    decision.rule = d.rule;
    decision.reason = d.reason;
    o.policy = decision;
    std::vector<std::string_view> classes(d.classes.begin(), d.classes.end());
    o.classes = classes;
    scratch_.clear();
    pgrec::EventHead head{s.session_id, ++s.event_seq, now_ns()};
    pgrec::append_outcome_record(scratch_, head.time_unix_nano, head, o);
    chain_->append(scratch_.data(), scratch_.size(), nullptr);
    s.needs_durable = true;
    std::vector<unsigned char> error = notice_message('E', "ERROR", code, message, detail);
    // The held statement never runs: it leaves the input.
    const size_t length = 1 + be32(s.client.in.data() + 1);
    s.client.in.erase(s.client.in.begin(), s.client.in.begin() + static_cast<std::ptrdiff_t>(length));
    forget_pinned(s, 1);
    answer_refusal(s, s.review_via, std::move(error));
    queue(s);
    handle_client(s);
  }

  void policy_event(Session& s, pgrec::PolicyAction action, std::string_view rule, std::string_view reviewer, std::string_view reason,
                    const std::vector<std::string>& classes) {
    pgrec::PolicyDecision decision;
    decision.action = action;
    decision.rule = rule;
    decision.reviewer = reviewer;
    decision.reason = reason;
    decision.review_id = s.review_id;
    std::vector<std::string_view> views(classes.begin(), classes.end());
    scratch_.clear();
    pgrec::EventHead head{s.session_id, ++s.event_seq, now_ns()};
    pgrec::append_policy_record(scratch_, head.time_unix_nano, head, decision, s.review_text, views);
    chain_->append(scratch_.data(), scratch_.size(), nullptr);
  }

  void queue(Session& s) {
    if (s.queued) return;
    s.queued = true;
    queued_.push_back(s.handle);
  }

  // A statement is forwarded: what its record needs, following the transaction block it runs in.
  static void forwarding(Session& s, const Decision* d) {
    if (d == nullptr || !d->effects_known || needs_durable_ack(d->effects, s.in_block)) s.needs_durable = true;
  }

  // The records of a refusal, as the JavaScript proxy's settle() and recordRefused() write them.
  void refuse(Session& s, const Decision& d, std::string_view text, const char* via) {
    s.needs_durable = true;
    pgrec::PolicyDecision decision;
    decision.action = pgrec::PolicyAction::Deny;
    decision.rule = d.rule;
    decision.reason = d.reason;
    std::vector<std::string_view> classes(d.classes.begin(), d.classes.end());
    scratch_.clear();
    pgrec::EventHead head{s.session_id, ++s.event_seq, now_ns()};
    pgrec::append_policy_record(scratch_, head.time_unix_nano, head, decision, text, classes);
    chain_->append(scratch_.data(), scratch_.size(), nullptr);
    pgrec::StatementOutcome o;
    o.text = text;
    o.via = via;
    o.error_code = "42501";
    const std::string message = "denied by policy: " + d.reason;
    o.error_message = message;
    o.policy = decision;
    o.classes = classes;
    scratch_.clear();
    head = pgrec::EventHead{s.session_id, ++s.event_seq, now_ns()};
    pgrec::append_outcome_record(scratch_, head.time_unix_nano, head, o);
    chain_->append(scratch_.data(), scratch_.size(), nullptr);
  }

  static void put_field(std::vector<unsigned char>& e, char code, const std::string& value) {
    e.push_back(static_cast<unsigned char>(code));
    e.insert(e.end(), value.begin(), value.end());
    e.push_back(0);
  }

  static void put_length(std::vector<unsigned char>& e, size_t start) {
    const uint32_t length = static_cast<uint32_t>(e.size() - start - 1);
    e[start + 1] = static_cast<unsigned char>(length >> 24);
    e[start + 2] = static_cast<unsigned char>(length >> 16);
    e[start + 3] = static_cast<unsigned char>(length >> 8);
    e[start + 4] = static_cast<unsigned char>(length);
  }

  // An ErrorResponse ('E') or NoticeResponse ('N') with the fields backend-writer.ts writes, in its
  // order: severity (twice: localized and not), code, message, then detail and hint when given.
  static std::vector<unsigned char> notice_message(unsigned char type, const char* severity, const std::string& code, const std::string& message,
                                                   const std::string& detail = "", const std::string& hint = "") {
    std::vector<unsigned char> e = {type, 0, 0, 0, 0};
    put_field(e, 'S', severity);
    put_field(e, 'V', severity);
    put_field(e, 'C', code);
    put_field(e, 'M', message);
    if (!detail.empty()) put_field(e, 'D', detail);
    if (!hint.empty()) put_field(e, 'H', hint);
    e.push_back(0);
    put_length(e, 0);
    return e;
  }

  // ErrorResponse 42501 with the rule's reason (denial() in proxy-session.ts).
  static std::vector<unsigned char> denial(const Decision& d) {
    return notice_message('E', "ERROR", "42501", "gapwatch policy denied this statement: " + d.reason, "rule: " + d.rule);
  }

  static void append_ready(std::vector<unsigned char>& out, unsigned char status) {
    const unsigned char ready[] = {'Z', 0, 0, 0, 5, status};
    out.insert(out.end(), ready, ready + sizeof ready);
  }

  // A withheld message's record: its type and the fields messageRecord shows.
  static void fill_record(pgrec::PgMessage& m, unsigned char type, Reader r) {
    m.type = type_name_view(type);
    switch (type) {
      case 'P':
        m.statement_name = r.cstring();
        m.text = r.cstring();
        break;
      case 'Q':
        m.text = r.cstring();
        break;
      case 'B':
        m.portal = r.cstring();
        m.statement_name = r.cstring();
        break;
      case 'E':
        m.portal = r.cstring();
        m.max_rows = r.u32();
        break;
      case 'D':
      case 'C': {
        const unsigned char target = r.p < r.end ? *r.p++ : 0;
        if (target == 'P') m.portal = r.cstring();
        else m.statement_name = r.cstring();
        break;
      }
      default:
        break;
    }
  }

  static std::string_view type_name_view(unsigned char type) {
    switch (type) {
      case 'Q': return "Query";
      case 'P': return "Parse";
      case 'B': return "Bind";
      case 'D': return "Describe";
      case 'E': return "Execute";
      case 'C': return "Close";
      case 'S': return "Sync";
      case 'H': return "Flush";
      case 'X': return "Terminate";
      default: return "Unknown";
    }
  }

  // The session's records are written (and fsync'd when they must be): its local answers may go out.
  void release_answers(Session& s) {
    for (Unit& u : s.units) {
      if (u.kind == UnitKind::LocalAnswer) u.released = true;
    }
    answer_locally(s);
  }

  // Answers the gateway owes itself (refusals, review notices), once everything before them is
  // answered and their records are written. Each waits for its own records, not for whatever batch
  // the session has in hand now: a refusal from an earlier batch that comes to the front while a
  // later batch waits for its fdatasync goes out at once (held back, the server's next answer would
  // have been taken for it).
  void answer_locally(Session& s) {
    while (!s.units.empty() && s.units.front().kind == UnitKind::LocalAnswer && s.units.front().released && !s.ended) {
      // Its ReadyForQuery says the status the server's answers before it left the session in (the
      // refused statement never reached the server, so it changes nothing), as the JavaScript proxy does.
      if (s.units.front().ready_at_send) append_ready(s.units.front().answer, s.transaction_status);
      if (!s.client_gone) send_to(s.client, s.units.front().answer.data(), s.units.front().answer.size());
      s.units.pop_front();
    }
  }

  // functionCallText() of audit-format.ts: "function <oid>(<arguments as parameterDisplay shows them>)";
  // fills the FunctionCall's record when `m` is given. Reads the whole message body.
  static std::string function_call_text(Reader& r, pgrec::PgMessage* m) {
    const uint32_t oid = r.u32();
    const uint16_t format_count = r.u16();
    std::vector<uint16_t> formats;
    for (uint16_t i = 0; i < format_count && r.ok; i++) formats.push_back(r.u16());
    const uint16_t count = r.u16();
    std::string text = "function " + std::to_string(oid) + "(";
    for (uint16_t i = 0; i < count && r.ok; i++) {
      const uint32_t length = r.u32();
      const uint16_t format = format_count == 0 ? 0 : format_count == 1 ? formats[0] : (i < formats.size() ? formats[i] : 0);
      pgrec::Parameter p;
      if (length == 0xffffffffu) p.kind = pgrec::ParameterKind::Null;
      else {
        p.value = r.bytes(length);
        p.kind = format == 1 ? pgrec::ParameterKind::Binary : pgrec::ParameterKind::Text;
      }
      if (i > 0) text += ", ";
      text += p.kind == pgrec::ParameterKind::Null ? std::string("NULL") : display(p);
      if (m) m->parameters.push_back(p);
    }
    r.u16();  // result format
    if (m) m->function_oid = oid;
    return text + ")";
  }

  static std::string display(const pgrec::Parameter& p) {
    static const char digits[] = "0123456789abcdef";
    if (p.kind == pgrec::ParameterKind::Binary) {
      std::string out = "\\x";
      for (unsigned char c : p.value) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
      }
      return out;
    }
    return std::string(p.value);  // raw bytes; the encoder decodes them as Node does
  }

  // ------------------------------------------------------------------ upstream -> agent

  // parserHazard() of gateway/policy/parser-safety.ts for a setting the server reports (ParameterStatus,
  // which carries PostgreSQL's own spelling: "on" / "off", canonical encoding names): whether it makes
  // the server lex statements differently from the gateway's parser.
  static bool parser_hazard(std::string_view name, std::string_view value) {
    if (name == "standard_conforming_strings") return value != "on";
    if (name == "client_encoding") {
      std::string key;
      for (char c : value) {
        if (c >= 'a' && c <= 'z') key.push_back(static_cast<char>(c - 'a' + 'A'));
        else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) key.push_back(c);
      }
      static const std::unordered_set<std::string> unsafe = {"SJIS", "SHIFTJIS", "MSKANJI", "WIN932", "CP932", "SHIFTJIS2004", "BIG5", "WIN950",
                                                             "CP950", "GBK", "WIN936", "CP936", "UHC", "WIN949", "CP949", "GB18030"};
      return unsafe.count(key) > 0;
    }
    return false;
  }

  void handle_upstream(Session& s) {
    std::vector<std::pair<size_t, size_t>>& messages = frames_;
    messages.clear();
    size_t used = frames(s.upstream.in, messages);
    const unsigned char* base = s.upstream.in.data();
    size_t sent = 0;  // messages are passed on in runs; a refusal or local answer splits a run
    for (auto [at, length] : messages) {
      if (s.ended) return;
      if (base[at] == 'S') {
        // A statement the server ran changed how it lexes what follows: the session ends before it does.
        Reader r{base + at + 5, base + at + length};
        const std::string_view name = r.cstring();
        const std::string_view value = r.cstring();
        if (parser_hazard(name, value)) {
          const std::string message = "the server reports " + std::string(name) + " = " + std::string(value) +
                                      " during the session; the gateway refuses sessions in which the server would read statements "
                                      "differently from the gateway's parser (standard_conforming_strings must be on, the client encoding ASCII-safe)";
          if (!s.client_gone) {
            send_to(s.client, base + sent, at - sent);
            const std::vector<unsigned char> e = notice_message('E', "FATAL", "0A000", message);
            send_to(s.client, e.data(), e.size());
          }
          return end(s, true, message);
        }
      }
      on_backend(s, base[at], Reader{base + at + 5, base + at + length});
      const bool local = !pending_refusal_.empty() || (!s.units.empty() && s.units.front().kind == UnitKind::LocalAnswer);
      if (!local) continue;
      if (!pending_refusal_.empty()) {
        // A refused Parse's error goes right before its batch's ReadyForQuery.
        if (!s.client_gone) {
          send_to(s.client, base + sent, at - sent);
          send_to(s.client, pending_refusal_.data(), pending_refusal_.size());
        }
        sent = at;
        pending_refusal_.clear();
      }
      if (!s.client_gone) send_to(s.client, base + sent, at + length - sent);
      sent = at + length;
      answer_locally(s);
    }
    if (s.ended) return;
    if (!s.client_gone) send_to(s.client, base + sent, used - sent);
    s.bytes_to_client += used;
    s.upstream.in.erase(s.upstream.in.begin(), s.upstream.in.begin() + static_cast<std::ptrdiff_t>(used));
    if (s.terminate_after || s.client_gone) settle_if_idle(s);
  }

  // A Terminate, or a client gone, ends the session once the server has answered everything owed
  // (so those answers are journaled); the Terminate goes upstream last.
  // Whether the server still owes answers that it sends on its own: a Query's, a FunctionCall's, a
  // Sync's (and a local answer waits behind them). Extended messages after the last Sync are answered
  // only once a Sync comes, which a client that left or terminated will not send (as the JavaScript
  // proxy's awaitingReady: a session that ends with a Parse and no Sync does not wait for it).
  static bool owes_answers(const Session& s) {
    for (const Unit& u : s.units) {
      if (u.kind == UnitKind::Sync || u.kind == UnitKind::Query || u.kind == UnitKind::FunctionCall || u.kind == UnitKind::LocalAnswer) return true;
    }
    return false;
  }

  void settle_if_idle(Session& s) {
    if (s.ended || owes_answers(s) || s.waiting_for_answers() || (!s.terminate_after && !s.client.in.empty()) || s.queued) return;
    // Answers held for an fdatasync reach an agent still there before the session ends.
    if (!s.client_gone && s.reply_after > synced_) return;
    if (s.terminate_after) {
      static const unsigned char terminate[] = {'X', 0, 0, 0, 4};
      send_to(s.upstream, terminate, sizeof terminate);
    }
    end(s, false, "");
  }

  void client_closed(Session& s) {
    // Whole messages still waiting (for a policy decision) run; only a cut message is a failure.
    std::vector<std::pair<size_t, size_t>> whole;
    const size_t partial = s.client.in.size() - frames(s.client.in, whole);
    if (partial > 0 && !s.terminate_after) {
      return end(s, true, "the client disconnected in the middle of a message (" + std::to_string(partial) + " bytes of it received)");
    }
    // Gone while a statement is held for review: nothing will run, the session ends (JavaScript
    // withdraws the review when it learns of the end).
    if (s.review_stage != 0) return end(s, false, "");
    s.client_gone = true;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.client.fd, nullptr);
    settle_if_idle(s);
  }

  // The first frame the gateway refuses outright (as frontend-parser.ts does), or "".
  static std::string frontend_problem(const Session& s, size_t used) {
    const std::vector<unsigned char>& in = s.client.in;
    if (in.size() - used < 5) return "";
    const unsigned char type = in[used];
    const uint32_t length = be32(in.data() + used + 1);
    static const std::string known = "QPBDECSHXFdcfp";
    const std::string name = type_name(type);
    if (known.find(static_cast<char>(type)) == std::string::npos) return "invalid frontend message type " + name;
    if (length > 0x7fffffffu || length < 4) return "invalid length " + std::to_string(static_cast<int32_t>(length)) + " for " + name + " message";
    if (length > s.max_message_bytes) {
      return name + " message of " + std::to_string(length) + " bytes exceeds the gateway's limit of " + std::to_string(s.max_message_bytes) + " bytes";
    }
    return "";
  }

  static std::string type_name(unsigned char type) {
    switch (type) {
      case 'Q': return "Query";
      case 'P': return "Parse";
      case 'B': return "Bind";
      case 'D': return "Describe";
      case 'E': return "Execute";
      case 'C': return "Close";
      case 'S': return "Sync";
      case 'H': return "Flush";
      case 'X': return "Terminate";
      case 'F': return "FunctionCall";
      case 'd': return "CopyData";
      case 'c': return "CopyDone";
      case 'f': return "CopyFail";
      case 'p': return "Password";
      default: {
        static const char digits[] = "0123456789abcdef";
        return std::string("0x") + digits[type >> 4] + digits[type & 15];
      }
    }
  }

  // The agent gets the reason as a FATAL ErrorResponse (SQLSTATE 08P01) before the session ends.
  void protocol_violation(Session& s, const std::string& detail) {
    const std::string message = "protocol violation: " + detail;
    const std::vector<unsigned char> e = notice_message('E', "FATAL", "08P01", message);
    send_to(s.client, e.data(), e.size());
    end(s, true, message);
  }

  // The column names of a RowDescription: `known` itself when they are the same names.
  static Columns row_description(Reader r, const Columns& known) {
    uint16_t count = r.u16();
    if (known && known->size() == count) {
      Reader again = r;
      bool same = true;
      for (uint16_t i = 0; i < count && same; i++) {
        same = again.cstring() == std::string_view((*known)[i]) && again.ok;
        again.bytes(18);
      }
      if (same) return known;
    }
    auto names = std::make_shared<std::vector<std::string>>();
    for (uint16_t i = 0; i < count && r.ok; i++) {
      names->emplace_back(r.cstring());
      r.bytes(18);
    }
    return names;
  }

  Unit* head(Session& s) { return s.units.empty() ? nullptr : &s.units.front(); }

  void on_backend(Session& s, unsigned char type, Reader r) {
    Unit* u = head(s);
    switch (type) {
      case '1':  // ParseComplete
      case '2':  // BindComplete
      case '3':  // CloseComplete
        if (u) s.units.pop_front();
        return;
      case 't':  // ParameterDescription: part of a statement's Describe
        return;
      case 'T': {  // RowDescription
        if (u && u->kind == UnitKind::Describe) {
          const bool portal_target = u->portal_target;
          const std::string name = std::move(u->name);
          s.units.pop_front();
          if (portal_target) {
            auto found = s.portals.find(name);
            if (found == s.portals.end()) return;
            Columns columns = row_description(r, found->second->statement->columns);
            found->second->columns = columns;
            // An Execute of that portal queued behind it learns its columns now.
            for (Unit& later : s.units) {
              if (later.kind == UnitKind::Execute && later.run.portal == found->second) later.run.columns = columns;
            }
          } else {
            auto found = s.statements.find(name);
            if (found != s.statements.end()) found->second->columns = row_description(r, found->second->columns);
          }
        } else if (u && u->kind == UnitKind::Query) {
          open_query_run(s, *u);
          u->run.columns = row_description(r, nullptr);
        }
        return;
      }
      case 'G':  // CopyInResponse
      case 'H': {  // CopyOutResponse
        Run* run = current_run(s);
        if (run) {
          run->copy = true;
          run->copy_in = type == 'G';
          run->copy_bytes = 0;
        }
        if (type == 'G') s.copy_in = run;
        return;
      }
      case 'd': {  // CopyData (COPY TO STDOUT)
        Run* run = current_run(s);
        if (run && run->copy) run->copy_bytes += static_cast<uint64_t>(r.end - r.p);
        return;
      }
      case 'V':  // FunctionCallResponse
        if (u && u->kind == UnitKind::FunctionCall) finish(s, "FUNCTION CALL", {}, {});
        return;
      case 'W':  // CopyBothResponse: replication, refused at startup
        return end(s, true, "native data path: CopyBothResponse is not supported");
      case 'n':  // NoData
        if (u && u->kind == UnitKind::Describe) s.units.pop_front();
        return;
      case 'D':  // DataRow
        if (u && u->kind == UnitKind::Execute) u->run.rows++;
        else if (u && u->kind == UnitKind::Query) {
          open_query_run(s, *u);
          u->run.rows++;
        }
        return;
      case 'C': {  // CommandComplete
        std::string_view tag = r.cstring();
        finish(s, tag, {}, {});
        return;
      }
      case 'I':  // EmptyQueryResponse
        finish(s, "", {}, {});
        return;
      case 's':  // PortalSuspended
        finish(s, "", {}, {});
        return;
      case 'E': {  // ErrorResponse
        std::string code, message;
        const unsigned char* p = r.p;
        while (p < r.end && *p != 0) {
          const unsigned char field = *p++;
          const unsigned char* z = static_cast<const unsigned char*>(std::memchr(p, 0, static_cast<size_t>(r.end - p)));
          if (z == nullptr) break;
          if (field == 'C') code.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(z - p));
          if (field == 'M') message.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(z - p));
          p = z + 1;
        }
        if (u && (u->kind == UnitKind::Execute || u->kind == UnitKind::Query || u->kind == UnitKind::FunctionCall)) {
          finish(s, {}, code, message);
          if (u->kind == UnitKind::Query || u->kind == UnitKind::FunctionCall) return;
        } else if (u && u->kind == UnitKind::Parse) {
          // The statement never came to be: its outcome is the error, as the JavaScript proxy journals it.
          auto statement = u->statement;
          s.statements.erase(u->name);
          auto portal = std::make_shared<Portal>();
          portal->statement = statement;
          portal->statement_name = u->name;
          Run run;
          run.via = "extended";
          run.portal = portal;
          run.decision = statement->decision;
          run.start_ns = now_ns();
          write_outcome(s, run, {}, code, message);
        } else {
          journal_error(s, code, message);
        }
        // In an extended batch the server skips everything up to Sync, a simple Query too; so do the
        // answers owed. The gateway's own answers (a refusal between them) are still owed, in order.
        // When that Sync has not been sent yet, nothing forwarded until it is owed an answer either.
        const bool extended = u != nullptr;
        auto sync = s.units.begin();
        while (sync != s.units.end() && sync->kind != UnitKind::Sync) sync++;
        sync = s.units.erase(std::remove_if(s.units.begin(), sync, [](const Unit& skipped) { return skipped.kind != UnitKind::LocalAnswer; }), sync);
        if (sync != s.units.end()) sync->saw_error = true;
        else if (extended) s.upstream_skipping = true;
        return;
      }
      case 'Z': {  // ReadyForQuery
        const unsigned char* status = r.p;
        if (status < r.end) s.transaction_status = *status;
        if (u && u->kind == UnitKind::Sync && !u->answer.empty() && !u->saw_error) pending_refusal_ = std::move(u->answer);
        if (u && (u->kind == UnitKind::Sync || u->kind == UnitKind::Query || u->kind == UnitKind::FunctionCall)) s.units.pop_front();
        // The server has answered everything forwarded: its status is the session's, ahead of any guess.
        if (s.units.empty()) s.in_block = s.transaction_status != 'I';
        return;
      }
      default:  // NoticeResponse, ParameterStatus, NotificationResponse …
        return;
    }
  }

  // The statement the server is answering now, if any.
  Run* current_run(Session& s) {
    Unit* u = head(s);
    if (!u) return nullptr;
    if (u->kind == UnitKind::Query) {
      open_query_run(s, *u);
      return &u->run;
    }
    return u->kind == UnitKind::Execute ? &u->run : nullptr;
  }

  void open_query_run(Session& s, Unit& u) {
    (void)s;
    if (u.run_open) return;
    u.run_open = true;
    u.run.via = "query";
    u.run.decision = u.decision;
    const auto& texts = u.decision->statements;
    u.run.text = u.index < texts.size() ? &texts[u.index] : nullptr;
    u.run.rows = 0;
    u.run.columns.reset();
  }

  void finish(Session& s, std::string_view tag, std::string_view error_code, std::string_view error_message) {
    Unit* u = head(s);
    if (!u) return;
    s.copy_in = nullptr;  // a statement that finishes ends its COPY
    Run run;
    if (u->kind == UnitKind::Execute) {
      run = std::move(u->run);
      s.units.pop_front();
    } else if (u->kind == UnitKind::FunctionCall) {
      if (u->run.finished) return;
      u->run.finished = true;
      run = u->run;
    } else if (u->kind == UnitKind::Query) {
      open_query_run(s, *u);
      run = u->run;
      u->index++;
      u->run_open = false;
      u->run.start_ns = now_ns();
    } else {
      return;
    }
    write_outcome(s, run, tag, error_code, error_message);
  }

  void journal_error(Session& s, std::string_view code, std::string_view message) {
    scratch_.clear();
    pgrec::EventHead head{s.session_id, ++s.event_seq, now_ns()};
    pgrec::append_error_record(scratch_, head.time_unix_nano, head, code, message);
    try {
      chain_->append(scratch_.data(), scratch_.size(), nullptr);
    } catch (const std::exception& err) {
      end(s, true, std::string("journal append failed: ") + err.what());
    }
  }

  void write_outcome(Session& s, const Run& run, std::string_view tag, std::string_view error_code, std::string_view error_message) {
    pgrec::StatementOutcome& o = outcome_;
    o.parameters.clear();
    o.classes.clear();
    o.text = {};
    o.statement_name = {};
    if (run.portal) {
      o.text = run.portal->statement->text;
      o.statement_name = run.portal->statement_name;
      for (const std::string& p : run.portal->parameters) o.parameters.push_back(pgrec::Parameter{pgrec::ParameterKind::Text, p});
    } else if (run.text) {
      o.text = *run.text;
    } else {
      o.text = run.own_text;
    }
    o.command_tag = tag;
    uint64_t rows = run.rows;
    if (!tag.empty()) {
      // The tag's last number, for the commands whose tag carries a row count.
      size_t space = tag.rfind(' ');
      if (space != std::string_view::npos && space + 1 < tag.size()) {
        uint64_t n = 0;
        bool digits = true;
        for (char c : tag.substr(space + 1)) {
          if (c < '0' || c > '9') {
            digits = false;
            break;
          }
          n = n * 10 + static_cast<uint64_t>(c - '0');
        }
        if (digits) rows = n;
      }
    }
    o.rows = rows;
    o.error_code = error_code;
    o.error_message = error_message;
    o.duration_nano = now_ns() - run.start_ns;
    o.via = run.via;
    o.portal = run.portal_name;
    o.policy.reset();
    if (run.decision) {
      pgrec::PolicyDecision d;
      d.action = run.decision->allow ? pgrec::PolicyAction::Allow : pgrec::PolicyAction::Deny;
      d.rule = run.decision->rule;
      d.reason = run.decision->reason;
      o.policy = d;
      for (const std::string& c : run.decision->classes) o.classes.push_back(c);
    }
    if (!o.result) o.result.emplace();
    o.result->columns.clear();
    if (run.columns) for (const std::string& c : *run.columns) o.result->columns.push_back(c);
    o.result->rows = run.rows;
    scratch_.clear();
    pgrec::EventHead head{s.session_id, ++s.event_seq, now_ns()};
    pgrec::append_outcome_record(scratch_, head.time_unix_nano, head, o);
    try {
      // Deferred, as the JS proxy's outcome: written with the next write-ahead record or by the
      // journal's next group.
      chain_->append(scratch_.data(), scratch_.size(), nullptr);
      if (run.copy) {
        pgrec::CopyTransfer copy;
        copy.direction = run.copy_in ? "in" : "out";
        copy.rows = tag.empty() ? 0 : o.rows;
        copy.bytes = run.copy_bytes;
        copy.statement = o.text;
        copy.error_code = error_code;
        copy.error_message = error_message;
        scratch_.clear();
        pgrec::EventHead copy_head{s.session_id, ++s.event_seq, now_ns()};
        pgrec::append_copy_record(scratch_, copy_head.time_unix_nano, copy_head, copy);
        chain_->append(scratch_.data(), scratch_.size(), nullptr);
      }
    } catch (const std::exception& err) {
      end(s, true, std::string("journal append failed: ") + err.what());
    }
  }

  // Ends a session from outside with a FATAL admin_shutdown notice to the agent. Answers still held
  // for an fdatasync are never delivered; the notice is.
  void terminate(Session& s, const std::string& message, bool failed, const std::string& failure) {
    if (s.ended) return;
    const std::vector<unsigned char> e = notice_message('E', "FATAL", "57P01", message);
    s.reply_after = 0;
    s.held.clear();
    if (!s.client_gone) send_to(s.client, e.data(), e.size());
    end(s, failed, failure);
  }

  void end(Session& s, bool failed, const std::string& failure) {
    if (s.ended) return;
    s.ended = true;
    for (Side* side : {&s.client, &s.upstream}) {
      if (!side->out.empty()) {
        // Best effort: what the socket takes now.
        ssize_t ignored = send(side->fd, side->out.data(), side->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
      }
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, side->fd, nullptr);
      close(side->fd);
    }
    Event e;
    e.kind = Event::Ended;
    e.handle = s.handle;
    e.failed = failed;
    e.failure = failure;
    e.bytes_in = s.bytes_from_client;
    e.bytes_out = s.bytes_to_client;
    e.event_seq = s.event_seq;
    post(std::move(e));
    ended_.push_back(s.handle);
  }

  void reap() {
    for (uint64_t handle : ended_) {
      if (sessions_.erase(handle) > 0) syncer_.connection_closed();
    }
    ended_.clear();
  }

 private:
  JournalChain* chain_;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::vector<uint64_t> ended_;
  std::vector<uint64_t> queued_;
  std::vector<uint64_t> parked_;
  std::vector<uint64_t> holding_;  // before-reply sessions whose answers wait for an fdatasync
  uint64_t synced_ = 0;            // the last record the sync thread's fdatasync covered
  std::string sync_failed_;  // the sync thread stopped: no request can become durable any more
  pgrec::StatementOutcome outcome_;
  std::vector<unsigned char> pending_refusal_;
  std::vector<pgrec::PgMessage> records_;
  std::vector<std::pair<size_t, size_t>> frames_;  // reused: its vectors keep their capacity
  Shape shape_;                                             // reused: kept_decision(), keep_decision()
  static constexpr size_t kMaxKeptDecisions = 4096;         // per session; past it they are dropped and asked again
  std::vector<unsigned char> scratch_;
};

void deliver_events(Napi::Env env, Napi::Function callback, std::vector<Event> events) {
  Napi::Array out = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) {
    const Event& e = events[i];
    Napi::Object o = Napi::Object::New(env);
    switch (e.kind) {
      case Event::Decide:
        o.Set("kind", "decide");
        o.Set("handle", Napi::Number::New(env, static_cast<double>(e.handle)));
        o.Set("via", std::string(1, e.via));
        o.Set("text", Napi::Buffer<char>::Copy(env, e.text.data(), e.text.size()));
        o.Set("name", Napi::Buffer<char>::Copy(env, e.name.data(), e.name.size()));
        o.Set("block", e.block ? std::string(1, e.block) : std::string());
        break;
      case Event::Review:
        o.Set("kind", "review");
        o.Set("handle", Napi::Number::New(env, static_cast<double>(e.handle)));
        o.Set("via", std::string(1, e.via));
        o.Set("text", Napi::Buffer<char>::Copy(env, e.text.data(), e.text.size()));
        o.Set("name", Napi::Buffer<char>::Copy(env, e.name.data(), e.name.size()));
        o.Set("block", e.block ? std::string(1, e.block) : std::string());
        break;
      case Event::Forget:
        o.Set("kind", "forget");
        o.Set("handle", Napi::Number::New(env, static_cast<double>(e.handle)));
        o.Set("name", Napi::Buffer<char>::Copy(env, e.name.data(), e.name.size()));
        break;
      case Event::Ended:
        o.Set("kind", "ended");
        o.Set("handle", Napi::Number::New(env, static_cast<double>(e.handle)));
        o.Set("failed", e.failed);
        o.Set("failure", e.failure);
        o.Set("bytesIn", Napi::Number::New(env, static_cast<double>(e.bytes_in)));
        o.Set("bytesOut", Napi::Number::New(env, static_cast<double>(e.bytes_out)));
        o.Set("eventSeq", Napi::Number::New(env, static_cast<double>(e.event_seq)));
        break;
    }
    out.Set(static_cast<uint32_t>(i), o);
  }
  callback.Call({out});
}

std::vector<std::string> string_array(const Napi::Value& value) {
  std::vector<std::string> out;
  if (!value.IsArray()) return out;
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) out.push_back(array.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

class PgDataPathBinding : public Napi::ObjectWrap<PgDataPathBinding> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PgDataPath",
                       {
                           InstanceMethod<&PgDataPathBinding::Adopt>("adopt"),
                           InstanceMethod<&PgDataPathBinding::Decided>("decided"),
                           InstanceMethod<&PgDataPathBinding::Reviewing>("reviewing"),
                           InstanceMethod<&PgDataPathBinding::Reviewed>("reviewed"),
                           InstanceMethod<&PgDataPathBinding::Terminate>("terminate"),
                           InstanceMethod<&PgDataPathBinding::Stop>("stop"),
                       });
  }

  // new PgDataPath(chain: JournalChain, onEvents: (events: object[]) => void)
  explicit PgDataPathBinding(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PgDataPathBinding>(info) {
    JournalChain* chain = unwrap_journal_chain(info[0]);
    chain_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    auto tsfn = Napi::ThreadSafeFunction::New(info.Env(), info[1].As<Napi::Function>(), "gapwatch-pg-datapath", 0, 1);
    datapath_ = std::make_unique<DataPath>(chain, tsfn);
  }

  ~PgDataPathBinding() override {
    if (datapath_) datapath_->stop();
  }

 private:
  // adopt(clientFd, upstreamFd, handle, sessionId, eventSeq, maxMessageBytes, readDurable, beforeReply): the
  // descriptors are dup'd; the caller closes its own.
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    Command c;
    c.kind = Command::Adopt;
    // Close-on-exec, as Node's own descriptors are: a child process spawned meanwhile (the collector
    // beside an in-process gateway, a hook) would otherwise inherit the session's sockets and hold
    // them open after the loop closes its copies — the agent would never see the connection end.
    c.client_fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    c.upstream_fd = fcntl(info[1].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 0);
    c.handle = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
    c.session_id = info[3].As<Napi::String>().Utf8Value();
    c.event_seq = static_cast<uint64_t>(info[4].As<Napi::Number>().Int64Value());
    c.max_message_bytes = info[5].As<Napi::Number>().Uint32Value();
    c.read_durable = info.Length() > 6 && info[6].ToBoolean();
    c.before_reply = info.Length() > 7 && info[7].ToBoolean();
    if (c.client_fd < 0 || c.upstream_fd < 0) {
      const int error = errno;
      if (c.client_fd >= 0) close(c.client_fd);
      if (c.upstream_fd >= 0) close(c.upstream_fd);
      throw Napi::Error::New(info.Env(), std::string("F_DUPFD_CLOEXEC: ") + strerror(error));
    }
    const int client_fd = c.client_fd;
    const int upstream_fd = c.upstream_fd;
    if (!datapath_->command(std::move(c))) {
      close(client_fd);
      close(upstream_fd);
      throw Napi::Error::New(info.Env(), "the native data path has stopped (the gateway is shutting down)");
    }
    return info.Env().Undefined();
  }

  // decided(handle, via, text: Buffer, { allow, rule, reason, classes, statements })
  Napi::Value Decided(const Napi::CallbackInfo& info) {
    Command c;
    c.kind = Command::Decided;
    c.handle = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    c.via = info[1].As<Napi::String>().Utf8Value()[0];
    Napi::Buffer<char> text = info[2].As<Napi::Buffer<char>>();
    c.text.assign(text.Data(), text.Length());
    Napi::Object d = info[3].As<Napi::Object>();
    c.decision = std::make_shared<Decision>();
    c.decision->allow = d.Get("allow").ToBoolean();
    c.decision->review = d.Get("review").ToBoolean();
    c.decision->rule = d.Get("rule").ToString().Utf8Value();
    c.decision->reason = d.Get("reason").ToString().Utf8Value();
    c.decision->classes = string_array(d.Get("classes"));
    c.decision->statements = string_array(d.Get("statements"));
    c.decision->stateful = d.Get("stateful").ToBoolean();
    const std::string block = d.Get("block").ToString().Utf8Value();
    c.decision->block = block == "n" || block == "m" ? block[0] : 'k';
    Napi::Value shape = d.Get("shape");
    if (shape.IsArray()) {
      Napi::Array spans = shape.As<Napi::Array>();
      c.decision->has_shape = true;
      for (uint32_t k = 0; k + 1 < spans.Length(); k += 2) {
        c.decision->shape_spans.emplace_back(spans.Get(k).As<Napi::Number>().Int64Value(), spans.Get(k + 1).As<Napi::Number>().Int64Value());
      }
    }
    Napi::Value effects = d.Get("effects");
    c.decision->effects_known = effects.IsArray();
    static const std::unordered_map<std::string, Effect> names = {
        {"none", Effect::None}, {"begin", Effect::Begin}, {"savepoint", Effect::Savepoint}, {"rollback", Effect::Rollback},
        {"rollback_chain", Effect::RollbackChain}, {"commit", Effect::Commit}, {"commit_chain", Effect::CommitChain},
        {"transactional", Effect::Transactional}, {"immediate", Effect::Immediate}};
    for (const std::string& name : string_array(effects)) {
      auto found = names.find(name);
      c.decision->effects.push_back(found == names.end() ? Effect::Immediate : found->second);
    }
    datapath_->command(std::move(c));
    return info.Env().Undefined();
  }

  // reviewing(handle, reviewId): the review of the session's held statement is open
  Napi::Value Reviewing(const Napi::CallbackInfo& info) {
    Command c;
    c.kind = Command::Reviewing;
    c.handle = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    c.review_id = info[1].As<Napi::String>().Utf8Value();
    datapath_->command(std::move(c));
    return info.Env().Undefined();
  }

  // reviewed(handle, outcome: 'approved' | 'denied' | 'timed_out' | 'canceled', reviewer, reason)
  Napi::Value Reviewed(const Napi::CallbackInfo& info) {
    Command c;
    c.kind = Command::Reviewed;
    c.handle = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    c.outcome = info[1].As<Napi::String>().Utf8Value();
    c.reviewer = info[2].As<Napi::String>().Utf8Value();
    c.reason = info[3].As<Napi::String>().Utf8Value();
    datapath_->command(std::move(c));
    return info.Env().Undefined();
  }

  // terminate(handle, reason): end the session now, telling the agent why (FATAL 57P01)
  Napi::Value Terminate(const Napi::CallbackInfo& info) {
    Command c;
    c.kind = Command::Terminate;
    c.handle = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    c.reason = info[1].As<Napi::String>().Utf8Value();
    datapath_->command(std::move(c));
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (datapath_) datapath_->stop();
    return info.Env().Undefined();
  }

  Napi::ObjectReference chain_ref_;
  std::unique_ptr<DataPath> datapath_;
};

}  // namespace

void register_pg_datapath(Napi::Env env, Napi::Object exports) { exports.Set("PgDataPath", PgDataPathBinding::Define(env)); }

}  // namespace gapwatch
