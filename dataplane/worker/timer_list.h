// Deadline lists for connection timeouts. Every list has one fixed timeout (a
// listener's idle timeout, a cluster's connect timeout, ...), so appending at the tail
// keeps it sorted by deadline and expiry only ever looks at the head: O(1) per event,
// no heap, no allocation. A connection is in at most one list at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/worker/slab.h"

namespace zproxy::dataplane {

struct TimerLink {
  uint32_t prev = kNil;
  uint32_t next = kNil;
  uint32_t deadline_ms = 0;
  uint16_t list = 0xffff;  // 0xffff = not linked
};

struct TimerListHead {
  uint32_t head = kNil;
  uint32_t tail = kNil;
  uint32_t timeout_ms = 0;
};

// Links are stored inside the owner objects; `LinkOf(idx)` maps an index to its link.
template <typename LinkOf>
class TimerLists {
 public:
  explicit TimerLists(LinkOf link_of) : link_of_(link_of) {}

  uint16_t AddList(uint32_t timeout_ms) {
    lists_.push_back(TimerListHead{kNil, kNil, timeout_ms});
    return static_cast<uint16_t>(lists_.size() - 1);
  }

  // The list for `timeout_ms`, shared by everything with that timeout (it stays sorted:
  // same timeout, appended in time order). Config changes reuse lists instead of
  // growing the set.
  uint16_t ListFor(uint32_t timeout_ms) {
    for (uint16_t i = 0; i < lists_.size(); i++) {
      if (lists_[i].timeout_ms == timeout_ms) return i;
    }
    return AddList(timeout_ms);
  }

  void Arm(uint16_t list, uint32_t idx, uint32_t now_ms) {
    Disarm(idx);
    TimerListHead& l = lists_[list];
    if (l.timeout_ms == 0) return;  // 0 = no timeout
    TimerLink& t = link_of_(idx);
    t.list = list;
    t.deadline_ms = now_ms + l.timeout_ms;
    t.prev = l.tail;
    t.next = kNil;
    if (l.tail != kNil) link_of_(l.tail).next = idx;
    l.tail = idx;
    if (l.head == kNil) l.head = idx;
  }

  // Arms with an earlier deadline than Arm would give (a CONNECT's later attempts share
  // the first attempt's deadline). Walks back from the tail to keep the list sorted: only
  // entries armed after that first attempt are passed.
  void ArmAt(uint16_t list, uint32_t idx, uint32_t deadline_ms) {
    Disarm(idx);
    TimerListHead& l = lists_[list];
    if (l.timeout_ms == 0) return;
    TimerLink& t = link_of_(idx);
    t.list = list;
    t.deadline_ms = deadline_ms;
    uint32_t after = l.tail;  // insert behind `after` (kNil = at the head)
    while (after != kNil && static_cast<int32_t>(link_of_(after).deadline_ms - deadline_ms) > 0) {
      after = link_of_(after).prev;
    }
    t.prev = after;
    t.next = after == kNil ? l.head : link_of_(after).next;
    if (t.prev != kNil)
      link_of_(t.prev).next = idx;
    else
      l.head = idx;
    if (t.next != kNil)
      link_of_(t.next).prev = idx;
    else
      l.tail = idx;
  }

  void Disarm(uint32_t idx) {
    TimerLink& t = link_of_(idx);
    if (t.list == 0xffff) return;
    TimerListHead& l = lists_[t.list];
    if (t.prev != kNil)
      link_of_(t.prev).next = t.next;
    else
      l.head = t.next;
    if (t.next != kNil)
      link_of_(t.next).prev = t.prev;
    else
      l.tail = t.prev;
    t = TimerLink{};
  }

  // Calls fn(idx, list) for every expired entry (after unlinking it).
  template <typename Fn>
  void Expire(uint32_t now_ms, Fn&& fn) {
    for (uint16_t li = 0; li < lists_.size(); li++) {
      while (lists_[li].head != kNil) {
        uint32_t idx = lists_[li].head;
        if (static_cast<int32_t>(link_of_(idx).deadline_ms - now_ms) > 0) break;
        Disarm(idx);
        fn(idx, li);
      }
    }
  }

 private:
  LinkOf link_of_;
  std::vector<TimerListHead> lists_;
};

}  // namespace zproxy::dataplane
