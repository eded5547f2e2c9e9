#include "controlplane/bpf/inbound.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "bpf/zproxy_consts.h"
#include "common/unique_fd.h"

namespace zproxy::controlplane::bpf {

namespace {

// The errno of a failed load or attach, as the operator's missing piece.
std::string Why(int err) {
  std::string text = strerror(err);
  if (err == EPERM || err == EACCES) return text + " (needs CAP_BPF and CAP_NET_ADMIN)";
  if (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == E2BIG) {
    return text + " (kernel without sk_lookup programs: Linux 5.9+)";
  }
  return text;
}

}  // namespace

bool InboundInterception::Attach(const zproxy::v1::Sidecar& config,
                                 const std::vector<int>& listener_fds, std::string* error) {
  // Never pinned: the SOCKMAP holds sockets only this zproxyd owns, so a restart loads anew.
  if (!skel_.OpenAndLoad("", false, "sk_lookup", error)) {
    *error += " (needs CAP_BPF and CAP_NET_ADMIN, and a kernel with sk_lookup: Linux 5.9+)";
    return false;
  }
  auto fail = [this, error](const std::string& what) {
    *error = what + ": " + Why(errno);
    Detach();
    return false;
  };
  uint8_t one = 1;
  for (uint32_t p : config.inbound_ports()) {
    uint16_t port = static_cast<uint16_t>(p);
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zproxy_in_ports), &port, &one, BPF_ANY)) {
      return fail("fill zproxy_in_ports");
    }
  }
  // The first socket of each family: the kernel selects within its reuseport group.
  bool have[2] = {false, false};
  for (int fd : listener_fds) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      return fail("getsockname of the inbound listener");
    }
    uint32_t key = ss.ss_family == AF_INET ? ZPROXY_INBOUND_SOCK_V4 : ZPROXY_INBOUND_SOCK_V6;
    if (have[key]) continue;
    uint64_t value = static_cast<uint64_t>(fd);
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zproxy_in_socks), &key, &value, BPF_ANY)) {
      return fail("put the inbound listener in zproxy_in_socks");
    }
    have[key] = true;
  }
  if (!have[0] && !have[1]) {
    errno = ENOENT;
    return fail("the inbound listener has no socket");
  }
  UniqueFd netns(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!netns.valid()) return fail("open /proc/self/ns/net");
  bpf_link* link = bpf_program__attach_netns(skel_->progs.zproxy_inbound, netns.get());
  if (long err = libbpf_get_error(link); err != 0) {
    errno = static_cast<int>(-err);
    return fail("attach sk_lookup to the network namespace");
  }
  link_ = link;
  return true;
}

void InboundInterception::Detach() {
  if (link_ != nullptr) bpf_link__destroy(link_);
  link_ = nullptr;
  skel_.Reset();
}

}  // namespace zproxy::controlplane::bpf
