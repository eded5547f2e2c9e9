// zproxy-test-backend: the upstream used by the end-to-end tests and the benchmarks.
//
// One epoll loop per thread (--threads N), each with its own SO_REUSEPORT listen socket, so
// threads share nothing but the log file. The "/" path is a tight keep-alive loop: a
// precomputed response is appended once per pipelined request and all of them leave in one
// send(). Everything else exists so the tests can observe what the proxy forwarded.
//
//   --listen HOST:PORT   port 0 picks a free port; the chosen address is printed on stdout as
//                        "listening on HOST:PORT" (tests read it, so no port races)
//   --name NAME          appears in bodies ("hello from NAME\n") and in /echo
//   --log FILE           appends "conn <peer>" per accepted connection and
//                        "req METHOD TARGET" per parsed request head, written immediately
//                        (one write() per line) so tests can assert the upstream saw nothing
//   --threads N          default 1
//
// Endpoints (see tests/backend/README.md for the full contract):
//   /  and unknown paths  200 "hello from NAME\n"
//   /echo                 200 JSON describing the request, incl. body_len and body_hash
//                         (FNV-1a 64, 16 lowercase hex digits)
//   /echo-body            the request body streamed back (Content-Length or chunked, as sent)
//   /bytes/N              N pattern bytes, Content-Length; byte i = (i * 31 + 7) & 0xff
//   /chunked/N            the same bytes, chunked in uneven chunk sizes
//   /close/N              the same bytes, no Content-Length, Connection: close
//   /status/N             status N, short body (none for 204/304)
//   /slow/MS              200 after MS milliseconds (timer; other connections keep going)
//   /abort/N              Content-Length N, then N/2 bytes, then the socket is closed
//   /early-hints          103 with a Link header, then 200
//   /headers/N            200 with N extra headers X-Extra-<i>: value-<i>
//   /healthz              200 "ok\n"
//   /continue             replies {"body_len":N,"body_hash":".."}; any request carrying
//                         Expect: 100-continue (HTTP/1.1, with a body) first gets 100 Continue
// HEAD is honoured everywhere: same headers, no body.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Global settings (read-only after startup).

std::string g_name = "backend";
int g_log_fd = -1;
std::string g_hello_body;
std::string g_hello_response;       // keep-alive 200 for "/"
std::string g_hello_head_response;  // same headers, no body (HEAD /)

// Byte i of every generated body is (i * 31 + 7) & 0xff. 31 is odd, so the pattern has period
// 256; kPattern holds 256 bytes more than the largest copy so any offset can be memcpy'd.
constexpr size_t kGenSlice = 256 * 1024;
std::vector<char> g_pattern;

void InitPattern() {
  g_pattern.resize(kGenSlice + 256);
  for (size_t i = 0; i < g_pattern.size(); ++i)
    g_pattern[i] = static_cast<char>((i * 31 + 7) & 0xff);
}

[[noreturn]] void Die(const char* what) {
  fprintf(stderr, "zproxy-test-backend: %s: %s\n", what, strerror(errno));
  exit(1);
}

void LogLine(const std::string& line) {
  if (g_log_fd < 0) return;
  // One write() per line on an O_APPEND fd: lines from several threads never interleave.
  std::string l = line + "\n";
  ssize_t n = write(g_log_fd, l.data(), l.size());
  (void)n;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x += 32;
    if (y >= 'A' && y <= 'Z') y += 32;
    if (x != y) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(token) for each comma-separated, trimmed, non-empty token.
template <typename Fn>
void ForEachToken(std::string_view list, Fn fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view tok = Trim(list.substr(0, comma));
    if (!tok.empty()) fn(tok);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void Update(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(p[i]);
      h *= 0x100000001b3ull;
    }
  }
  std::string Hex() const {
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

void JsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      // Bytes >= 0x7f are escaped as Latin-1 code points so the JSON is always valid UTF-8.
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

const char* Reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

// ---------------------------------------------------------------------------------------------
// Connections.

enum class Handler {
  kHello,
  kEcho,
  kEchoBody,
  kBytes,
  kChunked,
  kClose,
  kStatus,
  kSlow,
  kAbort,
  kEarlyHints,
  kHeaders,
  kHealthz,
  kContinue,
};

enum class BodyMode { kNone, kLength, kChunked };
enum class ChunkState { kSize, kData, kDataCrlf, kTrailer };
enum class GenMode { kNone, kPlain, kChunked };

// The request whose head has been parsed and whose body (if any) is being read.
struct Request {
  std::string method;
  std::string target;
  bool http10 = false;
  bool head = false;
  bool keep_alive = true;
  bool explicit_keep_alive = false;  // HTTP/1.0 with Connection: keep-alive
  Handler handler = Handler::kHello;
  uint64_t arg = 0;                                          // N or MS from the path
  std::vector<std::pair<std::string, std::string>> headers;  // only kept for /echo
  BodyMode body_mode = BodyMode::kNone;
  uint64_t body_left = 0;  // kLength: bytes still to read; kChunked: of the current chunk
  ChunkState chunk_state = ChunkState::kSize;
  uint64_t body_len = 0;
  Fnv1a body_hash;
};

struct Conn {
  int fd = -1;
  uint64_t id = 0;
  std::string in;  // unparsed input
  std::string out;
  size_t out_off = 0;
  bool want_out = false;  // EPOLLOUT registered
  bool in_body = false;   // head parsed, body still arriving
  Request req;
  bool waiting_timer = false;
  bool close_after = false;  // close once `out` (and the generator) are flushed
  bool draining = false;     // write side shut; discard input until EOF
  bool peer_eof = false;     // client half-closed: answer what was sent, then close
  bool dead = false;
  // Generated body still to be produced into `out`.
  GenMode gen = GenMode::kNone;
  uint64_t gen_off = 0;
  uint64_t gen_left = 0;
  size_t gen_chunk_idx = 0;
  bool gen_chunked_end = false;  // emit the terminating 0-chunk when done
};

// Uneven chunk sizes for /chunked/N: small, odd and buffer-boundary-straddling sizes.
constexpr uint64_t kChunkSizes[] = {1, 13, 255, 4096, 1000, 65536, 7, 30000, 2, 16385};

class Worker {
 public:
  explicit Worker(int listen_fd) : listen_fd_(listen_fd) {}
  void Run();

 private:
  void Accept();
  void OnReadable(Conn* c);
  void Drive(Conn* c);
  bool Busy(const Conn* c) const {
    return c->waiting_timer || c->gen != GenMode::kNone || c->close_after || c->draining;
  }
  bool ProcessInput(Conn* c);  // parses and handles requests while not busy
  // Returns: 1 parsed a head, 0 need more data, -1 malformed (connection closing).
  int ParseHead(Conn* c, size_t* consumed);
  void StartRequest(Conn* c);
  bool ConsumeBody(Conn* c, size_t* pos);  // true when the body is complete
  void OnBodyData(Conn* c, const char* p, size_t n);
  void FinishRequest(Conn* c);
  void Respond(Conn* c, int status, std::string_view body, std::string_view extra_headers = {},
               std::string_view content_type = "text/plain");
  std::string CommonHeaders(Conn* c);
  void BadRequest(Conn* c);
  bool Flush(Conn* c);  // true when everything (incl. generated body) has been sent
  void FillFromGenerator(Conn* c);
  void UpdateEvents(Conn* c, bool want_out, bool force = false);
  void Close(Conn* c);
  void ArmTimer();
  void OnTimer();

  int listen_fd_;
  int ep_ = -1;
  int timer_fd_ = -1;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, Conn*> conns_;
  std::vector<Conn*> graveyard_;  // freed after each epoll batch (events may still point here)
  using TimerEntry = std::pair<uint64_t, uint64_t>;  // deadline ns, conn id
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
  std::vector<char> rbuf_ = std::vector<char>(256 * 1024);
  // Tags for epoll data.ptr that are not connections.
  char listen_tag_ = 0, timer_tag_ = 0;
};

void Worker::Run() {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) Die("epoll_create1");
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) Die("timerfd_create");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listen_tag_;
  if (epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev) < 0) Die("epoll_ctl listen");
  ev.data.ptr = &timer_tag_;
  if (epoll_ctl(ep_, EPOLL_CTL_ADD, timer_fd_, &ev) < 0) Die("epoll_ctl timer");

  epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep_, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == &listen_tag_) {
        Accept();
      } else if (p == &timer_tag_) {
        OnTimer();
      } else {
        Conn* c = static_cast<Conn*>(p);
        if (c->dead) continue;
        uint32_t e = events[i].events;
        if ((e & (EPOLLHUP | EPOLLERR)) && c->peer_eof) {
          Close(c);  // both directions gone: nobody is left to answer
          continue;
        }
        if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) OnReadable(c);
        if (!c->dead && (e & EPOLLOUT)) Drive(c);
      }
    }
    for (Conn* c : graveyard_) delete c;
    graveyard_.clear();
  }
}

void Worker::Accept() {
  for (;;) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      if (errno == EMFILE || errno == ENFILE) return;  // level-triggered: retried later
      Die("accept4");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (g_log_fd >= 0) {
      char host[INET6_ADDRSTRLEN] = "?";
      int port = 0;
      if (ss.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        LogLine("conn " + std::string(host) + ":" + std::to_string(port));
      } else if (ss.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        LogLine("conn [" + std::string(host) + "]:" + std::to_string(port));
      }
    }
    Conn* c = new Conn;
    c->fd = fd;
    c->id = next_id_++;
    conns_[c->id] = c;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) < 0) Die("epoll_ctl conn");
  }
}

void Worker::OnReadable(Conn* c) {
  for (;;) {
    ssize_t n = recv(c->fd, rbuf_.data(), rbuf_.size(), 0);
    if (n > 0) {
      if (!c->draining) c->in.append(rbuf_.data(), n);
      if (static_cast<size_t>(n) < rbuf_.size()) break;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    // EOF or error. A client that half-closes after sending requests still gets its answers
    // (Drive closes once they are out); stop watching input, it would stay readable forever.
    if (n == 0 && !c->draining) {
      c->peer_eof = true;
      UpdateEvents(c, c->want_out, true);
      break;
    }
    Close(c);
    return;
  }
  Drive(c);
}

// Alternates parsing and flushing until neither makes progress. Handles the "busy" states
// (timer pending, generated body in flight) that pause pipelined requests.
void Worker::Drive(Conn* c) {
  for (int guard = 0; guard < 1000000 && !c->dead; ++guard) {
    bool progress = false;
    if (!Busy(c)) progress = ProcessInput(c);
    if (c->dead) return;
    bool was_generating = c->gen != GenMode::kNone;
    bool flushed = Flush(c);
    if (c->dead) return;
    if (was_generating && c->gen == GenMode::kNone) progress = true;
    bool idle = flushed && !c->waiting_timer && c->gen == GenMode::kNone;
    if (idle && c->close_after && !c->draining) {
      if (c->peer_eof) {
        Close(c);
        return;
      }
      // Shut the write side and read until the peer closes: closing with unread input would
      // send a RST, which can destroy the response bytes still in flight.
      shutdown(c->fd, SHUT_WR);
      c->draining = true;
      c->in.clear();
      return;
    }
    if (idle && c->peer_eof && !progress) {
      Close(c);
      return;
    }
    if (!progress) return;
  }
}

bool Worker::ProcessInput(Conn* c) {
  size_t pos = 0;
  bool progress = false;
  while (!Busy(c) && !c->dead) {
    if (!c->in_body) {
      size_t consumed = 0;
      int r = ParseHead(c, &consumed);
      if (r < 0) {
        pos = c->in.size();
        progress = true;
        break;
      }
      if (r == 0) break;
      c->in.erase(0, consumed);  // heads are small; erasing keeps offsets simple
      pos = 0;
      progress = true;
      StartRequest(c);
      if (!c->in_body) {
        FinishRequest(c);
        continue;
      }
    }
    size_t before = pos;
    bool done = ConsumeBody(c, &pos);
    if (c->dead) return true;
    if (pos != before) progress = true;
    if (done) {
      c->in_body = false;
      c->in.erase(0, pos);
      pos = 0;
      progress = true;
      FinishRequest(c);
      continue;
    }
    break;
  }
  if (pos > 0) c->in.erase(0, pos);
  return progress;
}

int Worker::ParseHead(Conn* c, size_t* consumed) {
  size_t end = c->in.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c->in.size() > 1024 * 1024) {
      BadRequest(c);
      return -1;
    }
    return 0;
  }
  *consumed = end + 4;
  std::string_view head(c->in.data(), end);
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);

  Request& r = c->req;
  r = Request();
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    BadRequest(c);
    return -1;
  }
  r.method = std::string(line.substr(0, sp1));
  r.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view version = line.substr(sp2 + 1);
  LogLine("req " + r.method + " " + r.target);
  if (version == "HTTP/1.0") {
    r.http10 = true;
    r.keep_alive = false;
  } else if (version != "HTTP/1.1") {
    BadRequest(c);
    return -1;
  }
  r.head = r.method == "HEAD";

  std::string_view path = r.target;
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  auto with_arg = [&](std::string_view prefix, Handler h) {
    if (path.substr(0, prefix.size()) != prefix) return false;
    if (!ParseU64(path.substr(prefix.size()), &r.arg)) return false;
    r.handler = h;
    return true;
  };
  // "/echo" also matches as the last segment (/api/echo) so routed prefixes can reach it.
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix;
  };
  if (ends_with("/echo")) {
    r.handler = Handler::kEcho;
  } else if (path == "/echo-body") {
    r.handler = Handler::kEchoBody;
  } else if (path == "/early-hints") {
    r.handler = Handler::kEarlyHints;
  } else if (path == "/healthz") {
    r.handler = Handler::kHealthz;
  } else if (path == "/continue") {
    r.handler = Handler::kContinue;
  } else if (with_arg("/bytes/", Handler::kBytes) || with_arg("/chunked/", Handler::kChunked) ||
             with_arg("/close/", Handler::kClose) || with_arg("/status/", Handler::kStatus) ||
             with_arg("/slow/", Handler::kSlow) || with_arg("/abort/", Handler::kAbort) ||
             with_arg("/headers/", Handler::kHeaders)) {
  } else {
    r.handler = Handler::kHello;
  }

  bool have_cl = false, chunked = false, te = false, expect_continue = false;
  uint64_t cl = 0;
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view h = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      BadRequest(c);
      return -1;
    }
    std::string_view name = h.substr(0, colon);
    std::string_view value = Trim(h.substr(colon + 1));
    if (r.handler == Handler::kEcho) r.headers.emplace_back(name, value);
    if (IEquals(name, "content-length")) {
      uint64_t v;
      if (!ParseU64(value, &v) || (have_cl && v != cl)) {
        BadRequest(c);
        return -1;
      }
      have_cl = true;
      cl = v;
    } else if (IEquals(name, "transfer-encoding")) {
      te = true;
      chunked = false;
      ForEachToken(value, [&](std::string_view t) { chunked = IEquals(t, "chunked"); });
    } else if (IEquals(name, "connection")) {
      ForEachToken(value, [&](std::string_view t) {
        if (IEquals(t, "close")) r.keep_alive = false;
        if (IEquals(t, "keep-alive") && r.http10) r.keep_alive = r.explicit_keep_alive = true;
      });
    } else if (IEquals(name, "expect")) {
      expect_continue = IEquals(value, "100-continue");
    }
  }
  // The proxy must never forward these; if it does, answer 400 (the log already shows it).
  if ((te && !chunked) || (te && have_cl)) {
    BadRequest(c);
    return -1;
  }
  if (chunked) {
    r.body_mode = BodyMode::kChunked;
  } else if (have_cl && cl > 0) {
    r.body_mode = BodyMode::kLength;
    r.body_left = cl;
  }
  if (expect_continue && !r.http10 && r.body_mode != BodyMode::kNone) {
    c->out += "HTTP/1.1 100 Continue\r\n\r\n";
  }
  return 1;
}

std::string Worker::CommonHeaders(Conn* c) {
  if (!c->req.keep_alive) return "Connection: close\r\n";
  if (c->req.explicit_keep_alive) return "Connection: keep-alive\r\n";
  return {};
}

// Called once the head is parsed; begins streaming responses that do not wait for the body.
void Worker::StartRequest(Conn* c) {
  Request& r = c->req;
  c->in_body = r.body_mode != BodyMode::kNone;
  if (r.handler == Handler::kEchoBody && !r.head) {
    std::string h =
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" + CommonHeaders(c);
    if (r.body_mode == BodyMode::kChunked) {
      h += "Transfer-Encoding: chunked\r\n\r\n";
    } else {
      h += "Content-Length: " + std::to_string(r.body_mode == BodyMode::kLength ? r.body_left : 0) +
           "\r\n\r\n";
    }
    c->out += h;
  }
}

bool Worker::ConsumeBody(Conn* c, size_t* pos) {
  Request& r = c->req;
  std::string& in = c->in;
  if (r.body_mode == BodyMode::kLength) {
    uint64_t n = std::min<uint64_t>(r.body_left, in.size() - *pos);
    OnBodyData(c, in.data() + *pos, n);
    *pos += n;
    r.body_left -= n;
    return r.body_left == 0;
  }
  for (;;) {
    switch (r.chunk_state) {
      case ChunkState::kSize: {
        size_t e = in.find("\r\n", *pos);
        if (e == std::string::npos) {
          if (in.size() - *pos > 4096) BadRequest(c);
          return false;
        }
        std::string_view line(in.data() + *pos, e - *pos);
        std::string_view size = line.substr(0, line.find(';'));
        size = Trim(size);
        uint64_t v = 0;
        auto [p, ec] = std::from_chars(size.data(), size.data() + size.size(), v, 16);
        if (size.empty() || ec != std::errc() || p != size.data() + size.size()) {
          BadRequest(c);
          return false;
        }
        *pos = e + 2;
        r.body_left = v;
        r.chunk_state = v == 0 ? ChunkState::kTrailer : ChunkState::kData;
        break;
      }
      case ChunkState::kData: {
        uint64_t n = std::min<uint64_t>(r.body_left, in.size() - *pos);
        OnBodyData(c, in.data() + *pos, n);
        *pos += n;
        r.body_left -= n;
        if (r.body_left > 0) return false;
        r.chunk_state = ChunkState::kDataCrlf;
        break;
      }
      case ChunkState::kDataCrlf:
        if (in.size() - *pos < 2) return false;
        if (in.compare(*pos, 2, "\r\n") != 0) {
          BadRequest(c);
          return false;
        }
        *pos += 2;
        r.chunk_state = ChunkState::kSize;
        break;
      case ChunkState::kTrailer: {
        size_t e = in.find("\r\n", *pos);
        if (e == std::string::npos) return false;
        bool empty = e == *pos;
        *pos = e + 2;
        if (empty) return true;
        break;
      }
    }
  }
}

void Worker::OnBodyData(Conn* c, const char* p, size_t n) {
  if (n == 0) return;
  Request& r = c->req;
  r.body_len += n;
  r.body_hash.Update(p, n);
  if (r.handler == Handler::kEchoBody && !r.head) {
    if (r.body_mode == BodyMode::kChunked) {
      char hex[32];
      snprintf(hex, sizeof hex, "%zx\r\n", n);
      c->out += hex;
      c->out.append(p, n);
      c->out += "\r\n";
    } else {
      c->out.append(p, n);
    }
    // Stream as we go instead of buffering whole bodies.
    if (c->out.size() - c->out_off > 64 * 1024) Flush(c);
  }
}

void Worker::Respond(Conn* c, int status, std::string_view body, std::string_view extra_headers,
                     std::string_view content_type) {
  std::string& o = c->out;
  o += "HTTP/1.1 ";
  o += std::to_string(status);
  o += ' ';
  o += Reason(status);
  o += "\r\n";
  bool no_body = status == 204 || status == 304 || status < 200;
  if (!no_body) {
    o += "Content-Type: ";
    o += content_type;
    o += "\r\nContent-Length: ";
    o += std::to_string(body.size());
    o += "\r\n";
  }
  o += CommonHeaders(c);
  o += extra_headers;
  o += "\r\n";
  if (!no_body && !c->req.head) o += body;
}

void Worker::BadRequest(Conn* c) {
  c->req.keep_alive = false;
  c->req.head = false;
  c->in_body = false;
  Respond(c, 400, "bad request\n");
  c->close_after = true;
}

void Worker::FinishRequest(Conn* c) {
  Request& r = c->req;
  if (!r.keep_alive) c->close_after = true;
  switch (r.handler) {
    case Handler::kHello:
      if (r.keep_alive && !r.explicit_keep_alive) {
        c->out += r.head ? g_hello_head_response : g_hello_response;  // the fast path
      } else {
        Respond(c, 200, g_hello_body);
      }
      break;
    case Handler::kHealthz:
      Respond(c, 200, "ok\n");
      break;
    case Handler::kEcho: {
      std::string j = "{\"name\":";
      JsonString(j, g_name);
      j += ",\"method\":";
      JsonString(j, r.method);
      j += ",\"target\":";
      JsonString(j, r.target);
      j += ",\"version\":";
      JsonString(j, r.http10 ? "1.0" : "1.1");
      j += ",\"headers\":[";
      for (size_t i = 0; i < r.headers.size(); ++i) {
        if (i) j += ',';
        j += '[';
        JsonString(j, r.headers[i].first);
        j += ',';
        JsonString(j, r.headers[i].second);
        j += ']';
      }
      j += "],\"body_len\":" + std::to_string(r.body_len) + ",\"body_hash\":\"" +
           r.body_hash.Hex() + "\"}\n";
      Respond(c, 200, j, {}, "application/json");
      break;
    }
    case Handler::kContinue:
      Respond(c, 200,
              "{\"body_len\":" + std::to_string(r.body_len) + ",\"body_hash\":\"" +
                  r.body_hash.Hex() + "\"}\n",
              {}, "application/json");
      break;
    case Handler::kEchoBody:
      if (r.head) {
        Respond(c, 200, "");
      } else if (r.body_mode == BodyMode::kChunked) {
        c->out += "0\r\n\r\n";
      }
      break;
    case Handler::kBytes:
    case Handler::kChunked:
    case Handler::kClose:
    case Handler::kAbort: {
      std::string h = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n";
      if (r.handler == Handler::kClose) {
        c->close_after = true;
        h += "Connection: close\r\n";
      } else {
        h += CommonHeaders(c);
      }
      if (r.handler == Handler::kChunked) {
        h += "Transfer-Encoding: chunked\r\n";
      } else if (r.handler != Handler::kClose) {
        h += "Content-Length: " + std::to_string(r.arg) + "\r\n";
      }
      h += "\r\n";
      c->out += h;
      if (r.head) break;
      c->gen = r.handler == Handler::kChunked ? GenMode::kChunked : GenMode::kPlain;
      c->gen_off = 0;
      c->gen_left = r.handler == Handler::kAbort ? r.arg / 2 : r.arg;
      c->gen_chunk_idx = 0;
      c->gen_chunked_end = r.handler == Handler::kChunked;
      if (r.handler == Handler::kAbort) c->close_after = true;
      break;
    }
    case Handler::kStatus: {
      int s = static_cast<int>(r.arg);
      if (s < 200 || s > 599) {
        Respond(c, 400, "status must be 200..599\n");
      } else {
        Respond(c, s, "status " + std::to_string(s) + "\n");
      }
      break;
    }
    case Handler::kSlow:
      c->waiting_timer = true;
      timers_.emplace(NowNs() + r.arg * 1000000ull, c->id);
      ArmTimer();
      break;
    case Handler::kEarlyHints:
      // RFC 9110 15.2: no 1xx to HTTP/1.0 clients.
      if (!r.http10)
        c->out += "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n";
      Respond(c, 200, "early hints done\n", "Link: </style.css>; rel=preload; as=style\r\n");
      break;
    case Handler::kHeaders: {
      std::string extra;
      for (uint64_t i = 0; i < r.arg; ++i) {
        extra += "X-Extra-" + std::to_string(i) + ": value-" + std::to_string(i) + "\r\n";
      }
      Respond(c, 200, "headers " + std::to_string(r.arg) + "\n", extra);
      break;
    }
  }
}

void Worker::FillFromGenerator(Conn* c) {
  std::string& o = c->out;
  if (c->gen == GenMode::kPlain) {
    size_t n = std::min<uint64_t>(c->gen_left, kGenSlice);
    o.append(g_pattern.data() + (c->gen_off & 0xff), n);
    c->gen_off += n;
    c->gen_left -= n;
  } else {
    size_t budget = kGenSlice;
    while (c->gen_left > 0 && budget > 0) {
      uint64_t want = kChunkSizes[c->gen_chunk_idx % std::size(kChunkSizes)];
      size_t n = std::min<uint64_t>({want, c->gen_left, budget});
      char hex[32];
      snprintf(hex, sizeof hex, "%zx\r\n", n);
      o += hex;
      o.append(g_pattern.data() + (c->gen_off & 0xff), n);
      o += "\r\n";
      c->gen_off += n;
      c->gen_left -= n;
      budget -= n;
      ++c->gen_chunk_idx;
    }
    if (c->gen_left == 0 && c->gen_chunked_end) o += "0\r\n\r\n";
  }
  if (c->gen_left == 0) c->gen = GenMode::kNone;
}

bool Worker::Flush(Conn* c) {
  for (;;) {
    if (c->out_off == c->out.size()) {
      c->out.clear();
      c->out_off = 0;
      if (c->gen == GenMode::kNone) break;
      FillFromGenerator(c);
      continue;
    }
    ssize_t n = send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // Keep memory bounded for long-lived partial writes of large buffers.
      if (c->out_off > 1024 * 1024) {
        c->out.erase(0, c->out_off);
        c->out_off = 0;
      }
      UpdateEvents(c, true);
      return false;
    }
    Close(c);
    return false;
  }
  UpdateEvents(c, false);
  return true;
}

void Worker::UpdateEvents(Conn* c, bool want_out, bool force) {
  if (c->want_out == want_out && !force) return;
  c->want_out = want_out;
  epoll_event ev{};
  ev.events =
      (c->peer_eof ? 0u : uint32_t{EPOLLIN | EPOLLRDHUP}) | (want_out ? uint32_t{EPOLLOUT} : 0u);
  ev.data.ptr = c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
}

void Worker::Close(Conn* c) {
  if (c->dead) return;
  c->dead = true;
  epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  conns_.erase(c->id);
  graveyard_.push_back(c);
}

void Worker::ArmTimer() {
  itimerspec its{};
  if (!timers_.empty()) {
    uint64_t d = timers_.top().first;
    its.it_value.tv_sec = d / 1000000000ull;
    its.it_value.tv_nsec = d % 1000000000ull;
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

void Worker::OnTimer() {
  uint64_t expirations;
  ssize_t r = read(timer_fd_, &expirations, sizeof expirations);
  (void)r;
  uint64_t now = NowNs();
  while (!timers_.empty() && timers_.top().first <= now) {
    uint64_t id = timers_.top().second;
    timers_.pop();
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Conn* c = it->second;
    c->waiting_timer = false;
    Respond(c, 200, "slow " + std::to_string(c->req.arg) + "\n");
    Drive(c);
  }
  ArmTimer();
}

// ---------------------------------------------------------------------------------------------
// Startup.

struct ListenAddr {
  std::string host;
  std::string port;
};

ListenAddr SplitHostPort(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) {
    fprintf(stderr, "zproxy-test-backend: --listen wants HOST:PORT, got %s\n", s.c_str());
    exit(2);
  }
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, s.substr(colon + 1)};
}

int MakeListener(const ListenAddr& a, std::string* bound) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(a.host.empty() ? nullptr : a.host.c_str(), a.port.c_str(), &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "zproxy-test-backend: bad address %s:%s: %s\n", a.host.c_str(), a.port.c_str(),
            gai_strerror(rc));
    exit(2);
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) Die("bind");
  freeaddrinfo(res);
  if (listen(fd, 4096) < 0) Die("listen");
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char host[INET6_ADDRSTRLEN];
  if (ss.ss_family == AF_INET6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
    *bound = "[" + std::string(host) + "]:" + std::to_string(ntohs(s6->sin6_port));
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
    *bound = std::string(host) + ":" + std::to_string(ntohs(s4->sin_port));
  }
  return fd;
}

void Usage() {
  fprintf(stderr,
          "usage: zproxy-test-backend --listen HOST:PORT [--name NAME] [--log FILE] "
          "[--threads N]\n");
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0", log_path;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    if (a == "--listen") {
      listen = value();
    } else if (a == "--name") {
      g_name = value();
    } else if (a == "--log") {
      log_path = value();
    } else if (a == "--threads") {
      threads = atoi(value().c_str());
      if (threads < 1) Usage();
    } else {
      Usage();
    }
  }
  signal(SIGPIPE, SIG_IGN);
  InitPattern();
  if (!log_path.empty()) {
    g_log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_log_fd < 0) Die("open --log");
  }
  g_hello_body = "hello from " + g_name + "\n";
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                     std::to_string(g_hello_body.size()) + "\r\n\r\n";
  g_hello_head_response = head;
  g_hello_response = head + g_hello_body;

  ListenAddr addr = SplitHostPort(listen);
  std::string bound;
  std::vector<int> fds{MakeListener(addr, &bound)};
  // Port 0: the first socket picked the port; the rest join its SO_REUSEPORT group.
  addr = SplitHostPort(bound);
  for (int t = 1; t < threads; ++t) {
    std::string ignored;
    fds.push_back(MakeListener(addr, &ignored));
  }
  printf("listening on %s\n", bound.c_str());
  fflush(stdout);

  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back([fd = fds[t]] { Worker(fd).Run(); });
  Worker(fds[0]).Run();
  return 0;
}
