// zproxyd's command line: `zproxyd --config FILE [--check] [--dataplane PATH] [--no-adopt]`.
#pragma once

#include <string>

namespace zproxy::controlplane {

struct Flags {
  std::string config_path;
  bool check = false;          // validate the config and exit (like `nginx -t`)
  std::string dataplane_path;  // empty = find zproxy-dataplane beside zproxyd
  // A data plane left serving by a zproxyd that died is replaced (new data plane, it
  // drains) instead of adopted, e.g. to pick up a new zproxy-dataplane binary.
  bool no_adopt = false;
  bool help = false;
};

// Accepts "--flag value" and "--flag=value". Returns false with a message in *error.
bool ParseFlags(int argc, char** argv, Flags* flags, std::string* error);

const char* Usage();

}  // namespace zproxy::controlplane
