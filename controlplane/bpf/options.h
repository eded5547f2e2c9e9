// What zproxyd's BPF setup may do, from the config (bpffs_path) and from tests.
#pragma once

#include <string>

namespace zproxy::controlplane::bpf {

enum class SteerPolicy { kCpu, kHash };

struct BpfOptions {
  // Directory the objects pin under (on bpffs, mounted if missing); empty = no pins.
  std::string pin_dir;
  // Leave the pins on clean shutdown (inspection after exit, or a restart that must keep
  // map contents even when it fails to start).
  bool keep_pins = false;
  SteerPolicy policy = SteerPolicy::kCpu;
  // Skip modes (tests, and operators debugging a kernel): eBPF -> CBPF -> plain reuseport.
  bool disable_ebpf = false;
  // Why eBPF steering is disabled, for the log line ("disabled" when empty).
  std::string disable_ebpf_why;
  bool disable_cbpf = false;
};

}  // namespace zproxy::controlplane::bpf
