#include "dataplane/dns/resolver.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

namespace zproxy::dataplane::dns {

uint64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

const char* ErrorText(int error) {
  if (error == EAI_NONAME || error == EAI_NODATA) return "no such host";
  if (error == EAI_AGAIN) return "temporary DNS failure";
  return gai_strerror(error);
}

void Inbox::Take(std::vector<Answer>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(mu_);
  out->swap(answers_);
}

void Inbox::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
}

void Inbox::Post(const Answer& a) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return;
  answers_.push_back(a);
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;  // an eventfd write only fails on counter overflow, which still wakes
}

int Resolver::GetAddrInfo(const char* name, Addrs* out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // No AI_ADDRCONFIG: with only loopback configured (containers) it hides "localhost".
  addrinfo* res = nullptr;
  int rc = getaddrinfo(name, nullptr, &hints, &res);
  *out = Addrs();
  if (rc != 0) {
    out->error = rc;
    return rc;
  }
  for (addrinfo* ai = res; ai != nullptr && out->count < kMaxAddrs; ai = ai->ai_next) {
    Addr a;
    if (ai->ai_family == AF_INET) {
      a.family = AF_INET;
      memcpy(a.bytes, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
    } else if (ai->ai_family == AF_INET6) {
      a.family = AF_INET6;
      memcpy(a.bytes, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    bool dup = false;
    for (uint8_t i = 0; i < out->count; i++) {
      dup |= out->a[i].family == a.family && memcmp(out->a[i].bytes, a.bytes, 16) == 0;
    }
    if (!dup) out->a[out->count++] = a;
  }
  freeaddrinfo(res);
  if (out->count == 0) out->error = EAI_NODATA;
  return out->error;
}

Resolver::Resolver(Options options) : core_(std::make_shared<Core>()) {
  if (options.max_pending == 0) options.max_pending = 1;
  if (!options.lookup) options.lookup = &Resolver::GetAddrInfo;
  core_->options = std::move(options);
  core_->ring.resize(core_->options.max_pending);
}

Resolver::~Resolver() {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->stop = true;
  }
  core_->cv.notify_all();
  if (thread_.joinable()) thread_.detach();  // Core stays alive with the thread
}

void Resolver::Start() {
  thread_ = std::thread([core = core_] { Run(core); });
}

bool Resolver::Fresh(const Entry& e, uint64_t now, uint32_t cache_ms, uint32_t negative_cache_ms) {
  return now - e.at_ms < (e.addrs.error == 0 ? cache_ms : negative_cache_ms);
}

Resolver::Result Resolver::Resolve(std::string_view name, uint32_t cache_ms,
                                   uint32_t negative_cache_ms, uint32_t timeout_ms,
                                   const std::shared_ptr<Inbox>& inbox, uint64_t token,
                                   Addrs* out) {
  Core& c = *core_;
  uint64_t now = MonotonicMs();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.cache.find(name);
    if (it != c.cache.end() && Fresh(it->second, now, cache_ms, negative_cache_ms)) {
      *out = it->second.addrs;
      return Result::kHit;
    }
    if (c.count == c.ring.size() || name.size() >= sizeof(Request::name)) {
      return Result::kQueueFull;
    }
    Request& r = c.ring[(c.head + c.count) % c.ring.size()];
    memcpy(r.name, name.data(), name.size());
    r.name[name.size()] = '\0';
    r.len = static_cast<uint8_t>(name.size());
    r.cache_ms = cache_ms;
    r.negative_cache_ms = negative_cache_ms;
    r.deadline_ms = now + timeout_ms;
    r.inbox = inbox;
    r.token = token;
    c.count++;
    c.max_age_ms = std::max({c.max_age_ms, cache_ms, negative_cache_ms});
    c.stats.queue_depth.store(c.count, std::memory_order_relaxed);
  }
  c.cv.notify_one();
  return Result::kQueued;
}

void Resolver::Insert(Core& c, std::string_view name, const Addrs& addrs, uint64_t now) {
  // Called with c.mu held. Full: drop what no listener would still use, else the oldest.
  if (c.cache.size() >= c.options.max_cache && c.cache.find(name) == c.cache.end()) {
    std::erase_if(c.cache, [&](const auto& kv) { return now - kv.second.at_ms >= c.max_age_ms; });
    if (c.cache.size() >= c.options.max_cache) {
      auto oldest = c.cache.begin();
      for (auto it = c.cache.begin(); it != c.cache.end(); ++it) {
        if (it->second.at_ms < oldest->second.at_ms) oldest = it;
      }
      c.cache.erase(oldest);
    }
  }
  auto it = c.cache.find(name);
  if (it == c.cache.end()) it = c.cache.emplace(std::string(name), Entry{}).first;
  it->second.at_ms = now;
  it->second.addrs = addrs;
  c.stats.cache_entries.store(c.cache.size(), std::memory_order_relaxed);
}

void Resolver::Run(std::shared_ptr<Core> core) {
  Core& c = *core;
  std::unique_lock<std::mutex> lock(c.mu);
  while (true) {
    c.cv.wait(lock, [&] { return c.stop || c.count > 0; });
    if (c.stop) return;
    Request r = std::move(c.ring[c.head]);
    c.ring[c.head].inbox.reset();
    c.head = (c.head + 1) % static_cast<uint32_t>(c.ring.size());
    c.count--;
    c.stats.queue_depth.store(c.count, std::memory_order_relaxed);
    std::string_view name(r.name, r.len);
    uint64_t now = MonotonicMs();
    Answer answer;
    answer.token = r.token;
    // An earlier request for the same name may have filled the cache meanwhile.
    auto it = c.cache.find(name);
    if (it != c.cache.end() && Fresh(it->second, now, r.cache_ms, r.negative_cache_ms)) {
      answer.addrs = it->second.addrs;
      c.stats.coalesced.fetch_add(1, std::memory_order_relaxed);
      lock.unlock();
      r.inbox->Post(answer);
      lock.lock();
      continue;
    }
    if (now >= r.deadline_ms) {
      // The worker has answered 504 already; resolving now would only load the DNS.
      c.stats.expired.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    lock.unlock();
    int rc = c.options.lookup(r.name, &answer.addrs);
    if (rc != 0 && answer.addrs.error == 0) answer.addrs.error = rc;
    if (rc == 0 && answer.addrs.count == 0) answer.addrs.error = EAI_NODATA;
    (answer.addrs.error == 0 ? c.stats.lookups_ok : c.stats.lookups_failed)
        .fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    // Cached before it is posted: a worker asking again right after the answer hits.
    Insert(c, name, answer.addrs, MonotonicMs());
    r.inbox->Post(answer);
  }
}

}  // namespace zproxy::dataplane::dns
