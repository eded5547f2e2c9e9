#include "controlplane/dns/ares_lookup.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>

namespace zproxy::dns {

namespace {

struct Pending {
  AresLookup* self;
  size_t* pending;
  AresLookup::Done done;
};

}  // namespace

std::string AresError(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
      return "NXDOMAIN";
    case ARES_ENODATA:
      return "no records";
    case ARES_ETIMEOUT:
      return "timeout (no answer from the DNS server)";
    case ARES_ECONNREFUSED:
      return "DNS server refused (connection refused)";
    case ARES_ESERVFAIL:
      return "SERVFAIL";
    case ARES_EREFUSED:
      return "REFUSED";
    default:
      return ares_strerror(status);
  }
}

std::unique_ptr<AresLookup> AresLookup::Create(const std::vector<std::string>& resolvers,
                                               uint32_t timeout_ms, std::string* error) {
  // No-op on Linux beyond a reference count; called before the channel as documented.
  int rc = ares_library_init(ARES_LIB_INIT_ALL);
  if (rc != ARES_SUCCESS) {
    *error = std::string("c-ares: ") + ares_strerror(rc);
    return nullptr;
  }
  ares_options opts{};
  opts.timeout = static_cast<int>(std::max<uint32_t>(timeout_ms / 2, 100));
  opts.tries = 2;
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  std::unique_ptr<AresLookup> self(new AresLookup());
  ares_channel ch = nullptr;
  rc = ares_init_options(&ch, &opts, mask);
  if (rc != ARES_SUCCESS) {
    ares_library_cleanup();
    *error = std::string("c-ares: cannot start a resolver: ") + ares_strerror(rc);
    return nullptr;
  }
  self->channel_ = ch;
  if (!resolvers.empty()) {
    std::string csv;
    for (const std::string& r : resolvers) csv += (csv.empty() ? "" : ",") + r;
    rc = ares_set_servers_ports_csv(ch, csv.c_str());
    if (rc != ARES_SUCCESS) {
      *error = "dns.resolvers \"" + csv + "\": " + ares_strerror(rc);
      return nullptr;
    }
  }
  return self;
}

AresLookup::~AresLookup() {
  if (channel_ != nullptr) {
    ares_destroy(channel_);  // pending callbacks run with ARES_EDESTRUCTION
    ares_library_cleanup();
  }
}

void AresLookup::Start(const std::string& host, Family family, Done done) {
  ares_addrinfo_hints hints{};
  hints.ai_family = family == Family::kV4 ? AF_INET : family == Family::kV6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No RFC 6724 sorting (it connects a UDP socket per address): the order is ours to set.
  hints.ai_flags = ARES_AI_NOSORT;
  pending_++;
  auto* p = new Pending{this, &pending_, std::move(done)};
  ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, &AresLookup::OnAnswer, p);
}

void AresLookup::OnAnswer(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(arg));
  (*p->pending)--;
  LookupOutcome o;
  if (status == ARES_SUCCESS && result != nullptr) {
    o.ok = true;
    o.ttl_s = UINT32_MAX;
    for (ares_addrinfo_node* n = result->nodes; n != nullptr; n = n->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* a = nullptr;
      if (n->ai_family == AF_INET) {
        a = &reinterpret_cast<const sockaddr_in*>(n->ai_addr)->sin_addr;
      } else if (n->ai_family == AF_INET6) {
        a = &reinterpret_cast<const sockaddr_in6*>(n->ai_addr)->sin6_addr;
      }
      if (a == nullptr || inet_ntop(n->ai_family, a, text, sizeof(text)) == nullptr) continue;
      o.ips.emplace_back(text);
      o.ttl_s = std::min(o.ttl_s, static_cast<uint32_t>(std::max(n->ai_ttl, 0)));
    }
    if (o.ips.empty()) o.ttl_s = 0;
  } else {
    o.error = AresError(status);
  }
  if (result != nullptr) ares_freeaddrinfo(result);
  if (status != ARES_EDESTRUCTION) p->done(o);
}

void AresLookup::Run(int max_wait_ms, int wake_fd) {
  ares_socket_t socks[ARES_GETSOCK_MAXNUM];
  const int bits = ares_getsock(channel_, socks, ARES_GETSOCK_MAXNUM);
  pollfd fds[ARES_GETSOCK_MAXNUM + 1];
  int n = 0;
  for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
    short ev = 0;
    if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
    if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
    if (ev == 0) continue;
    fds[n++] = pollfd{socks[i], ev, 0};
  }
  const int ares_socks = n;
  if (wake_fd >= 0) fds[n++] = pollfd{wake_fd, POLLIN, 0};
  int wait = max_wait_ms;
  if (pending_ > 0) {
    timeval max{max_wait_ms / 1000, (max_wait_ms % 1000) * 1000};
    timeval tv{};
    timeval* t = ares_timeout(channel_, &max, &tv);
    wait = static_cast<int>(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
  }
  poll(fds, static_cast<nfds_t>(n), wait);
  for (int i = 0; i < ares_socks; ++i) {
    ares_socket_t r = (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
    ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
    if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD) ares_process_fd(channel_, r, w);
  }
  // Timeouts and retransmissions.
  if (pending_ > 0) ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

}  // namespace zproxy::dns
