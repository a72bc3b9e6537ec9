// The gateway-pg bench's native_floor path: what a PostgreSQL data path written in C, doing the
// mechanics of gapwatch's audit, costs on this machine. It is a measuring stick for a native data
// path, not a gateway: no identity, no credential injection (the client authenticates to PostgreSQL
// itself), no policy, no canonical protobuf.
//
// What it does per connection, on one epoll thread:
// - parses the frontend and backend message framing (the startup packet, then type + length);
// - makes one record per frontend message and one per statement result (CommandComplete,
//   ErrorResponse): sequence number, session, time, message type and length, and up to 256 bytes of
//   the message, as the journal's records carry the statement text and parameters;
// - chains the records like the journal does: hash = SHA-256(previous hash || record), framed with
//   length and CRC-32;
// - writes the records of an epoll round to the journal file (one pwrite) before the client bytes
//   read in that round are forwarded: write-ahead, the journal's 'written' level, as the gateway's
//   native loop batches it (until 2026-11-26 it wrote once per client read: ~2x the gateway's pwrites);
// - keeps zeros written ahead of the data (2 MiB), as the journal does, so an fdatasync commits no
//   size or block allocation;
// - a second thread fdatasyncs the journal within 5 ms of a write, as the journal's group commit does
//   when nobody waits for 'durable'.
//
// usage: native-floor-relay <upstream port> <journal file | ->
// With `-` it keeps the framing but makes, writes and syncs no records: the bench's native_relay path,
// the relay mechanics alone (what PgBouncer does, minus its pooling and authentication).
// Listens on 127.0.0.1, an ephemeral port, which it prints on stdout once it accepts connections.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define SSL_REQUEST_CODE 80877103u
#define RECORD_PAYLOAD_MAX 256

/** Framing state of one direction of a connection. */
struct direction {
  int started;          /* frontend only: the untyped startup packet has been seen */
  uint32_t remaining;   /* body bytes of the current message still to come */
  unsigned char header[8];
  int header_bytes;
};

struct side {
  int fd;               /* -1 once the pair is closed; freed after the current batch of events */
  int frontend;         /* 1: the client's socket (frontend messages are read from it) */
  struct direction dir;
  unsigned char *pending;  /* bytes for fd that the socket did not take yet */
  size_t pending_bytes, pending_capacity;
  struct side *other;
  uint64_t session;
  unsigned char *deferred;  /* client bytes read this round, forwarded once the round's records are written */
  size_t deferred_bytes, deferred_capacity;
  int deferred_listed;
};

static int epoll_fd;
static int audit = 1;     /* 0: the plain relay (journal argument `-`) */
static int journal_fd;
static unsigned char *journal_buffer;
static size_t journal_bytes, journal_capacity;
static off_t journal_offset;
static unsigned char head_hash[32];
static uint64_t last_seq;
static atomic_long written_offset, synced_offset;
static off_t zeroed_to;
#define ZERO_AHEAD (2 << 20)

static void fail(const char *what) {
  perror(what);
  exit(1);
}

static void *grow(void *buffer, size_t *capacity, size_t needed) {
  if (needed <= *capacity) return buffer;
  size_t next = *capacity ? *capacity : 4096;
  while (next < needed) next *= 2;
  void *grown = realloc(buffer, next);
  if (!grown) fail("realloc");
  *capacity = next;
  return grown;
}

static void append_record(uint64_t session, int type, uint32_t length, const unsigned char *body, size_t available) {
  if (!audit) return;
  /* prev_hash || record, contiguous for one SHA-256 call. */
  unsigned char hashed[32 + 8 + 8 + 8 + 1 + 4 + RECORD_PAYLOAD_MAX];
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t time_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
  size_t at = 0;
  memcpy(hashed, head_hash, 32), at += 32;
  last_seq++;
  memcpy(hashed + at, &last_seq, 8), at += 8;
  memcpy(hashed + at, &session, 8), at += 8;
  memcpy(hashed + at, &time_ns, 8), at += 8;
  hashed[at++] = (unsigned char)type;
  memcpy(hashed + at, &length, 4), at += 4;
  size_t copied = available < RECORD_PAYLOAD_MAX ? available : RECORD_PAYLOAD_MAX;
  memcpy(hashed + at, body, copied), at += copied;
  SHA256(hashed, at, head_hash);

  /* frame = u32 length || u32 CRC-32 over (length || payload) || payload, payload = record || hash */
  uint32_t payload_bytes = (uint32_t)(at - 32 + 32);
  journal_buffer = grow(journal_buffer, &journal_capacity, journal_bytes + 8 + payload_bytes);
  unsigned char *frame = journal_buffer + journal_bytes;
  memcpy(frame, &payload_bytes, 4);
  memcpy(frame + 8, hashed + 32, at - 32);
  memcpy(frame + 8 + (at - 32), head_hash, 32);
  uint32_t crc = (uint32_t)crc32(crc32(0L, frame, 4), frame + 8, payload_bytes);
  memcpy(frame + 4, &crc, 4);
  journal_bytes += 8 + payload_bytes;
}

static void write_journal(void) {
  if (journal_bytes == 0) return;
  for (size_t done = 0; done < journal_bytes;) {
    ssize_t n = pwrite(journal_fd, journal_buffer + done, journal_bytes - done, journal_offset + (off_t)done);
    if (n < 0) fail("pwrite journal");
    done += (size_t)n;
  }
  journal_offset += (off_t)journal_bytes;
  journal_bytes = 0;
  atomic_store(&written_offset, journal_offset);
  if (zeroed_to < journal_offset + ZERO_AHEAD / 2) {
    static unsigned char zeros[ZERO_AHEAD];
    off_t from = zeroed_to > journal_offset ? zeroed_to : journal_offset;
    ssize_t n = pwrite(journal_fd, zeros, (size_t)(journal_offset + ZERO_AHEAD - from), from);
    if (n > 0) zeroed_to = from + n;
  }
}

static void *sync_loop(void *unused) {
  (void)unused;
  for (;;) {
    struct timespec delay = {0, 5 * 1000 * 1000};
    nanosleep(&delay, NULL);
    long written = atomic_load(&written_offset);
    if (written > atomic_load(&synced_offset)) {
      if (fdatasync(journal_fd) != 0) fail("fdatasync journal");
      atomic_store(&synced_offset, written);
    }
  }
  return NULL;
}

/* Walks the messages in bytes read from `s`, recording frontend messages and statement results. */
static void scan(struct side *s, const unsigned char *bytes, size_t length) {
  struct direction *d = &s->dir;
  size_t at = 0;
  while (at < length) {
    if (d->remaining > 0) {
      size_t take = d->remaining < length - at ? d->remaining : length - at;
      d->remaining -= (uint32_t)take;
      at += take;
      continue;
    }
    int typed = !(s->frontend && !d->started);
    int header_size = typed ? 5 : 4;
    while (d->header_bytes < header_size && at < length) d->header[d->header_bytes++] = bytes[at++];
    if (d->header_bytes < header_size) return;
    uint32_t message_length;
    memcpy(&message_length, d->header + (typed ? 1 : 0), 4);
    message_length = ntohl(message_length);
    int type = typed ? d->header[0] : 0;
    d->header_bytes = 0;
    d->remaining = message_length >= 4 ? message_length - 4 : 0;
    if (!typed) d->started = 1;
    if (s->frontend || type == 'C' || type == 'E') append_record(s->session, type, message_length, bytes + at, length - at);
  }
}

static void watch(struct side *s, int want_write) {
  struct epoll_event event = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = s};
  epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s->fd, &event);
}

static void send_to(struct side *to, const unsigned char *bytes, size_t length) {
  if (to->pending_bytes == 0) {
    ssize_t n = send(to->fd, bytes, length, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN) return; /* the read side sees the failure and closes the pair */
      n = 0;
    }
    bytes += n;
    length -= (size_t)n;
    if (length == 0) return;
    watch(to, 1);
  }
  to->pending = grow(to->pending, &to->pending_capacity, to->pending_bytes + length);
  memcpy(to->pending + to->pending_bytes, bytes, length);
  to->pending_bytes += length;
}

/* Sides closed during a batch of events: the batch may still name them, so they are freed after it. */
static struct side **closed_sides;
static size_t closed_count, closed_capacity;

static void close_pair(struct side *s) {
  struct side *pair[2] = {s, s->other};
  for (int i = 0; i < 2; i++) {
    close(pair[i]->fd); /* also takes it out of the epoll set */
    pair[i]->fd = -1;
    closed_sides = grow(closed_sides, &closed_capacity, (closed_count + 1) * sizeof *closed_sides);
    closed_sides[closed_count++] = pair[i];
  }
}

/* Client sides that read bytes this round. */
static struct side **round_sides;
static size_t round_count, round_capacity;

static void defer(struct side *s, const unsigned char *bytes, size_t length) {
  s->deferred = grow(s->deferred, &s->deferred_capacity, s->deferred_bytes + length);
  memcpy(s->deferred + s->deferred_bytes, bytes, length);
  s->deferred_bytes += length;
  if (!s->deferred_listed) {
    s->deferred_listed = 1;
    round_sides = grow(round_sides, &round_capacity, (round_count + 1) * sizeof *round_sides);
    round_sides[round_count++] = s;
  }
}

/* End of a round: one write of its records, then the client bytes it read go upstream. */
static void forward_round(void) {
  write_journal();
  for (size_t i = 0; i < round_count; i++) {
    struct side *s = round_sides[i];
    s->deferred_listed = 0;
    if (s->fd >= 0 && s->other->fd >= 0) send_to(s->other, s->deferred, s->deferred_bytes);
    s->deferred_bytes = 0;
  }
  round_count = 0;
}

static void free_closed(void) {
  for (size_t i = 0; i < closed_count; i++) {
    free(closed_sides[i]->deferred);
    free(closed_sides[i]->pending);
    free(closed_sides[i]);
  }
  closed_count = 0;
}

static int tcp_socket_options(int fd) {
  int one = 1;
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) return -1;
  return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void accept_one(int listener, int upstream_port, uint64_t session) {
  int client = accept(listener, NULL, NULL);
  if (client < 0) return;
  int upstream = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (upstream < 0 || connect(upstream, (struct sockaddr *)&address, sizeof address) != 0 || tcp_socket_options(client) != 0 ||
      tcp_socket_options(upstream) != 0) {
    perror("native-floor-relay: upstream");
    close(client);
    if (upstream >= 0) close(upstream);
    return;
  }
  struct side *c = calloc(1, sizeof *c), *u = calloc(1, sizeof *u);
  if (!c || !u) fail("calloc");
  *c = (struct side){.fd = client, .frontend = 1, .other = u, .session = session};
  *u = (struct side){.fd = upstream, .frontend = 0, .other = c, .session = session};
  struct epoll_event client_event = {.events = EPOLLIN, .data.ptr = c}, upstream_event = {.events = EPOLLIN, .data.ptr = u};
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, client, &client_event);
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, upstream, &upstream_event);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: native-floor-relay <upstream port> <journal file | ->\n");
    return 2;
  }
  int upstream_port = atoi(argv[1]);
  audit = strcmp(argv[2], "-") != 0;
  if (audit) {
    journal_fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (journal_fd < 0) fail("open journal");
    pthread_t syncer;
    if (pthread_create(&syncer, NULL, sync_loop, NULL) != 0) fail("pthread_create");
  }

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t address_length = sizeof address;
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 128) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &address_length) != 0)
    fail("listen");
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event listen_event = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listener, &listen_event);
  printf("%d\n", ntohs(address.sin_port));
  fflush(stdout);

  static unsigned char bytes[65536];
  struct epoll_event events[64];
  uint64_t sessions = 0;
  for (;;) {
    int ready = epoll_wait(epoll_fd, events, 64, -1);
    if (ready < 0 && errno != EINTR) fail("epoll_wait");
    for (int i = 0; i < ready; i++) {
      struct side *s = events[i].data.ptr;
      if (s == NULL) {
        accept_one(listener, upstream_port, ++sessions);
        continue;
      }
      if (s->fd < 0) continue;
      if ((events[i].events & EPOLLOUT) && s->pending_bytes > 0) {
        ssize_t n = send(s->fd, s->pending, s->pending_bytes, MSG_NOSIGNAL);
        if (n > 0) {
          memmove(s->pending, s->pending + n, s->pending_bytes - (size_t)n);
          s->pending_bytes -= (size_t)n;
        }
        if (s->pending_bytes == 0) watch(s, 0);
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      ssize_t n = read(s->fd, bytes, sizeof bytes);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        close_pair(s);
        continue;
      }
      if (n < 0) continue;
      /* A TLS request is declined ('N'), as the gateway does without a certificate. */
      if (s->frontend && !s->dir.started && s->dir.header_bytes == 0 && n == 8 &&
          ntohl(*(uint32_t *)(bytes + 4)) == SSL_REQUEST_CODE) {
        send_to(s, (const unsigned char *)"N", 1);
        continue;
      }
      scan(s, bytes, (size_t)n);
      /* Write-ahead: the client's records are in the journal file before its bytes go upstream (at the round's end). */
      if (s->frontend && audit) defer(s, bytes, (size_t)n);
      else send_to(s->other, bytes, (size_t)n);
    }
    forward_round();
    free_closed();
  }
}
