#ifndef GAPWATCH_LOOP_CHANNEL_H
#define GAPWATCH_LOOP_CHANNEL_H

#include <napi.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chain-syncer.h"

#include <cstdint>
#include <chrono>
#include <deque>
#include <string>
#include <thread>
#include <mutex>
#include <utility>
#include <vector>

namespace gapwatch {

// How a native data path's epoll thread (pg-datapath.cc, http-datapath.cc) and JavaScript talk:
// commands in — a queue, and an eventfd in the thread's epoll set (reported with data.ptr null) that
// wakes it —, events out — a batch handed to a thread-safe function, one call in flight at a time.
template <class Command, class Event>
class LoopChannel {
 public:
  // Turns a batch of events into the JavaScript callback's call (on the JavaScript thread).
  using Deliver = void (*)(Napi::Env env, Napi::Function callback, std::vector<Event> events);

  LoopChannel(Napi::ThreadSafeFunction events, Deliver deliver) : events_(events), deliver_(deliver) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.ptr = nullptr;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &e);
  }

  LoopChannel(const LoopChannel&) = delete;
  LoopChannel& operator=(const LoopChannel&) = delete;

  int epoll_fd() const { return epoll_fd_; }

  // Queues a command and wakes the thread; false once the thread is stopping (`last` was sent): the
  // command is dropped, and the wake descriptor, closed by close(), is not written — its number may
  // belong to someone else by then.
  bool command(Command c, bool last) {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    if (!accepting_) return false;
    if (last) accepting_ = false;
    commands_.push_back(std::move(c));
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd_, &one, sizeof one);
    (void)ignored;
    return true;
  }

  // On the thread, when the wake descriptor is reported: the commands queued so far.
  std::deque<Command> take_commands() {
    uint64_t count;
    ssize_t ignored = read(wake_fd_, &count, sizeof count);
    (void)ignored;
    std::deque<Command> taken;
    std::lock_guard<std::mutex> lock(commands_mutex_);
    taken.swap(commands_);
    return taken;
  }

  // On the thread: an event for JavaScript, delivered with whatever else is posted before the call runs.
  void post(Event e) {
    bool call;
    {
      std::lock_guard<std::mutex> lock(events_mutex_);
      pending_events_.push_back(std::move(e));
      call = !events_posted_;
      events_posted_ = true;
    }
    if (call) events_.NonBlockingCall([this](Napi::Env env, Napi::Function callback) { deliver_(env, callback, take_events()); });
  }

  // After the thread has ended: events posted before still reach JavaScript.
  void close() {
    ::close(epoll_fd_);
    ::close(wake_fd_);
    events_.Release();
  }

 private:
  std::vector<Event> take_events() {
    std::lock_guard<std::mutex> lock(events_mutex_);
    events_posted_ = false;
    std::vector<Event> taken;
    taken.swap(pending_events_);
    return taken;
  }

  Napi::ThreadSafeFunction events_;
  Deliver deliver_;
  int epoll_fd_ = -1, wake_fd_ = -1;
  std::mutex commands_mutex_;
  bool accepting_ = true;  // under commands_mutex_
  std::deque<Command> commands_;
  std::mutex events_mutex_;
  std::vector<Event> pending_events_;
  bool events_posted_ = false;
};

// What both native data paths are around their epoll loop: the channel, the sync thread (whose
// rounds come back as a command: kind Command::Synced, synced_seq, sync_failure), the loop's own
// thread, and their order of start and stop (a command of kind Command::Stop ends the loop). The
// derived class starts the thread at the end of its constructor (start()) and stops it in its
// destructor (stop()): the loop uses its members.
template <class Command, class Event>
class NativeLoop {
 public:
  NativeLoop(const NativeLoop&) = delete;
  NativeLoop& operator=(const NativeLoop&) = delete;

  // Queues a command for the loop; false once the loop is stopping.
  bool command(Command c) {
    const bool last = c.kind == Command::Stop;
    return channel_.command(std::move(c), last);
  }

  void stop() {
    if (!thread_.joinable()) return;
    Command c;
    c.kind = Command::Stop;
    command(std::move(c));
    thread_.join();
    syncer_.stop();
    channel_.close();
  }

 protected:
  NativeLoop(JournalChain* chain, Napi::ThreadSafeFunction events, typename LoopChannel<Command, Event>::Deliver deliver,
             std::chrono::microseconds sync_spacing)
      : channel_(events, deliver),
        epoll_fd_(channel_.epoll_fd()),
        syncer_(
            chain,
            [this](uint64_t covered, const std::string& failure) {
              Command c;
              c.kind = Command::Synced;
              c.synced_seq = covered;
              c.sync_failure = failure;
              command(std::move(c));
            },
            sync_spacing) {}

  virtual ~NativeLoop() = default;

  void start() { thread_ = std::thread([this] { loop(); }); }
  void post(Event e) { channel_.post(std::move(e)); }

  virtual void loop() = 0;

  LoopChannel<Command, Event> channel_;
  const int epoll_fd_;
  ChainSyncer syncer_;

 private:
  std::thread thread_;
};

}  // namespace gapwatch

#endif
