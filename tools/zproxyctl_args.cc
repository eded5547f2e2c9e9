#include "tools/zproxyctl_args.h"

#include <algorithm>
#include <set>
#include <string_view>

namespace zproxy::ctl {

const char* Usage() {
  return "usage: zproxyctl [--admin unix:PATH|HOST:PORT] [--config FILE] [-o table|json] COMMAND\n"
         "  status\n"
         "  config get | apply FILE [--expected-version N] | validate FILE\n"
         "  routes list [--listener NAME]\n"
         "  routes add --listener NAME (--prefix P | --path P) --cluster NAME [--name N]\n"
         "             [--host H]... [--method M]... [--host-rewrite H] [--expected-version N]\n"
         "             [--route YAML|@FILE]   the route's policy (redirect, direct_response,\n"
         "             prefix_rewrite, request_headers, retry, rate_limit, ...) as in the config\n"
         "  routes delete --listener NAME (--name N | --prefix P | --path P)\n"
         "  clusters list\n"
         "  clusters add NAME --endpoint HOST:PORT [--endpoint ...] [--lb round_robin|"
         "least_connections]\n"
         "  clusters delete NAME\n"
         "  endpoints set-weight CLUSTER HOST:PORT WEIGHT\n"
         "  endpoints drain CLUSTER HOST:PORT [--undrain]\n"
         "  stats\n"
         "  health [show] [--cluster NAME]\n"
         "  health watch [--cluster NAME] [--initial-state]\n"
         "  dataplane restart\n"
         "  fleet [status]      every live node of the fleet (fleet mode, docs/fleet.md)\n"
         "--admin defaults to admin_address of --config (default /etc/zproxy/zproxy.yaml).\n"
         "TCP needs mutual TLS: --tls-cert FILE --tls-key FILE --tls-ca FILE.\n"
         "Mutations take --expected-version N (compare-and-set; in fleet mode the etcd revision).\n"
         "Exit: 0 ok, 1 error, 2 usage.\n";
}

bool Args::Has(const std::string& flag) const {
  return flags.count(flag) != 0 ||
         std::find(bool_flags.begin(), bool_flags.end(), flag) != bool_flags.end();
}

std::string Args::Get(const std::string& flag) const {
  auto it = flags.find(flag);
  return it == flags.end() || it->second.empty() ? "" : it->second.back();
}

std::vector<std::string> Args::All(const std::string& flag) const {
  auto it = flags.find(flag);
  return it == flags.end() ? std::vector<std::string>{} : it->second;
}

bool ParseArgs(int argc, char** argv, Args* args, std::string* error) {
  static const std::set<std::string> kBool = {"--undrain", "--initial-state"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    if (arg == "-h" || arg == "--help") {
      *error = "";
      return false;
    }
    if (arg.rfind("-", 0) != 0 || arg == "-") {
      args->positional.push_back(arg);
      continue;
    }
    if (kBool.count(arg) != 0) {
      args->bool_flags.push_back(arg);
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        *error = arg + " needs a value";
        return false;
      }
      value = argv[++i];
    }
    if (arg == "--admin") {
      args->admin = value;
    } else if (arg == "--config") {
      args->config = value;
    } else if (arg == "-o" || arg == "--output") {
      if (value != "table" && value != "json") {
        *error = "-o must be table or json, got \"" + value + "\"";
        return false;
      }
      args->output = value;
    } else if (arg == "--tls-cert") {
      args->tls_cert = value;
    } else if (arg == "--tls-key") {
      args->tls_key = value;
    } else if (arg == "--tls-ca") {
      args->tls_ca = value;
    } else if (arg == "--timeout") {
      args->timeout_s = std::max(1, std::atoi(value.c_str()));
    } else {
      args->flags[arg].push_back(value);
    }
  }
  if (args->positional.empty()) {
    *error = "a command is required";
    return false;
  }
  return true;
}

}  // namespace zproxy::ctl
