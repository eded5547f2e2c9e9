// Upstream connections of one cluster, per worker: which of them can take another stream.
//
// A connection carries up to max_streams streams at once: 1 for HTTP/1 (one request at a
// time), the peer's SETTINGS_MAX_CONCURRENT_STREAMS for HTTP/2. Acquire hands out a
// connection with room and counts the stream; Release gives it back. Connections with
// room are on their endpoint's list, most recently used first (the one least likely to
// have been closed by the upstream's own idle timeout); full ones are off it, so Acquire
// is O(1). Idle connections (no stream) are bounded per endpoint by the caller's limit
// (the cluster's pool_size). Nothing is allocated after Init: the links live in the
// connections themselves (PoolLink), reached through LinkOf, as the timer lists do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace zproxy::upstream {

inline constexpr uint32_t kNoConn = 0xffffffffu;

// All zero (value-initialized) is the state of a connection the pool does not know yet.
// Trivial on purpose: it shares a union with the client address in a connection slot.
struct PoolLink {
  uint32_t prev, next;   // valid while listed
  uint16_t streams;      // streams it carries now
  uint16_t max_streams;  // how many it may carry (set by Opened)
  bool listed;           // on its endpoint's list: it has room
};

enum class Released : uint8_t {
  kIdle,   // no stream left; kept for the next request (arm its idle timeout)
  kBusy,   // other streams still on it; kept
  kClose,  // the caller closes it: not reusable, or enough idle connections already
};

// LinkOf: (uint32_t conn) -> PoolLink&.
template <typename LinkOf>
class ConnectionPool {
 public:
  void Init(LinkOf link_of, size_t endpoints) {
    link_of_ = link_of;
    heads_.assign(endpoints, Head{});
  }

  // A connection to `endpoint` with room for one more stream (the stream is counted), or
  // kNoConn when there is none: then the caller opens one and calls Opened.
  uint32_t Acquire(uint32_t endpoint) {
    Head& h = heads_[endpoint];
    uint32_t conn = h.first;
    if (conn == kNoConn) return kNoConn;
    PoolLink& l = link_of_(conn);
    if (l.streams == 0) h.idle--;
    l.streams++;
    if (l.streams >= l.max_streams) Unlink(h, conn);
    return conn;
  }

  // A connection just opened to `endpoint`, carrying the stream it was opened for.
  void Opened(uint32_t conn, uint32_t endpoint, uint16_t max_streams) {
    PoolLink& l = link_of_(conn);
    l = PoolLink{};
    l.streams = 1;
    l.max_streams = max_streams == 0 ? 1 : max_streams;
    if (l.streams < l.max_streams) PushFront(heads_[endpoint], conn);
  }

  // The peer now takes `max_streams` at once (HTTP/2 SETTINGS): listed or not accordingly.
  void SetMaxStreams(uint32_t conn, uint32_t endpoint, uint16_t max_streams) {
    PoolLink& l = link_of_(conn);
    l.max_streams = max_streams == 0 ? 1 : max_streams;
    Head& h = heads_[endpoint];
    if (l.listed && l.streams >= l.max_streams) Unlink(h, conn);
    if (!l.listed && l.streams < l.max_streams) PushFront(h, conn);
  }

  // One of conn's streams ended. keep: the connection may carry more (its framing is
  // intact and nothing is pending on it). max_idle: idle connections allowed per endpoint.
  Released Release(uint32_t conn, uint32_t endpoint, bool keep, uint32_t max_idle) {
    PoolLink& l = link_of_(conn);
    Head& h = heads_[endpoint];
    if (l.streams > 0) l.streams--;
    if (!keep || (l.streams == 0 && h.idle >= max_idle)) {
      // Not counted as idle (it carried a stream until now): just off the list.
      if (l.listed) Unlink(h, conn);
      l.streams = 0;
      l.max_streams = 0;
      return Released::kClose;
    }
    if (l.streams == 0) h.idle++;
    // Most recently used first: to the front, whether it was listed already or not.
    if (l.listed) Unlink(h, conn);
    PushFront(h, conn);
    return l.streams == 0 ? Released::kIdle : Released::kBusy;
  }

  // The connection is closing: off the lists, never handed out again.
  void Remove(uint32_t conn, uint32_t endpoint) {
    PoolLink& l = link_of_(conn);
    Head& h = heads_[endpoint];
    if (l.listed) {
      if (l.streams == 0) h.idle--;
      Unlink(h, conn);
    }
    l.streams = 0;
    l.max_streams = 0;
  }

  // An idle connection of `endpoint` (kNoConn if none), e.g. to close them all.
  uint32_t AnyIdle(uint32_t endpoint) const {
    for (uint32_t c = heads_[endpoint].first; c != kNoConn; c = link_of_(c).next) {
      if (link_of_(c).streams == 0) return c;
    }
    return kNoConn;
  }
  uint32_t idle(uint32_t endpoint) const { return heads_[endpoint].idle; }
  size_t endpoints() const { return heads_.size(); }

 private:
  struct Head {
    uint32_t first = kNoConn;
    uint32_t idle = 0;  // listed connections without a stream
  };

  void PushFront(Head& h, uint32_t conn) {
    PoolLink& l = link_of_(conn);
    l.prev = kNoConn;
    l.next = h.first;
    if (h.first != kNoConn) link_of_(h.first).prev = conn;
    h.first = conn;
    l.listed = true;
  }
  void Unlink(Head& h, uint32_t conn) {
    PoolLink& l = link_of_(conn);
    if (l.prev != kNoConn)
      link_of_(l.prev).next = l.next;
    else
      h.first = l.next;
    if (l.next != kNoConn) link_of_(l.next).prev = l.prev;
    l.prev = l.next = kNoConn;
    l.listed = false;
  }

  LinkOf link_of_{};
  std::vector<Head> heads_;
};

}  // namespace zproxy::upstream
