// At most one log line per second for a condition that can repeat per event (a full
// descriptor table fails every accept and every connect): the first line says what
// happened, later ones how often it happened meanwhile. Per worker, no locking.
#pragma once

#include <cstdint>

namespace zproxy::dataplane {

class LogLimiter {
 public:
  // True when a line may be written now; *suppressed is then the number of events not
  // logged since the previous line.
  bool Allow(uint32_t now_ms, uint32_t* suppressed) {
    if (logged_ && now_ms - last_ms_ < 1000) {
      count_++;
      return false;
    }
    logged_ = true;
    last_ms_ = now_ms;
    *suppressed = count_;
    count_ = 0;
    return true;
  }

 private:
  bool logged_ = false;
  uint32_t last_ms_ = 0;
  uint32_t count_ = 0;
};

}  // namespace zproxy::dataplane
