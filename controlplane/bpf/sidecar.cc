#include "controlplane/bpf/sidecar.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "bpf/zproxy_structs.h"
#include "common/net_address.h"
#include "common/unique_fd.h"
#include "controlplane/bpf/bpffs.h"
#include "controlplane/bpf/paths.h"

namespace zproxy::controlplane::bpf {

namespace {

bool ParseCidr(const std::string& text, int* family, uint32_t addr[4], uint32_t* prefix) {
  size_t slash = text.find('/');
  std::string ip = text.substr(0, slash);
  memset(addr, 0, 16);
  if (inet_pton(AF_INET, ip.c_str(), addr) == 1) {
    *family = AF_INET;
    *prefix = 32;
  } else if (inet_pton(AF_INET6, ip.c_str(), addr) == 1) {
    *family = AF_INET6;
    *prefix = 128;
  } else {
    return false;
  }
  if (slash != std::string::npos) *prefix = static_cast<uint32_t>(atoi(text.c_str() + slash + 1));
  return true;
}

}  // namespace

std::string OwnCgroup() {
  std::ifstream f("/proc/self/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

std::string Cgroup2MountOf(const std::string& dir, std::string* error) {
  std::string real = RealPath(dir);
  if (real.empty()) {
    *error = "sidecar.cgroup " + dir + ": " + strerror(errno);
    return "";
  }
  std::ifstream mounts("/proc/mounts");
  std::string line, best, all;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, mnt, type;
    in >> dev >> mnt >> type;
    if (type != "cgroup2") continue;
    all += (all.empty() ? "" : ", ") + mnt;
    if (PathUnder(real, mnt) && mnt.size() > best.size()) best = mnt;
  }
  if (best.empty()) {
    *error = "sidecar.cgroup " + dir + " is not in a cgroup v2 mount (cgroup2 mounts: " +
             (all.empty() ? std::string("none") : all) + ")";
  }
  return best;
}

SidecarInterception::Outcome SidecarInterception::Attach(const zproxy::v1::Sidecar& config,
                                                         const std::string& listener_address,
                                                         const BpfOptions& options,
                                                         std::string* error) {
  std::string mount = Cgroup2MountOf(config.cgroup(), error);
  if (mount.empty()) return Outcome::kUnavailable;
  std::string real = RealPath(config.cgroup());
  // The root holds every process of the machine (zproxy's too): never.
  if (real == mount) {
    *error = "sidecar.cgroup " + config.cgroup() +
             " is the root of the cgroup2 mount: refusing to intercept every process";
    return Outcome::kRefused;
  }
  std::string own = mount + OwnCgroup();
  if (PathUnder(RealPath(own), real)) {
    *error = "zproxyd runs inside sidecar.cgroup " + config.cgroup() + " (its cgroup: " + own +
             "): its own connections would be intercepted";
    return Outcome::kRefused;
  }
  UniqueFd cg(open(real.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.valid()) {
    *error = "open sidecar.cgroup " + real + ": " + strerror(errno);
    return Outcome::kUnavailable;
  }
  std::string pin_dir = options.pin_dir.empty() ? "" : options.pin_dir + "/sidecar";
  if (!pin_dir.empty() && !EnsureBpffsDir(pin_dir, error)) return Outcome::kUnavailable;
  if (!skel_.OpenAndLoad(pin_dir, options.keep_pins, "sidecar", error)) {
    return Outcome::kUnavailable;
  }
  if (!FillMaps(config, listener_address, error)) {
    Detach();
    return Outcome::kUnavailable;
  }
  bpf_program* progs[] = {skel_->progs.zproxy_connect4, skel_->progs.zproxy_connect6,
                          skel_->progs.zproxy_getpeer4, skel_->progs.zproxy_getpeer6,
                          skel_->progs.zproxy_sidecar_ops};
  for (bpf_program* p : progs) {
    bpf_link* link = bpf_program__attach_cgroup(p, cg.get());
    if (long err = libbpf_get_error(link); err != 0) {
      *error = std::string("attach ") + bpf_program__name(p) + " to " + real + ": " +
               strerror(static_cast<int>(-err));
      Detach();
      return Outcome::kUnavailable;
    }
    links_.push_back(link);
  }
  if (!skel_.CommitPins(error)) {
    Detach();
    return Outcome::kUnavailable;
  }
  cgroup_ = real;
  return Outcome::kAttached;
}

bool SidecarInterception::FillMaps(const zproxy::v1::Sidecar& config,
                                   const std::string& listener_address, std::string* error) {
  NetAddress addr;
  if (!ParseNetAddress(listener_address, &addr, error)) return false;
  zproxy_sidecar_config cfg{};
  if (addr.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(addr.sa());
    // A wildcard listener is reached on loopback.
    cfg.v4_addr =
        v4->sin_addr.s_addr == htonl(INADDR_ANY) ? htonl(INADDR_LOOPBACK) : v4->sin_addr.s_addr;
    cfg.v4_port = v4->sin_port;
  } else {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr.sa());
    bool any = IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr);
    memcpy(cfg.v6_addr, any ? &in6addr_loopback : &v6->sin6_addr, 16);
    cfg.v6_port = v6->sin6_port;
    if (any) {  // [::] is dual-stack: IPv4 connections reach it on 127.0.0.1 too
      cfg.v4_addr = htonl(INADDR_LOOPBACK);
      cfg.v4_port = v6->sin6_port;
    }
  }
  uint32_t zero = 0;
  auto fail = [error](const char* what) {
    *error = std::string("fill ") + what + ": " + strerror(errno);
    return false;
  };
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zproxy_sidecar_cfg), &zero, &cfg, BPF_ANY)) {
    return fail("zproxy_sidecar_cfg");
  }
  uint8_t one = 1;
  for (uint32_t p : config.exclude_ports()) {
    uint16_t port = static_cast<uint16_t>(p);
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zproxy_excl_ports), &port, &one, BPF_ANY)) {
      return fail("zproxy_excl_ports");
    }
  }
  for (const std::string& text : config.exclude_cidrs()) {
    int family;
    uint32_t a[4];
    uint32_t prefix;
    if (!ParseCidr(text, &family, a, &prefix)) continue;  // validation refused it
    if (family == AF_INET) {
      zproxy_lpm_v4 k{prefix, a[0]};
      if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zproxy_excl_v4), &k, &one, BPF_ANY)) {
        return fail("zproxy_excl_v4");
      }
    } else {
      zproxy_lpm_v6 k{prefix, {a[0], a[1], a[2], a[3]}};
      if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zproxy_excl_v6), &k, &one, BPF_ANY)) {
        return fail("zproxy_excl_v6");
      }
    }
  }
  return true;
}

void SidecarInterception::Detach() {
  for (bpf_link* l : links_) bpf_link__destroy(l);
  links_.clear();
  skel_.Reset();
  cgroup_.clear();
}

}  // namespace zproxy::controlplane::bpf
