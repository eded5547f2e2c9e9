// idleconns: open N keep-alive HTTP/1.1 connections to HOST:PORT, send one
// "GET PATH" on each, read the full response, then keep every connection open
// and idle until stdin is closed or SIGTERM/SIGINT arrives.
//
// Prints "READY <n>" on stdout (flushed) once all N responses were read, so a
// driver can measure the proxy's memory while N connections are idle.
// Exits non-zero with a message on stderr if any connection fails or a
// response does not arrive within the timeout; also reports connections that
// the server closed while idle ("CLOSED <k>" at exit).
//
// Build: gcc -O2 -o idleconns idleconns.c   (bench/run-http does this itself)
// Usage: idleconns HOST PORT N [PATH] [MAX_INFLIGHT] [TIMEOUT_S]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING = 1, ST_READING = 2, ST_IDLE = 3, ST_DEAD = 4 };

struct conn {
  int fd;
  int state;
  size_t got;
  char buf[2048];
};

static volatile sig_atomic_t g_stop;
static void on_sig(int s) { (void)s; g_stop = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Returns 1 when buf holds a complete response (Content-Length or chunked end).
static int response_complete(const char *buf, size_t len) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t head = (size_t)(end - buf) + 4;
  const char *p = buf;
  while (p < end) {
    const char *nl = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    if (!nl) break;
    if ((size_t)(nl - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
      size_t cl = strtoul(p + 15, NULL, 10);
      return len >= head + cl;
    }
    if ((size_t)(nl - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) {
      return memmem(buf + head, len - head, "0\r\n\r\n", 5) != NULL;
    }
    p = nl + 2;
  }
  return 1;  // no framing header: assume headers-only (e.g. 204/304)
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s HOST PORT N [PATH] [MAX_INFLIGHT] [TIMEOUT_S]\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  int n = atoi(argv[3]);
  const char *path = argc > 4 ? argv[4] : "/";
  int max_inflight = argc > 5 ? atoi(argv[5]) : 256;
  double timeout = argc > 6 ? atof(argv[6]) : 60.0;

  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)n + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64) {
      fprintf(stderr, "idleconns: RLIMIT_NOFILE %lu too low for %d connections\n",
              (unsigned long)rl.rlim_cur, n);
      return 2;
    }
  }
  signal(SIGTERM, on_sig);
  signal(SIGINT, on_sig);
  signal(SIGPIPE, SIG_IGN);

  char req[512];
  int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: idleconns\r\n\r\n",
                        path, host, port);

  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "idleconns: bad IPv4 host %s\n", host);
    return 2;
  }

  struct conn *cs = calloc((size_t)n, sizeof *cs);
  int ep = epoll_create1(0);
  int opened = 0, inflight = 0, done = 0, failed = 0;
  double deadline = now_s() + timeout;
  struct epoll_event evs[512];

  while (done < n) {
    while (opened < n && inflight < max_inflight) {
      struct conn *c = &cs[opened];
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (c->fd < 0) { perror("idleconns: socket"); return 1; }
      int one = 1;
      setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      int r = connect(c->fd, (struct sockaddr *)&sa, sizeof sa);
      if (r < 0 && errno != EINPROGRESS) { perror("idleconns: connect"); return 1; }
      c->state = ST_CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)opened};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
      opened++;
      inflight++;
    }
    if (now_s() > deadline) {
      fprintf(stderr, "idleconns: timeout: %d/%d responses after %.0fs\n", done, n, timeout);
      return 1;
    }
    int k = epoll_wait(ep, evs, 512, 200);
    for (int i = 0; i < k; i++) {
      struct conn *c = &cs[evs[i].data.u32];
      if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { fprintf(stderr, "idleconns: connect: %s\n", strerror(err)); failed++; return 1; }
        if (write(c->fd, req, (size_t)reqlen) != reqlen) { perror("idleconns: write"); return 1; }
        c->state = ST_READING;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[i].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      } else if (c->state == ST_READING) {
        ssize_t r = read(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got);
        if (r <= 0) {
          if (r < 0 && errno == EAGAIN) continue;
          fprintf(stderr, "idleconns: connection %u closed before the response (%s)\n",
                  evs[i].data.u32, r == 0 ? "EOF" : strerror(errno));
          return 1;
        }
        c->got += (size_t)r;
        if (response_complete(c->buf, c->got) || c->got >= sizeof c->buf - 1) {
          if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0) {
            c->buf[c->got < 60 ? c->got : 60] = 0;
            fprintf(stderr, "idleconns: unexpected response: %s\n", c->buf);
            return 1;
          }
          c->state = ST_IDLE;
          // Keep watching for the server closing the idle connection.
          struct epoll_event ev = {.events = EPOLLRDHUP, .data.u32 = evs[i].data.u32};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
          done++;
          inflight--;
        }
      }
    }
  }
  (void)failed;
  printf("READY %d\n", done);
  fflush(stdout);

  int closed = 0;
  struct pollfd pin = {.fd = 0, .events = POLLIN};
  while (!g_stop) {
    int k = epoll_wait(ep, evs, 512, 100);
    for (int i = 0; i < k; i++) {
      struct conn *c = &cs[evs[i].data.u32];
      if (c->state == ST_IDLE && (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
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
  printf("CLOSED %d\n", closed);
  fflush(stdout);
  return 0;
}
