// The data plane's side of adoption by a new zproxyd (zproxyd died, this data plane kept
// serving, a new zproxyd starts and takes it over instead of starting a second one).
//
// At startup the data plane creates a SOCK_SEQPACKET socketpair and keeps both ends: it
// listens on one (a thread blocked in recvmsg) and names the other in every Hello
// (Hello.adoption_fd). A new zproxyd takes a copy of that end with pidfd_getfd(2) (the
// same privilege it needs for the listen sockets) and sends the health region it writes:
// the pinned BPF map's fd or its memfd fallback, plus the slot table, in the bootstrap wire
// format (common/handoff/handoff.h). The data plane maps it, re-attaches its running
// snapshot to it (ConfigApplier::RebindHealth) and answers one byte: 'R' done, 'N' failed.
// No filesystem socket is involved, so nobody without ptrace rights over the data plane
// can hand it a region.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "dataplane/config_applier.h"

namespace zproxy::dataplane {

class AdoptionChannel {
 public:
  // `applier` must outlive the channel.
  explicit AdoptionChannel(ConfigApplier* applier) : applier_(applier) {}
  ~AdoptionChannel() { Stop(); }
  AdoptionChannel(const AdoptionChannel&) = delete;
  AdoptionChannel& operator=(const AdoptionChannel&) = delete;

  bool Start(std::string* error);
  // Ends the listening thread. Idempotent.
  void Stop();

  // The descriptor a new zproxyd copies (Hello.adoption_fd); -1 before Start.
  int remote_fd() const { return theirs_.get(); }

 private:
  void Loop();
  // One message from a zproxyd: returns the answer byte.
  char Handle(const zproxy::v1::DataplaneBootstrap& message, std::vector<UniqueFd>* fds);

  ConfigApplier* applier_;
  UniqueFd ours_;
  UniqueFd theirs_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace zproxy::dataplane
