#include "dataplane/http1/chars.h"
#include "dataplane/http1/http1.h"

namespace zproxy::http1 {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (internal::ToLowerAscii(a[i]) != internal::ToLowerAscii(b[i])) return false;
  }
  return true;
}

}  // namespace zproxy::http1
