#include "controlplane/bpf/local_hops.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "bpf/zproxy_structs.h"
#include "common/unique_fd.h"
#include "controlplane/bpf/bpffs.h"
#include "controlplane/bpf/paths.h"
#include "controlplane/bpf/sidecar.h"

namespace zproxy::controlplane::bpf {

bool LocalHops::Attach(const std::string& app_cgroup, const BpfOptions& options,
                       std::string* error) {
  Detach();
  std::string mount = Cgroup2MountOf(app_cgroup, error);
  if (mount.empty()) return false;
  std::string app = RealPath(app_cgroup);
  std::string own = RealPath(mount + OwnCgroup());
  if (own.empty() || own == mount) {
    *error = "zproxyd runs in the root cgroup of " + mount +
             ": its sockets can only get the sockops program from a cgroup of its own (e.g. "
             "a systemd service's); the root would take every process";
    return false;
  }
  // zproxyd's cgroup holding the application's covers both (attaching to both would run
  // the program twice on the application's sockets).
  std::vector<std::string> targets{own};
  if (!PathUnder(app, own)) targets.push_back(app);
  std::string pin_dir = options.pin_dir.empty() ? "" : options.pin_dir + "/sidecar";
  if (!pin_dir.empty() && !EnsureBpffsDir(pin_dir, error)) return false;
  if (!skel_.OpenAndLoad(pin_dir, options.keep_pins, "local_hops", error)) return false;
  // sk_msg first: a socket the sockops program inserts is accelerated from its insertion.
  if (bpf_prog_attach(bpf_program__fd(skel_->progs.zproxy_lh_msg), socks_fd(), BPF_SK_MSG_VERDICT,
                      0) != 0) {
    *error = std::string("attach zproxy_lh_msg to zproxy_lh_socks: ") + strerror(errno);
    Detach();
    return false;
  }
  msg_attached_ = true;
  for (const std::string& dir : targets) {
    UniqueFd cg(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.valid()) {
      *error = "open " + dir + ": " + strerror(errno);
      Detach();
      return false;
    }
    bpf_link* link = bpf_program__attach_cgroup(skel_->progs.zproxy_lh_ops, cg.get());
    if (long err = libbpf_get_error(link); err != 0) {
      *error = "attach zproxy_lh_ops to " + dir + ": " + strerror(static_cast<int>(-err));
      Detach();
      return false;
    }
    links_.push_back(link);
    cgroups_.push_back(dir);
  }
  if (!skel_.CommitPins(error)) {
    Detach();
    return false;
  }
  return true;
}

void LocalHops::Detach() {
  for (bpf_link* l : links_) bpf_link__destroy(l);
  links_.clear();
  cgroups_.clear();
  // A pinned map outlives us: leave no program on it (its sockets, which close by
  // themselves, then go through TCP).
  if (msg_attached_ && skel_) {
    bpf_prog_detach2(bpf_program__fd(skel_->progs.zproxy_lh_msg), socks_fd(), BPF_SK_MSG_VERDICT);
  }
  msg_attached_ = false;
  skel_.Reset();
}

int ForeignProcesses(const std::string& dir) {
  std::ifstream procs(dir + "/cgroup.procs");
  int n = 0;
  for (pid_t pid; procs >> pid;) {
    if (pid == getpid()) continue;
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    // comm holds 15 characters: "zproxy-dataplan".
    if (name.rfind("zproxy-dataplan", 0) != 0) n++;
  }
  return n;
}

std::string LocalHopsPrometheusText(bool enabled, int stats_fd) {
  std::string out =
      "# HELP zproxy_sidecar_sk_msg_enabled 1 when sk_msg accelerates local hops "
      "(docs/sidecar.md).\n# TYPE zproxy_sidecar_sk_msg_enabled gauge\n"
      "zproxy_sidecar_sk_msg_enabled " +
      std::string(enabled ? "1" : "0") + "\n";
  if (stats_fd < 0) return out;
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  std::vector<zproxy_lh_counters> per_cpu(static_cast<size_t>(cpus));
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(stats_fd, &zero, per_cpu.data()) != 0) return out;
  zproxy_lh_counters sum{};
  for (const auto& c : per_cpu) {
    sum.redirected_msgs += c.redirected_msgs;
    sum.redirected_bytes += c.redirected_bytes;
    sum.misses += c.misses;
    sum.passed_msgs += c.passed_msgs;
    sum.inserts += c.inserts;
    sum.insert_failed += c.insert_failed;
    sum.removals += c.removals;
  }
  auto counter = [&out](const char* name, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  counter("zproxy_sidecar_sk_msg_redirected_msgs_total",
          "Sends moved straight into the peer socket by sk_msg.", sum.redirected_msgs);
  counter("zproxy_sidecar_sk_msg_redirected_bytes_total", "Bytes moved by sk_msg.",
          sum.redirected_bytes);
  counter("zproxy_sidecar_sk_msg_misses_total",
          "Local sockets whose first send found no peer in the hash (they use TCP).", sum.misses);
  counter("zproxy_sidecar_sk_msg_inserts_total", "Sockets put into the local-hop hash.",
          sum.inserts);
  counter("zproxy_sidecar_sk_msg_insert_failed_total", "Sockets the local-hop hash refused.",
          sum.insert_failed);
  counter("zproxy_sidecar_sk_msg_removals_total", "Inserted sockets that closed.", sum.removals);
  return out;
}

}  // namespace zproxy::controlplane::bpf
