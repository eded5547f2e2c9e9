// The watcher's decisions, as pure functions (unit tested): what to do after reading the
// config key, and when a watch response means "read it again".
//
// Every (re)connect reads the key first, then watches from the revision that read saw + 1:
// no event is missed between the read and the watch, and none is delivered twice. A
// compaction (the watch's start revision is gone) or a cancelled watch ends the watch; the
// key is read again and the watch restarts from the new read.
#pragma once

#include <cstdint>

namespace zproxy::fleet {

struct ReadPlan {
  bool apply = false;            // the key holds a revision this node has not applied
  bool store_went_back = false;  // ...older than the applied one: etcd was restored from an
                                 // older snapshot; the store is followed
  int64_t watch_from = 0;        // start_revision of the watch that follows
};

// applied: the revision this node serves (0: none); found/mod_revision: the key as read;
// header_revision: the store's revision at the read.
ReadPlan PlanAfterRead(int64_t applied, bool found, int64_t mod_revision, int64_t header_revision);

// A watch response that ends the watch: compacted (compact_revision > 0) or cancelled.
bool WatchNeedsReread(int64_t compact_revision, bool canceled);

}  // namespace zproxy::fleet
