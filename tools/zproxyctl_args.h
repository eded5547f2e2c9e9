// zproxyctl's command line: global flags anywhere, then COMMAND [SUBCOMMAND] positionals
// and --flags (repeatable ones collect every value). No gRPC here.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace zproxy::ctl {

struct Args {
  std::string admin;  // --admin; empty = from --config
  std::string config = "/etc/zproxy/zproxy.yaml";
  std::string output = "table";           // -o table|json
  std::string tls_cert, tls_key, tls_ca;  // mTLS client credentials for TCP
  int timeout_s = 30;
  std::vector<std::string> positional;                    // "routes", "add", ...
  std::map<std::string, std::vector<std::string>> flags;  // "--prefix" -> values
  std::vector<std::string> bool_flags;                    // "--undrain"

  bool Has(const std::string& flag) const;
  // Last value of `flag`, or "" if absent.
  std::string Get(const std::string& flag) const;
  std::vector<std::string> All(const std::string& flag) const;
};

// Returns false with a message (usage error) in *error.
bool ParseArgs(int argc, char** argv, Args* args, std::string* error);

const char* Usage();

}  // namespace zproxy::ctl
