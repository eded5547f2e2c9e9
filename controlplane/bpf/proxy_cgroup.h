// A cgroup v2 directory of zproxyd's own, for sk_msg (docs/sidecar.md, "sk_msg"): the
// sockops program that puts zproxy's sockets into the local-hop hash is attached to
// zproxyd's cgroup, and a socket belongs to the cgroup its creator was in when it was made.
// Started in the root cgroup (where attaching would take every process) or in a cgroup that
// other processes share (a shell's scope, a test runner's), zproxyd moves itself into a child
// it creates before it opens sockets or starts its data plane, and leaves it on exit.
#pragma once

#include <string>

namespace zproxy::controlplane::bpf {

class ProxyCgroup {
 public:
  ProxyCgroup() = default;
  ProxyCgroup(const ProxyCgroup&) = delete;
  ProxyCgroup& operator=(const ProxyCgroup&) = delete;
  // Moves zproxyd back to the cgroup it came from and removes the child (kept while a data
  // plane that outlives zproxyd, an adopted one, is still in it).
  ~ProxyCgroup() { Leave(); }

  enum class Outcome {
    kAlreadyOwn,  // zproxyd's cgroup holds only zproxyd and its data planes: stays
    kMoved,       // moved into path()
    kNotMoved,    // inside the application's cgroup, no cgroup2, or the move failed: *note
  };
  // `app_cgroup` is sidecar.cgroup; `instance` names this zproxyd among others started from
  // the same cgroup (its bpffs path): a restarted zproxyd joins the child its predecessor
  // made, where an adopted data plane still runs.
  Outcome Enter(const std::string& app_cgroup, const std::string& instance, std::string* note);
  void Leave();

  const std::string& path() const { return path_; }
  const std::string& previous() const { return previous_; }

 private:
  std::string path_;      // the child zproxyd moved into; "" when it did not move
  std::string previous_;  // the cgroup it came from
};

}  // namespace zproxy::controlplane::bpf
