#include "controlplane/health/probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace zproxy::health {
namespace {

// Enough for any sane status line; a peer that sends more without a CRLF is not HTTP.
constexpr size_t kMaxStatusLine = 1024;

std::string ErrnoText(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

int ParseStatusLine(std::string_view line) {
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return -1;
  if (line[7] < '0' || line[7] > '9') return -1;
  int status = 0;
  for (int i = 9; i < 12; i++) {
    if (line[i] < '0' || line[i] > '9') return -1;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return -1;
  return status;
}

bool StatusExpected(int status, const std::vector<uint32_t>& expected) {
  if (expected.empty()) return status >= 200 && status <= 399;
  for (uint32_t s : expected) {
    if (static_cast<int>(s) == status) return true;
  }
  return false;
}

uint32_t Probe::wanted_events() const {
  switch (state_) {
    case State::kConnecting:
      return EPOLLOUT;
    case State::kHandshaking:
      return tls_want_;
    case State::kSending:
      return ssl_ != nullptr ? tls_want_ : EPOLLOUT;
    case State::kReading:
      return (ssl_ != nullptr ? tls_want_ : EPOLLIN) | EPOLLRDHUP;
    case State::kGrpcCall:
      return EPOLLIN;
    default:
      return 0;
  }
}

Probe::~Probe() { FreeSsl(); }

void Probe::FreeSsl() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  ssl_ = nullptr;
}

void Probe::Reset() {
  FreeSsl();
  grpc_.Reset();
  fd_.reset();
  state_ = State::kIdle;
}

bool Probe::Finish(bool ok, std::string reason) {
  FreeSsl();
  grpc_.Reset();
  fd_.reset();
  state_ = State::kDone;
  ok_ = ok;
  reason_ = std::move(reason);
  return true;
}

void Probe::Fail(std::string reason) {
  if (running()) Finish(false, std::move(reason));
}

bool Probe::Start(const NetAddress& address, const ProbeSpec& spec) {
  Reset();
  spec_ = &spec;
  sent_ = 0;
  response_.clear();
  ok_ = false;
  reason_.clear();
  if ((!spec.http_path.empty() || spec.grpc_channel != nullptr) && !spec.tls_error.empty()) {
    return !Finish(false, "TLS settings: " + spec.tls_error);
  }
  if (spec.grpc_channel != nullptr) {
    std::string error;
    if (!grpc_.Start(address, spec.host, spec.grpc_service, *spec.grpc_channel, &error)) {
      return !Finish(false, error);
    }
    state_ = State::kGrpcCall;
    return true;
  }
  ip_.clear();
  char ip[INET6_ADDRSTRLEN] = {};
  if (address.family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address.sa())->sin_addr, ip,
              sizeof(ip));
  } else if (address.family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address.sa())->sin6_addr, ip,
              sizeof(ip));
  }
  ip_ = ip;
  fd_.reset(socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) return !Finish(false, ErrnoText("socket", errno));
  // The probe closes right after the verdict: RST instead of lingering in TIME_WAIT keeps
  // thousands of checks per minute from filling the ephemeral port range.
  linger lg{1, 0};
  setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  int one = 1;
  setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  state_ = State::kConnecting;
  if (connect(fd_.get(), address.sa(), address.len) == 0) {
    OnConnected();
    return running();
  }
  if (errno == EINPROGRESS) return true;
  return !Finish(false, ErrnoText("connect", errno));
}

bool Probe::OnEvents(uint32_t events) {
  switch (state_) {
    case State::kConnecting: {
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err != 0) return Finish(false, ErrnoText("connect", err));
      if (!(events & EPOLLOUT)) {
        return (events & (EPOLLERR | EPOLLHUP)) ? Finish(false, "connect: connection failed")
                                                : false;
      }
      return OnConnected();
    }
    case State::kHandshaking:
      return Handshake();
    case State::kSending:
      return SendSome();
    case State::kReading:
      return ReadSome();
    case State::kGrpcCall: {
      bool ok = false;
      std::string reason;
      if (!grpc_.Result(&ok, &reason)) return false;
      return Finish(ok, std::move(reason));
    }
    default:
      return true;
  }
}

bool Probe::OnConnected() {
  if (spec_->http_path.empty()) return Finish(true, "tcp connect ok");
  request_ = "GET " + spec_->http_path + " HTTP/1.1\r\nHost: " + spec_->host +
             "\r\nUser-Agent: zproxy-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  if (spec_->tls != nullptr) {
    ssl_ = spec_->tls->NewSsl(fd_.get(), ip_.empty() ? nullptr : ip_.c_str());
    if (ssl_ == nullptr) return Finish(false, "TLS: cannot set up the connection");
    state_ = State::kHandshaking;
    return Handshake();
  }
  state_ = State::kSending;
  return SendSome();
}

bool Probe::WouldBlock(int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ:
      tls_want_ = EPOLLIN;
      return true;
    case SSL_ERROR_WANT_WRITE:
      tls_want_ = EPOLLOUT;
      return true;
    default:
      return false;
  }
}

bool Probe::Handshake() {
  ERR_clear_error();
  errno = 0;
  const int r = SSL_connect(ssl_);
  if (r == 1) {
    state_ = State::kSending;
    return SendSome();
  }
  const int saved_errno = errno;
  if (WouldBlock(r)) return false;
  return Finish(false, TlsHandshakeFailure(ssl_, SSL_get_error(ssl_, r), saved_errno));
}

bool Probe::SendSome() {
  if (ssl_ != nullptr) {
    while (sent_ < request_.size()) {
      ERR_clear_error();
      const int n =
          SSL_write(ssl_, request_.data() + sent_, static_cast<int>(request_.size() - sent_));
      if (n <= 0) {
        if (WouldBlock(n)) return false;
        return Finish(false, "TLS send failed");
      }
      sent_ += static_cast<size_t>(n);
    }
    state_ = State::kReading;
    tls_want_ = EPOLLIN;
    return ReadSome();  // TLS may already hold the response's first record
  }
  while (sent_ < request_.size()) {
    ssize_t n = send(fd_.get(), request_.data() + sent_, request_.size() - sent_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return false;
      return Finish(false, ErrnoText("send", errno));
    }
    sent_ += static_cast<size_t>(n);
  }
  state_ = State::kReading;
  return false;
}

bool Probe::ReadSome() {
  char buf[512];
  for (;;) {
    ssize_t n;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      errno = 0;
      const int r = SSL_read(ssl_, buf, sizeof(buf));
      if (r <= 0) {
        const int saved_errno = errno;
        if (WouldBlock(r)) return false;
        const int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && saved_errno == 0)) {
          return Finish(false, "connection closed before a status line");
        }
        // A server that asks for a client certificate under TLS 1.3 rejects it after the
        // handshake completed on our side: its alert arrives here.
        return Finish(false, TlsHandshakeFailure(ssl_, e, saved_errno));
      }
      n = r;
    } else {
      n = recv(fd_.get(), buf, sizeof(buf), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return false;
        return Finish(false, ErrnoText("recv", errno));
      }
    }
    if (n == 0) return Finish(false, "connection closed before a status line");
    response_.append(buf, static_cast<size_t>(n));
    size_t eol = response_.find("\r\n");
    if (eol == std::string::npos) {
      if (response_.size() > kMaxStatusLine) return Finish(false, "no status line (not HTTP?)");
      continue;
    }
    const int status = ParseStatusLine(std::string_view(response_).substr(0, eol));
    if (status < 0) return Finish(false, "invalid status line");
    const std::string what = "HTTP " + std::to_string(status);
    // The status line decides; the body is not read (Connection: close, RST on close).
    return StatusExpected(status, spec_->expected_statuses)
               ? Finish(true, what)
               : Finish(false, what + " (not an expected status)");
  }
}

}  // namespace zproxy::health
