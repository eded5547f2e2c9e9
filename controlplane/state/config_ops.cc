#include "controlplane/state/config_ops.h"

#include <google/protobuf/util/message_differencer.h>

#include <set>

#include "controlplane/config/defaults.h"
#include "controlplane/config/validate.h"
#include "controlplane/state/dataplane_metrics.h"
#include "controlplane/state/inline_tls_files.h"

namespace zproxy::state {
namespace {

using google::protobuf::util::MessageDifferencer;
using zproxy::v1::Cluster;
using zproxy::v1::Config;
using zproxy::v1::Listener;
using zproxy::v1::Route;
using zproxy::v1::RouteMatch;

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

OpStatus NotFound(std::string what) { return OpStatus::Error(OpStatus::kNotFound, what); }

Listener* FindListener(Config* config, const std::string& name, OpStatus* status) {
  for (auto& l : *config->mutable_listeners()) {
    if (l.name() == name) return &l;
  }
  *status = NotFound("no listener named " + Quote(name));
  return nullptr;
}

Cluster* FindCluster(Config* config, const std::string& name, OpStatus* status) {
  for (auto& c : *config->mutable_clusters()) {
    if (c.name() == name) return &c;
  }
  *status = NotFound("no cluster named " + Quote(name));
  return nullptr;
}

zproxy::v1::Endpoint* FindEndpoint(Config* config, const std::string& cluster,
                                   const std::string& address, OpStatus* status) {
  Cluster* c = FindCluster(config, cluster, status);
  if (c == nullptr) return nullptr;
  for (auto& e : *c->mutable_endpoints()) {
    if (e.address() == address) return &e;
  }
  *status = NotFound("cluster " + Quote(cluster) + " has no endpoint " + Quote(address));
  return nullptr;
}

// True if every path `inner` matches is also matched by `outer` (hosts and methods are
// ignored: inserting a narrower route earlier never hides more than it should).
bool PathCovers(const RouteMatch& outer, const RouteMatch& inner) {
  if (!outer.path().empty()) return !inner.path().empty() && inner.path() == outer.path();
  const std::string& prefix = outer.prefix();  // empty prefix and path: matches every path
  const std::string& target = inner.path().empty() ? inner.prefix() : inner.path();
  return target.compare(0, prefix.size(), prefix) == 0;
}

int FindRoute(const Listener& l, const std::string& name, const RouteMatch& match) {
  for (int i = 0; i < l.routes_size(); ++i) {
    const Route& r = l.routes(i);
    if (!name.empty() ? r.name() == name : MessageDifferencer::Equals(r.match(), match)) return i;
  }
  return -1;
}

}  // namespace

OpStatus UpsertRoute(Config* config, const std::string& listener, const Route& route) {
  OpStatus status;
  Listener* l = FindListener(config, listener, &status);
  if (l == nullptr) return status;
  if (l->has_tcp_proxy()) {
    return OpStatus::Error(OpStatus::kFailedPrecondition,
                           "listener " + Quote(listener) + " is a tcp_proxy (L4) listener");
  }
  int existing = FindRoute(*l, route.name(), route.match());
  if (existing >= 0) {
    *l->mutable_routes(existing) = route;
    return status;
  }
  int at = l->routes_size();
  for (int i = 0; i < l->routes_size(); ++i) {
    if (PathCovers(l->routes(i).match(), route.match())) {
      at = i;
      break;
    }
  }
  l->add_routes()->CopyFrom(route);
  for (int i = l->routes_size() - 1; i > at; --i) l->mutable_routes()->SwapElements(i, i - 1);
  return status;
}

OpStatus DeleteRoute(Config* config, const std::string& listener, const std::string& name,
                     const RouteMatch& match) {
  OpStatus status;
  Listener* l = FindListener(config, listener, &status);
  if (l == nullptr) return status;
  int i = FindRoute(*l, name, match);
  if (i < 0) {
    return NotFound(
        "listener " + Quote(listener) + " has no route " +
        (name.empty() ? "with match {" + match.ShortDebugString() + "}" : "named " + Quote(name)));
  }
  l->mutable_routes()->DeleteSubrange(i, 1);
  return status;
}

OpStatus UpsertCluster(Config* config, Cluster cluster) {
  config::ApplyDefaults(&cluster);
  for (auto& c : *config->mutable_clusters()) {
    if (c.name() == cluster.name()) {
      c = std::move(cluster);
      return OpStatus::Ok();
    }
  }
  *config->add_clusters() = std::move(cluster);
  return OpStatus::Ok();
}

OpStatus DeleteCluster(Config* config, const std::string& name) {
  std::string users;
  for (int i = 0; i < config->listeners_size(); ++i) {
    const Listener& l = config->listeners(i);
    std::string base = "listeners[" + std::to_string(i) + "]";
    if (l.has_tcp_proxy() && l.tcp_proxy().cluster() == name) {
      users += (users.empty() ? "" : ", ") + base + ".tcp_proxy (listener " + Quote(l.name()) + ")";
    }
    for (int j = 0; l.has_tcp_proxy() && j < l.tcp_proxy().sni_routes_size(); ++j) {
      if (l.tcp_proxy().sni_routes(j).cluster() != name) continue;
      users += (users.empty() ? "" : ", ") + base + ".tcp_proxy.sni_routes[" + std::to_string(j) +
               "] (listener " + Quote(l.name()) + ")";
    }
    for (int j = 0; j < l.routes_size(); ++j) {
      if (l.routes(j).cluster() != name) continue;
      const Route& r = l.routes(j);
      users += (users.empty() ? "" : ", ") + base + ".routes[" + std::to_string(j) +
               "] (listener " + Quote(l.name()) +
               (r.name().empty() ? "" : ", route " + Quote(r.name())) + ")";
    }
  }
  if (!users.empty()) {
    return OpStatus::Error(OpStatus::kFailedPrecondition,
                           "cluster " + Quote(name) + " is still used by " + users);
  }
  auto* clusters = config->mutable_clusters();
  for (int i = 0; i < clusters->size(); ++i) {
    if (clusters->Get(i).name() == name) {
      clusters->DeleteSubrange(i, 1);
      return OpStatus::Ok();
    }
  }
  return NotFound("no cluster named " + Quote(name));
}

OpStatus SetEndpointWeight(Config* config, const std::string& cluster, const std::string& address,
                           uint32_t weight) {
  OpStatus status;
  auto* e = FindEndpoint(config, cluster, address, &status);
  if (e == nullptr) return status;
  if (weight == 0) {
    return OpStatus::Error(OpStatus::kInvalidArgument,
                           "weight: must be at least 1 (use DrainEndpoint to stop traffic)");
  }
  e->set_weight(weight);
  return status;
}

OpStatus DrainEndpoint(Config* config, const std::string& cluster, const std::string& address,
                       bool undrain) {
  OpStatus status;
  auto* e = FindEndpoint(config, cluster, address, &status);
  if (e == nullptr) return status;
  e->set_draining(!undrain);
  return status;
}

config::ConfigErrors CandidateErrors(const Config& current, const Config& candidate) {
  config::ConfigErrors errors = config::ValidateConfig(candidate);
  auto add = [&](const std::string& path, const std::string& message) {
    errors.push_back(config::ConfigError{path, message, "", 0, 0});
  };
  for (int i = 0; i < candidate.listeners_size(); ++i) {
    std::set<std::string> names;
    const Listener& l = candidate.listeners(i);
    for (int j = 0; j < l.routes_size(); ++j) {
      const std::string& n = l.routes(j).name();
      if (!n.empty() && !names.insert(n).second) {
        add("listeners[" + std::to_string(i) + "].routes[" + std::to_string(j) + "].name",
            "duplicate route name " + Quote(n) + " in listener " + Quote(l.name()));
      }
    }
  }
  for (int i = 0; i < candidate.clusters_size(); ++i) {
    const Cluster& c = candidate.clusters(i);
    bool serving = false;
    for (const auto& e : c.endpoints()) serving |= !e.draining();
    if (c.endpoints_size() > 0 && !serving) {
      add("clusters[" + std::to_string(i) + "].endpoints",
          "every endpoint of cluster " + Quote(c.name()) +
              " would be draining; keep at least one serving");
    }
  }
  // zproxyd owns one set of listen sockets per listener (by name) for its lifetime.
  std::set<std::pair<std::string, std::string>> before, after;
  for (const auto& l : current.listeners()) before.emplace(l.name(), l.address());
  for (const auto& l : candidate.listeners()) after.emplace(l.name(), l.address());
  if (before != after) {
    add("listeners",
        "adding, removing or re-addressing listeners needs a zproxyd restart "
        "(routes and http options can change at run time)");
  }
  // Owned by zproxyd's process setup: changing them needs a restart.
  auto fixed = [&](const char* field, bool same) {
    if (!same) add(field, "cannot change at run time (edit the file and restart zproxyd)");
  };
  fixed("workers", candidate.workers() == current.workers());
  fixed("admin_address", candidate.admin_address() == current.admin_address());
  // zproxyd's own listener (/metrics, /ready, /live), bound once at start.
  fixed("metrics_address", candidate.metrics_address() == current.metrics_address());
  // The sync socket belongs to the data plane's user (set up when zproxyd starts).
  fixed("dataplane_user", candidate.dataplane_user() == current.dataplane_user());
  fixed("dataplane_keep_privileges",
        candidate.dataplane_keep_privileges() == current.dataplane_keep_privileges());
  fixed("admin_tls", MessageDifferencer::Equals(candidate.admin_tls(), current.admin_tls()));
  fixed("state_dir", candidate.state_dir() == current.state_dir());
  fixed("bpffs_path", candidate.bpffs_path() == current.bpffs_path());
  fixed("bpf", MessageDifferencer::Equals(candidate.bpf(), current.bpf()));
  // Fleet mode is chosen at start (docs/fleet.md).
  fixed("config_source",
        MessageDifferencer::Equals(candidate.config_source(), current.config_source()));
  fixed("node", MessageDifferencer::Equals(candidate.node(), current.node()));
  return errors;
}

OpStatus CheckCandidate(const Config& current, const Config& candidate) {
  std::string lines;
  for (const auto& e : CandidateErrors(current, candidate)) {
    lines += (lines.empty() ? "" : "\n") + e.ToString();
  }
  if (lines.empty()) return OpStatus::Ok();
  return OpStatus::Error(OpStatus::kInvalidArgument, lines);
}

Config DataplaneView(const Config& config) {
  Config view = config;
  InlineTlsFiles(&view);
  view.set_metrics_address(DataplaneMetricsAddress(config.metrics_address()));
  for (auto& c : *view.mutable_clusters()) {
    auto* eps = c.mutable_endpoints();
    for (int i = eps->size() - 1; i >= 0; --i) {
      if (eps->Get(i).draining()) eps->DeleteSubrange(i, 1);
    }
  }
  return view;
}

}  // namespace zproxy::state
