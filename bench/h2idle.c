// h2idle: open N h2c (HTTP/2 with prior knowledge, cleartext) connections to HOST:PORT.
// On each: send the client preface + an empty SETTINGS frame, read the server's frames until
// both its SETTINGS and the ACK of ours have arrived (any WINDOW_UPDATE etc. in between is
// skipped), send the ACK of its SETTINGS, then keep the connection open and idle, with no
// stream ever opened. The HTTP/2 counterpart of idleconns.c (bench/run-h2).
//
// Prints "READY <n>" on stdout (flushed) once all N connections finished the SETTINGS
// exchange, so a driver can read the proxy's memory while N connections are idle. Runs until
// stdin is closed or SIGTERM/SIGINT arrives, then prints "CLOSED <k> GOAWAY <g>": connections
// the server closed while idle, and GOAWAY frames it sent on idle connections.
// Exits non-zero with a message on stderr if a connection fails or the exchange does not
// finish within the timeout.
//
// Build: gcc -O2 -o h2idle h2idle.c   (bench/run-h2 does this itself)
// Usage: h2idle HOST PORT N [MAX_INFLIGHT] [TIMEOUT_S]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING = 1, ST_HANDSHAKE = 2, ST_IDLE = 3, ST_DEAD = 4 };
enum { F_GOAWAY = 7, F_SETTINGS = 4 };

struct conn {
  int fd;
  int state;
  int got_settings, got_ack;
  size_t have;       // bytes in buf
  size_t skip;       // payload bytes of the current (large) frame still to discard
  unsigned char buf[512];
};

static volatile sig_atomic_t g_stop;
static void on_sig(int s) { (void)s; g_stop = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int write_all(int fd, const void *p, size_t n) {
  // Small writes on a fresh socket: they fit the send buffer.
  ssize_t r = write(fd, p, n);
  return r == (ssize_t)n ? 0 : -1;
}

// Consumes whole frames from c->buf; returns the number of GOAWAY frames seen.
static int eat_frames(struct conn *c) {
  int goaways = 0;
  size_t off = 0;
  while (c->skip == 0 && c->have - off >= 9) {
    const unsigned char *h = c->buf + off;
    size_t len = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    int type = h[3], flags = h[4];
    if (type == F_SETTINGS) {
      if (flags & 1) c->got_ack = 1;
      else c->got_settings = 1;
    } else if (type == F_GOAWAY) {
      goaways++;
    }
    off += 9;
    size_t avail = c->have - off;
    if (avail >= len) {
      off += len;
    } else {
      off += avail;
      c->skip = len - avail;
    }
  }
  memmove(c->buf, c->buf + off, c->have - off);
  c->have -= off;
  return goaways;
}

// Reads what is available; returns -1 on EOF/error, else the GOAWAYs seen.
static int read_frames(struct conn *c) {
  int goaways = 0;
  for (;;) {
    ssize_t r;
    if (c->skip) {
      unsigned char junk[4096];
      size_t want = c->skip < sizeof junk ? c->skip : sizeof junk;
      r = read(c->fd, junk, want);
      if (r > 0) { c->skip -= (size_t)r; continue; }
    } else {
      r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
      if (r > 0) { c->have += (size_t)r; goaways += eat_frames(c); continue; }
    }
    if (r == 0) return -1;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return goaways;
    if (errno == EINTR) continue;
    return -1;
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s HOST PORT N [MAX_INFLIGHT] [TIMEOUT_S]\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  int n = atoi(argv[3]);
  int max_inflight = argc > 4 ? atoi(argv[4]) : 256;
  double timeout = argc > 5 ? atof(argv[5]) : 60.0;

  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)n + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
      fprintf(stderr, "h2idle: RLIMIT_NOFILE %lu too low for %d connections\n",
              (unsigned long)rl.rlim_cur, n);
      return 2;
    }
  }
  signal(SIGTERM, on_sig);
  signal(SIGINT, on_sig);
  signal(SIGPIPE, SIG_IGN);

  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  unsigned char hello[24 + 9];
  memcpy(hello, preface, 24);
  memset(hello + 24, 0, 9);
  hello[24 + 3] = F_SETTINGS;  // empty SETTINGS, stream 0
  static const unsigned char ack[9] = {0, 0, 0, F_SETTINGS, 1, 0, 0, 0, 0};

  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "h2idle: bad IPv4 host %s\n", host);
    return 2;
  }

  struct conn *cs = calloc((size_t)n, sizeof *cs);
  int ep = epoll_create1(0);
  int opened = 0, inflight = 0, done = 0, goaways = 0;
  double deadline = now_s() + timeout;
  struct epoll_event evs[512];

  while (done < n) {
    while (opened < n && inflight < max_inflight) {
      struct conn *c = &cs[opened];
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (c->fd < 0) { perror("h2idle: socket"); return 1; }
      int one = 1;
      setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      int r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
      if (r < 0 && errno != EINPROGRESS) { perror("h2idle: connect"); return 1; }
      c->state = ST_CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)opened};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
      opened++;
      inflight++;
    }
    if (now_s() > deadline) {
      fprintf(stderr, "h2idle: timeout: %d/%d connections through SETTINGS after %.0fs\n", done,
              n, timeout);
      return 1;
    }
    int k = epoll_wait(ep, evs, 512, 200);
    for (int i = 0; i < k; i++) {
      uint32_t idx = evs[i].data.u32;
      struct conn *c = &cs[idx];
      if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { fprintf(stderr, "h2idle: connect: %s\n", strerror(err)); return 1; }
        if (write_all(c->fd, hello, sizeof hello)) { perror("h2idle: write"); return 1; }
        c->state = ST_HANDSHAKE;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = idx};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      } else if (c->state == ST_HANDSHAKE) {
        int had_settings = c->got_settings;
        int g = read_frames(c);
        if (g < 0) {
          fprintf(stderr, "h2idle: connection %u closed during the SETTINGS exchange\n", idx);
          return 1;
        }
        if (g > 0) {
          fprintf(stderr, "h2idle: connection %u got GOAWAY during the SETTINGS exchange "
                  "(not an h2c prior-knowledge listener?)\n", idx);
          return 1;
        }
        if (c->got_settings && !had_settings && write_all(c->fd, ack, sizeof ack)) {
          perror("h2idle: write ack");
          return 1;
        }
        if (c->got_settings && c->got_ack) {
          c->state = ST_IDLE;
          // Watch for the server closing (or GOAWAYing) the idle connection.
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = idx};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
          done++;
          inflight--;
        }
      }
    }
  }
  printf("READY %d\n", done);
  fflush(stdout);

  int closed = 0;
  struct pollfd pin = {.fd = 0, .events = POLLIN};
  while (!g_stop) {
    int k = epoll_wait(ep, evs, 512, 100);
    for (int i = 0; i < k; i++) {
      struct conn *c = &cs[evs[i].data.u32];
      if (c->state != ST_IDLE) continue;
      int g = read_frames(c);
      if (g > 0) goaways += g;
      if (g < 0 || (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        c->state = ST_DEAD;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        closed++;
      }
    }
    if (poll(&pin, 1, 0) > 0) {
      char b[64];
      if (read(0, b, sizeof b) <= 0) break;  // stdin closed: finish
    }
  }
  printf("CLOSED %d GOAWAY %d\n", closed, goaways);
  fflush(stdout);
  return 0;
}
