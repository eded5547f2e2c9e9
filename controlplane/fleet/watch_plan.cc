#include "controlplane/fleet/watch_plan.h"

namespace zproxy::fleet {

ReadPlan PlanAfterRead(int64_t applied, bool found, int64_t mod_revision, int64_t header_revision) {
  ReadPlan p;
  p.watch_from = header_revision + 1;
  if (!found) return p;
  p.apply = mod_revision != applied;
  p.store_went_back = mod_revision < applied;
  return p;
}

bool WatchNeedsReread(int64_t compact_revision, bool canceled) {
  return compact_revision > 0 || canceled;
}

}  // namespace zproxy::fleet
