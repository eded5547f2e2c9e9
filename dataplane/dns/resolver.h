// Host-name resolution for CONNECT targets without blocking an io_uring worker.
//
// One Resolver per data plane process, owned by main and handed to every worker. Its single
// thread runs getaddrinfo (so /etc/hosts, resolv.conf and nsswitch apply as for any other
// program) for requests the workers queue; each answer goes back to the asking worker's
// Inbox and wakes it through its eventfd. Workers first look in the process-wide cache:
// getaddrinfo gives no TTL, so an answer is reused for the asking listener's dns_cache_ms
// (a failure for its dns_negative_cache_ms). Everything is bounded: the queue (a full
// queue is refused at once: the worker answers 503), the cache (oldest entries go), the
// addresses kept per name.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace zproxy::dataplane::dns {

// Addresses kept per name: enough for dual-stack names with a few of each; the rest of a
// long answer is dropped (a CONNECT tries them in order until one connects).
constexpr uint32_t kMaxAddrs = 8;

struct Addr {
  uint8_t family = 0;  // AF_INET (bytes[0..3]) or AF_INET6
  uint8_t bytes[16] = {};
};

struct Addrs {
  Addr a[kMaxAddrs];
  uint8_t count = 0;
  int error = 0;  // 0, or the getaddrinfo error (EAI_*): count is 0 then
};

// Why a lookup failed, for the 502 body ("Name or service not known", ...).
const char* ErrorText(int error);

struct Answer {
  uint64_t token = 0;  // the worker's, from Resolve()
  Addrs addrs;
};

// A worker's mailbox. The resolver thread appends answers and writes the worker's eventfd;
// the worker takes them on its own thread. Closed when the worker goes away, after which
// answers are dropped (the eventfd may be closed).
class Inbox {
 public:
  explicit Inbox(int wake_fd) : wake_fd_(wake_fd) {}
  // Worker thread: swaps the pending answers into *out (cleared first). With *out kept
  // between calls, steady state allocates nothing.
  void Take(std::vector<Answer>* out);
  void Close();
  void Post(const Answer& a);  // resolver thread

 private:
  std::mutex mu_;
  std::vector<Answer> answers_;
  int wake_fd_;
  bool closed_ = false;
};

struct ResolverStats {
  std::atomic<uint64_t> lookups_ok{0};      // getaddrinfo calls that gave addresses
  std::atomic<uint64_t> lookups_failed{0};  // getaddrinfo calls that did not
  std::atomic<uint64_t> coalesced{0};       // queued requests answered by an earlier lookup
  std::atomic<uint64_t> expired{0};         // queued past their deadline: skipped unresolved
  std::atomic<uint64_t> queue_depth{0};
  std::atomic<uint64_t> cache_entries{0};
};

class Resolver {
 public:
  // Resolves `name` (NUL-terminated) into *out; returns 0 or an EAI_* error.
  using LookupFn = std::function<int(const char* name, Addrs* out)>;
  struct Options {
    uint32_t max_pending = 256;  // queued, not yet resolved
    uint32_t max_cache = 4096;   // names cached (answers and failures)
    LookupFn lookup;             // default: getaddrinfo (tests inject a slow/fake one)
  };

  explicit Resolver(Options options);
  Resolver() : Resolver(Options{}) {}
  // Does not wait for a lookup in progress (getaddrinfo may take the resolver's full
  // timeouts): the thread finishes it on its own and drops the answer.
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Starts the thread. The data plane calls it after the privilege drop: the thread
  // inherits the dropped credentials (getaddrinfo reads only world-readable files).
  void Start();

  enum class Result { kHit, kQueued, kQueueFull };
  // Worker side, no allocation, never waits for a lookup. A cached answer younger than
  // cache_ms (a failure younger than negative_cache_ms) fills *out: kHit (out->error says
  // which). Otherwise the name is queued; its answer is posted to `inbox` with `token`,
  // unless timeout_ms passes first (then nothing is posted: the worker has given up).
  Result Resolve(std::string_view name, uint32_t cache_ms, uint32_t negative_cache_ms,
                 uint32_t timeout_ms, const std::shared_ptr<Inbox>& inbox, uint64_t token,
                 Addrs* out);

  const ResolverStats& stats() const { return core_->stats; }

  // Default lookup: getaddrinfo(name, AF_UNSPEC, SOCK_STREAM), addresses in its order.
  static int GetAddrInfo(const char* name, Addrs* out);

 private:
  struct Request {
    char name[254];
    uint8_t len = 0;
    uint32_t cache_ms = 0, negative_cache_ms = 0;
    uint64_t deadline_ms = 0;
    std::shared_ptr<Inbox> inbox;
    uint64_t token = 0;
  };
  struct Entry {
    uint64_t at_ms = 0;
    Addrs addrs;
  };
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  // Shared with the thread, which may outlive the Resolver (see the destructor).
  struct Core {
    Options options;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Request> ring;  // fixed capacity max_pending
    uint32_t head = 0, count = 0;
    std::unordered_map<std::string, Entry, NameHash, std::equal_to<>> cache;
    uint32_t max_age_ms = 0;  // longest cache_ms / negative_cache_ms asked for
    bool stop = false;
    ResolverStats stats;
  };
  static void Run(std::shared_ptr<Core> core);
  static bool Fresh(const Entry& e, uint64_t now, uint32_t cache_ms, uint32_t negative_cache_ms);
  static void Insert(Core& core, std::string_view name, const Addrs& addrs, uint64_t now);

  std::shared_ptr<Core> core_;
  std::thread thread_;
};

// Monotonic milliseconds (the cache's and the queue's clock).
uint64_t MonotonicMs();

}  // namespace zproxy::dataplane::dns
