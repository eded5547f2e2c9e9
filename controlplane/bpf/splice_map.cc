#include "controlplane/bpf/splice_map.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "controlplane/bpf/bpffs.h"

namespace zproxy::controlplane::bpf {

bool SpliceMap::Load(const BpfOptions& options, std::string* error) {
  if (!options.pin_dir.empty() && !EnsureBpffsDir(options.pin_dir, error)) return false;
  if (!skel_.OpenAndLoad(options.pin_dir, options.keep_pins, "sockmap", error)) return false;
  // The verdict program attaches to the map (not to sockets), before any socket is added.
  // A reused pinned SOCKHASH may still carry the attachment of the previous run's
  // program: detach it (by fd, ignoring "not attached"), then attach ours.
  bpf_prog_detach2(prog_fd(), pairs_fd(), BPF_SK_SKB_STREAM_VERDICT);
  if (bpf_prog_attach(prog_fd(), pairs_fd(), BPF_SK_SKB_STREAM_VERDICT, 0) != 0) {
    *error = std::string("attach zproxy_splice to zproxy_splice_pairs: ") + std::strerror(errno);
    skel_.Reset();
    return false;
  }
  return skel_.CommitPins(error);
}

}  // namespace zproxy::controlplane::bpf
