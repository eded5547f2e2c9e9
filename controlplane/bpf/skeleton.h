// The one owner of a libbpf skeleton (bpftool's generated struct X with X::open/load/
// destroy): opens it, adopts compatible pins, loads it, pins it after the caller attached
// it, and on destruction unpins (unless keep_pins) and destroys it. Non-copyable: the
// kernel objects have one owner; movable so factories can return it.
#pragma once

#include <bpf/libbpf.h>
#include <errno.h>

#include <cstring>
#include <string>
#include <utility>

#include "controlplane/bpf/pins.h"

namespace zproxy::controlplane::bpf {

// Routes libbpf's own messages to zproxy's log at debug level (once per process): its
// warnings on an expected fallback (no CAP_BPF) would otherwise look like failures.
void QuietLibbpf();

template <typename Skel>
class Skeleton {
 public:
  Skeleton() = default;
  Skeleton(const Skeleton&) = delete;
  Skeleton& operator=(const Skeleton&) = delete;
  Skeleton(Skeleton&& o) noexcept
      : skel_(std::exchange(o.skel_, nullptr)),
        pins_(std::move(o.pins_)),
        keep_pins_(o.keep_pins_) {}
  Skeleton& operator=(Skeleton&& o) noexcept {
    if (this != &o) {
      Reset();
      skel_ = std::exchange(o.skel_, nullptr);
      pins_ = std::move(o.pins_);
      keep_pins_ = o.keep_pins_;
    }
    return *this;
  }
  ~Skeleton() { Reset(); }

  // `pin_dir` empty = never pinned. `what` names the object in errors.
  bool OpenAndLoad(const std::string& pin_dir, bool keep_pins, const char* what,
                   std::string* error) {
    QuietLibbpf();
    Reset();
    keep_pins_ = keep_pins;
    skel_ = Skel::open();
    if (skel_ == nullptr) {
      *error = std::string("open ") + what + ": " + std::strerror(errno);
      return false;
    }
    pins_ = Pins(pin_dir);
    if (!pins_.Reuse(skel_->obj, error)) return Fail();
    if (int err = Skel::load(skel_); err != 0) {
      *error = std::string("load ") + what + ": " + std::strerror(err < 0 ? -err : errno);
      return Fail();
    }
    return true;
  }

  bool CommitPins(std::string* error) { return pins_.Commit(skel_->obj, error); }

  Skel* get() const { return skel_; }
  Skel* operator->() const { return skel_; }
  explicit operator bool() const { return skel_ != nullptr; }
  const Pins& pins() const { return pins_; }

  void Reset() {
    if (!keep_pins_) pins_.Unpin();
    pins_ = Pins();
    if (skel_ != nullptr) Skel::destroy(std::exchange(skel_, nullptr));
  }

 private:
  bool Fail() {
    keep_pins_ = true;  // nothing of ours is pinned yet: leave the old pins alone
    Reset();
    return false;
  }

  Skel* skel_ = nullptr;
  Pins pins_;
  bool keep_pins_ = false;
};

}  // namespace zproxy::controlplane::bpf
