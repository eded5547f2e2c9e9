#include "controlplane/flags.h"

#include <string_view>

namespace zproxy::controlplane {

const char* Usage() {
  return "usage: zproxyd --config FILE [--check] [--dataplane PATH] [--no-adopt]\n"
         "  --config FILE     YAML configuration (schema: proto/zproxy/v1/config.proto)\n"
         "  --check           validate FILE, print the result, exit 0 (ok) or 1 (errors)\n"
         "  --dataplane PATH  data plane binary (default: zproxy-dataplane beside zproxyd)\n"
         "  --no-adopt        replace (drain) a data plane left running by a zproxyd that died\n"
         "                    instead of adopting it (e.g. to run a new data plane binary)\n";
}

bool ParseFlags(int argc, char** argv, Flags* flags, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    bool has_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto take = [&](std::string* out) {
      if (!has_value) {
        if (i + 1 >= argc) {
          *error = std::string(arg) + " needs a value";
          return false;
        }
        value = argv[++i];
      }
      if (value.empty()) {
        *error = std::string(arg) + " needs a non-empty value";
        return false;
      }
      *out = std::string(value);
      return true;
    };
    if (arg == "--config") {
      if (!take(&flags->config_path)) return false;
    } else if (arg == "--dataplane") {
      if (!take(&flags->dataplane_path)) return false;
    } else if (arg == "--no-adopt" && !has_value) {
      flags->no_adopt = true;
    } else if (arg == "--check" && !has_value) {
      flags->check = true;
    } else if ((arg == "--help" || arg == "-h") && !has_value) {
      flags->help = true;
      return true;
    } else {
      *error = "unknown argument \"" + std::string(argv[i]) + "\"";
      return false;
    }
  }
  if (flags->config_path.empty()) {
    *error = "--config is required";
    return false;
  }
  return true;
}

}  // namespace zproxy::controlplane
