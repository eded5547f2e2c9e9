// Asynchronous A/AAAA lookups with c-ares (getaddrinfo reports no TTL). One channel, used
// by one thread (Discovery's): Start() queues lookups, Run() waits on c-ares' sockets and
// calls each lookup's `done` from there. /etc/hosts answers first (TTL 0), then DNS:
// `resolvers` when given, else /etc/resolv.conf.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controlplane/dns/name_table.h"

struct ares_channeldata;
struct ares_addrinfo;

namespace zproxy::dns {

class AresLookup {
 public:
  using Done = std::function<void(const LookupOutcome&)>;

  // `resolvers`: "ip" / "ip:port" / "[v6]:port" entries (empty = resolv.conf);
  // `timeout_ms` bounds one lookup (two tries). nullptr with *error when c-ares cannot
  // start or a resolver does not parse.
  static std::unique_ptr<AresLookup> Create(const std::vector<std::string>& resolvers,
                                            uint32_t timeout_ms, std::string* error);
  ~AresLookup();

  void Start(const std::string& host, Family family, Done done);
  // Waits for DNS traffic (or for `wake_fd` to become readable; -1 = none) at most
  // `max_wait_ms`, then lets c-ares handle what arrived and what timed out.
  void Run(int max_wait_ms, int wake_fd);
  size_t pending() const { return pending_; }

 private:
  AresLookup() = default;
  static void OnAnswer(void* arg, int status, int timeouts, ::ares_addrinfo* result);

  ares_channeldata* channel_ = nullptr;
  size_t pending_ = 0;
};

// c-ares status -> what an operator reads in logs and GetHealth ("NXDOMAIN", "timeout").
std::string AresError(int status);

}  // namespace zproxy::dns
