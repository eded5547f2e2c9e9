// Snapshot holds: an exchange points at its route (RouteEntry: policy, retries, response
// header changes), which lives in the snapshot it was routed with. A config change swaps
// the worker's snapshot at any time, so every exchange takes a hold on its snapshot and
// the worker keeps a replaced snapshot alive until its last exchange ends. Holds are
// slots, reused once free, so their number is bounded by the snapshots that still have
// exchanges in flight (usually one or two).
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

uint16_t Worker::HoldSnapshot() {
  snap_holds_[current_hold_].exchanges++;
  return current_hold_;
}

void Worker::ReleaseSnapshot(uint16_t hold) {
  SnapshotHold& h = snap_holds_[hold];
  if (--h.exchanges == 0 && hold != current_hold_) h.snap.reset();
}

uint16_t Worker::NewSnapshotHold(std::shared_ptr<const Snapshot> snap) {
  SnapshotHold& previous = snap_holds_[current_hold_];
  if (previous.exchanges == 0) previous.snap.reset();
  for (size_t i = 0; i < snap_holds_.size(); ++i) {
    if (snap_holds_[i].snap == nullptr) {
      snap_holds_[i] = SnapshotHold{std::move(snap), 0};
      return static_cast<uint16_t>(i);
    }
  }
  snap_holds_.push_back(SnapshotHold{std::move(snap), 0});
  return static_cast<uint16_t>(snap_holds_.size() - 1);
}

}  // namespace zproxy::dataplane
