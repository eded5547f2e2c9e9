// Pin lifecycle for one libbpf object (shared by every skeleton owner):
//   1. before load: Reuse() adopts a compatible map pinned by an earlier zproxyd (same type,
//      key/value size, max_entries, flags), so maps and their contents survive restarts;
//      an incompatible pin is noted and replaced later;
//   2. after attach: Commit() pins the remaining maps and every program (replacing what
//      was there), so a half-set-up object never appears under bpffs_path;
//   3. on clean shutdown: Unpin() removes them all (unless the owner keeps pins).
#pragma once

#include <string>
#include <vector>

struct bpf_map;
struct bpf_object;
struct btf;

namespace zproxy::controlplane::bpf {

class Pins {
 public:
  Pins() = default;
  Pins(const Pins&) = delete;
  Pins& operator=(const Pins&) = delete;
  Pins(Pins&&) = default;
  Pins& operator=(Pins&&) = default;

  // `dir` empty = no pinning at all (every call is a no-op).
  explicit Pins(std::string dir) : dir_(std::move(dir)) {}

  // Call between open and load. Fails only on a libbpf error; a missing or incompatible pin
  // is not an error.
  bool Reuse(bpf_object* obj, std::string* error);
  // Call after the programs are attached.
  bool Commit(bpf_object* obj, std::string* error);
  void Unpin();

  const std::string& dir() const { return dir_; }
  // Names of the maps adopted from existing pins (for logs and tests).
  const std::vector<std::string>& reused() const { return reused_; }
  // "name (why)" for each incompatible pin found by Reuse; Commit replaces them and says
  // so in one log line.
  const std::vector<std::string>& replaced() const { return replaced_; }

 private:
  std::string Path(const char* name) const { return dir_ + "/" + name; }

  std::string dir_;
  std::vector<std::string> reused_;
  std::vector<std::string> replaced_;
  std::vector<std::string> pinned_;  // every path Unpin removes
};

// Why the map behind `pinned_fd` cannot stand in for `map` (not yet loaded), e.g. "type
// hash, now sockhash; key bytes 16, now 8" (an older zproxy's layout); "" when it can.
// Same type, sizes, max_entries and flags, and when both carry BTF (`ours`: the object's),
// the same key and value layout: names, offsets and sizes of every field.
std::string PinMismatch(int pinned_fd, const bpf_map* map, const btf* ours = nullptr);
inline bool PinCompatible(int pinned_fd, const bpf_map* map) {
  return PinMismatch(pinned_fd, map).empty();
}

}  // namespace zproxy::controlplane::bpf
