// libFuzzer target for CONNECT targets and allow patterns (common/connect_allow.h): the
// authority of every CONNECT comes from the network. Built by tools/fuzz-parser. Checks,
// besides memory safety: a host name comes out lower case, 1..253 characters of
// [a-z0-9._-], NUL-terminated, without a trailing dot, and parses again to itself; a text
// accepted both as a name pattern and as a target is allowed by that pattern; an IP
// target is allowed by its own text as a pattern.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/connect_allow.h"

namespace {

using namespace zproxy;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  NetAddress addr;
  ConnectName name;
  ConnectTargetError err = ParseConnectTarget(text, &addr, &name);
  if (err == ConnectTargetError::kHostname) {
    std::string_view n = name.view();
    Check(n.size() >= 1 && n.size() <= kMaxHostName, "name length");
    Check(name.host[name.len] == '\0', "NUL-terminated");
    Check(n.back() != '.', "no trailing dot");
    for (char ch : n) {
      Check((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
                ch == '_',
            "name characters");
    }
    Check(name.port != 0, "port");
    std::string again = std::string(n) + ":" + std::to_string(name.port);
    ConnectName name2;
    Check(ParseConnectTarget(again, &addr, &name2) == ConnectTargetError::kHostname, "reparse");
    Check(name2.view() == n && name2.port == name.port, "reparse is identical");
  }
  ConnectAllowRule rule;
  std::string why;
  if (ParseConnectAllowRule(text, &rule, &why)) {
    std::vector<ConnectAllowRule> rules{rule};
    if (err == ConnectTargetError::kHostname && rule.kind == ConnectAllowRule::Kind::kName &&
        !rule.wildcard) {
      Check(ConnectNameAllowed(rules, name), "a name pattern allows its own text");
    }
    if (err == ConnectTargetError::kNone && rule.kind == ConnectAllowRule::Kind::kIp) {
      Check(ConnectAllowed(rules, addr), "an IP pattern allows its own text");
    }
  } else {
    Check(!why.empty(), "a refused pattern says why");
  }
  return 0;
}
