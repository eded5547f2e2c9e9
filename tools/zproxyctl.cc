// zproxyctl: the Admin API's command line client (see Usage() in zproxyctl_args.cc).
// Tables by default, -o json for scripts; a server error is printed verbatim to stderr and
// the exit status is 1.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "controlplane/config/defaults.h"
#include "controlplane/config/load.h"
#include "tools/zproxyctl_args.h"
#include "tools/zproxyctl_health.h"
#include "tools/zproxyctl_table.h"
#include "zproxy/v1/admin.grpc.pb.h"

namespace zproxy::ctl {
namespace {

using zproxy::v1::Admin;

constexpr int kOk = 0, kFailed = 1, kUsage = 2;

int UsageError(const std::string& message) {
  std::fprintf(stderr, "zproxyctl: %s\n%s", message.c_str(), Usage());
  return kUsage;
}

std::string Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  return out;
}

// For health views: fields at their default (healthy: false, 0 failures) are printed too,
// so scripts can read every field of every entry.
std::string JsonAllFields(const google::protobuf::Message& m, bool whitespace = true) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = whitespace;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, o);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class Client {
 public:
  explicit Client(const Args& args) : args_(args) {}

  bool Connect(std::string* error) {
    std::string target = args_.admin;
    if (target.empty()) {
      config::LoadResult loaded = config::LoadConfigFile(args_.config);
      target = loaded.ok() ? loaded.config.admin_address() : config::Defaults::kAdminAddress;
    }
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (target.rfind("unix:", 0) == 0 || target.rfind("unix-abstract:", 0) == 0) {
      creds = grpc::InsecureChannelCredentials();
    } else {
      if (args_.tls_cert.empty() || args_.tls_key.empty() || args_.tls_ca.empty()) {
        *error = "TCP admin address " + target +
                 " needs mutual TLS: --tls-cert FILE --tls-key FILE --tls-ca FILE";
        return false;
      }
      grpc::SslCredentialsOptions ssl;
      ssl.pem_cert_chain = ReadFile(args_.tls_cert);
      ssl.pem_private_key = ReadFile(args_.tls_key);
      ssl.pem_root_certs = ReadFile(args_.tls_ca);
      creds = grpc::SslCredentials(ssl);
    }
    stub_ = Admin::NewStub(grpc::CreateChannel(target, creds));
    target_ = target;
    return true;
  }

  std::unique_ptr<grpc::ClientContext> Context(bool stream = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!stream) {
      ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(args_.timeout_s));
    }
    return ctx;
  }

  // Prints the server's error verbatim; returns the exit code.
  int Check(const grpc::Status& st) const {
    if (st.ok()) return kOk;
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE &&
        st.error_message().find("failed to connect") != std::string::npos) {
      std::fprintf(stderr, "zproxyctl: cannot reach the Admin API at %s: %s\n", target_.c_str(),
                   st.error_message().c_str());
    } else {
      std::fprintf(stderr, "%s\n", st.error_message().c_str());
    }
    return kFailed;
  }

  Admin::Stub* stub() { return stub_.get(); }

 private:
  const Args& args_;
  std::string target_;
  std::unique_ptr<Admin::Stub> stub_;
};

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "*" : out;
}

std::string MatchText(const v1::RouteMatch& m) {
  if (!m.path().empty()) return "path " + m.path();
  return "prefix " + (m.prefix().empty() ? std::string("/") : m.prefix());
}

void PrintRoutes(const v1::Config& c, const std::string& only) {
  Table t({"LISTENER", "#", "NAME", "MATCH", "HOSTS", "METHODS", "CLUSTER"});
  for (const auto& l : c.listeners()) {
    if (!only.empty() && l.name() != only) continue;
    if (l.has_tcp_proxy()) {
      t.Add({l.name(), "-", "-", "tcp_proxy", "-", "-", l.tcp_proxy().cluster()});
      // SNI routes: HOSTS are the server names, MATCH says sni (with its alpn, if any).
      for (int i = 0; i < l.tcp_proxy().sni_routes_size(); ++i) {
        const auto& r = l.tcp_proxy().sni_routes(i);
        std::string match = r.alpn_size() == 0 ? "sni" : "sni alpn " + Join(r.alpn());
        t.Add({l.name(), std::to_string(i), "-", match, Join(r.server_names()), "-", r.cluster()});
      }
    }
    for (int i = 0; i < l.routes_size(); ++i) {
      const auto& r = l.routes(i);
      t.Add({l.name(), std::to_string(i), r.name().empty() ? "-" : r.name(), MatchText(r.match()),
             Join(r.match().hosts()), Join(r.match().methods()), r.cluster()});
    }
  }
  std::fputs(t.Render().c_str(), stdout);
}

// `health`: the GetHealth summary per cluster ("?" when the server could not say).
// A host-name endpoint is followed by the addresses it resolves to now ("=> -" for none),
// from GetHealth.
void PrintClusters(const v1::Config& c, const std::map<std::string, std::string>& health,
                   const v1::HealthResponse& report) {
  std::map<std::pair<std::string, std::string>, std::string> resolved;
  for (const auto& e : report.endpoints()) {
    if (e.hostname().empty()) continue;
    std::string& list = resolved[{e.cluster(), e.hostname()}];
    if (e.address() != e.hostname()) list += (list.empty() ? "" : ",") + e.address();
  }
  Table t({"CLUSTER", "LB", "ENDPOINTS", "HEALTH"});
  for (const auto& cl : c.clusters()) {
    std::string eps;
    for (const auto& e : cl.endpoints()) {
      eps += (eps.empty() ? "" : " ") + e.address() + "(w=" + std::to_string(e.weight()) +
             (e.draining() ? ",draining" : "") + ")";
      auto r = resolved.find({cl.name(), e.address()});
      if (r != resolved.end()) eps += "=>" + (r->second.empty() ? "-" : r->second);
    }
    std::string lb = v1::LbPolicy_Name(cl.lb());
    for (auto& ch : lb) ch = static_cast<char>(std::tolower(ch));
    auto h = health.find(cl.name());
    t.Add({cl.name(), lb, eps, h != health.end() ? h->second : "?"});
  }
  std::fputs(t.Render().c_str(), stdout);
}

bool ParseUint(const std::string& text, uint64_t* out) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return false;
  *out = std::stoull(text);
  return true;
}

class Commands {
 public:
  Commands(const Args& args, Client* client) : a_(args), c_(client) {}

  int Run() {
    const auto& p = a_.positional;
    const std::string cmd = p[0];
    const std::string sub = p.size() > 1 ? p[1] : "";
    if (cmd == "status") return Status();
    if (cmd == "config" && sub == "get") return ConfigGet();
    if (cmd == "config" && sub == "apply") return ConfigApply();
    if (cmd == "config" && sub == "validate") return ConfigValidate();
    if (cmd == "routes" && sub == "list") return RoutesList();
    if (cmd == "routes" && sub == "add") return RoutesAdd();
    if (cmd == "routes" && sub == "delete") return RoutesDelete();
    if (cmd == "clusters" && sub == "list") return ClustersList();
    if (cmd == "clusters" && sub == "add") return ClustersAdd();
    if (cmd == "clusters" && sub == "delete") return ClustersDelete();
    if (cmd == "endpoints" && sub == "set-weight") return EndpointsSetWeight();
    if (cmd == "endpoints" && sub == "drain") return EndpointsDrain();
    if (cmd == "stats") return Stats();
    if (cmd == "health" && sub == "watch") return HealthWatch();
    if (cmd == "health" && (sub.empty() || sub == "show")) return HealthShow();
    if (cmd == "dataplane" && sub == "restart") return DataplaneRestart();
    if (cmd == "fleet" && (sub.empty() || sub == "status")) return FleetStatus();
    return UsageError("unknown command \"" + cmd + (sub.empty() ? "" : " " + sub) + "\"");
  }

 private:
  bool Json() const { return a_.output == "json"; }

  bool Expected(uint64_t* v) const {
    *v = 0;
    return !a_.Has("--expected-version") || ParseUint(a_.Get("--expected-version"), v);
  }

  // Prints the result of a mutation.
  int Mutated(const grpc::Status& st, const v1::ConfigResponse& r) {
    if (int rc = c_->Check(st); rc != kOk) return rc;
    if (Json()) {
      std::printf("%s\n", ctl::Json(r).c_str());
    } else {
      std::printf("ok: config version %llu\n", static_cast<unsigned long long>(r.version()));
    }
    return kOk;
  }

  bool GetConfig(v1::ConfigResponse* r, int* rc) {
    *rc = c_->Check(c_->stub()->GetConfig(c_->Context().get(), {}, r));
    return *rc == kOk;
  }

  int Status() {
    v1::StatusResponse r;
    if (int rc = c_->Check(c_->stub()->GetStatus(c_->Context().get(), {}, &r)); rc) return rc;
    if (Json()) {
      std::printf("%s\n", ctl::Json(r).c_str());
      return kOk;
    }
    Table t({"FIELD", "VALUE"});
    t.Add({"config version", std::to_string(r.config_version())});
    t.Add({"config source", r.config_source()});
    t.Add({"config file", r.config_file()});
    t.Add({"state file", r.state_path()});
    t.Add({"data plane pid",
           std::to_string(r.dataplane_pid()) + (r.dataplane_adopted() ? " (adopted)" : "")});
    t.Add({"data plane uptime", std::to_string(r.dataplane_uptime_ms() / 1000) + " s"});
    t.Add({"workers", std::to_string(r.workers())});
    t.Add({"crash restarts", std::to_string(r.dataplane_restarts())});
    t.Add({"handovers", std::to_string(r.handovers())});
    if (r.has_fleet()) {
      const v1::FleetStatus& f = r.fleet();
      t.Add({"fleet node", f.node() + " (prefix " + f.prefix() + ")"});
      t.Add({"fleet revision", std::to_string(f.applied_revision())});
      t.Add({"etcd", (f.connected() ? "connected to " : "unreachable, last tried ") + f.endpoint() +
                         (f.last_error().empty() ? "" : ": " + f.last_error())});
      if (f.refused_revision() != 0) {
        t.Add(
            {"refused revision", std::to_string(f.refused_revision()) + ": " + f.refused_error()});
      }
    }
    std::fputs(t.Render().c_str(), stdout);
    return kOk;
  }

  // Every live node of the fleet, as each published itself in etcd.
  int FleetStatus() {
    v1::FleetStatusResponse r;
    if (int rc = c_->Check(c_->stub()->GetFleetStatus(c_->Context().get(), {}, &r)); rc) return rc;
    if (Json()) {
      std::printf("%s\n", ctl::Json(r).c_str());
      return kOk;
    }
    std::printf("fleet %s at revision %lld, %d live node%s\n", r.prefix().c_str(),
                static_cast<long long>(r.revision()), r.nodes_size(),
                r.nodes_size() == 1 ? "" : "s");
    Table t({"NODE", "REVISION", "VERSION", "HEALTHY", "UNHEALTHY", "REFUSED"});
    for (const v1::FleetNode& n : r.nodes()) {
      t.Add({n.name(), std::to_string(n.applied_revision()), std::to_string(n.config_version()),
             std::to_string(n.endpoints_healthy()), std::to_string(n.endpoints_unhealthy()),
             n.refused_revision() == 0 ? "-" : std::to_string(n.refused_revision())});
    }
    std::fputs(t.Render().c_str(), stdout);
    return kOk;
  }

  int ConfigGet() {
    v1::ConfigResponse r;
    int rc;
    if (!GetConfig(&r, &rc)) return rc;
    if (Json()) {
      std::printf("%s\n", ctl::Json(r).c_str());
    } else {
      std::printf("# config version %llu\n%s", static_cast<unsigned long long>(r.version()),
                  r.config().DebugString().c_str());
    }
    return kOk;
  }

  // Loads FILE locally (YAML -> proto, defaults, validation); errors name file:line.
  bool LoadFile(v1::Config* out, int* rc) {
    if (a_.positional.size() < 3) {
      *rc = UsageError("config " + a_.positional[1] + " needs FILE");
      return false;
    }
    config::LoadResult loaded = config::LoadConfigFile(a_.positional[2]);
    if (!loaded.ok()) {
      for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
      *rc = kFailed;
      return false;
    }
    *out = std::move(loaded.config);
    return true;
  }

  int ConfigApply() {
    v1::ApplyConfigRequest req;
    int rc;
    if (!LoadFile(req.mutable_config(), &rc)) return rc;
    uint64_t expected;
    if (!Expected(&expected)) return UsageError("--expected-version must be a number");
    req.set_expected_version(expected);
    v1::ConfigResponse r;
    return Mutated(c_->stub()->ApplyConfig(c_->Context().get(), req, &r), r);
  }

  int ConfigValidate() {
    v1::ValidateRequest req;
    int rc;
    if (!LoadFile(req.mutable_config(), &rc)) return rc;
    v1::ValidateResponse r;
    if (rc = c_->Check(c_->stub()->Validate(c_->Context().get(), req, &r)); rc) return rc;
    if (Json()) std::printf("%s\n", ctl::Json(r).c_str());
    for (const auto& e : r.errors()) {
      std::fprintf(stderr, "%s: %s\n", e.field().c_str(), e.message().c_str());
    }
    if (!Json() && r.ok()) std::printf("configuration %s is ok\n", a_.positional[2].c_str());
    return r.ok() ? kOk : kFailed;
  }

  int RoutesList() {
    v1::ConfigResponse r;
    int rc;
    if (!GetConfig(&r, &rc)) return rc;
    if (Json()) {
      v1::Config only;
      for (const auto& l : r.config().listeners()) {
        if (a_.Get("--listener").empty() || l.name() == a_.Get("--listener")) {
          *only.add_listeners() = l;
        }
      }
      std::printf("%s\n", ctl::Json(only).c_str());
    } else {
      PrintRoutes(r.config(), a_.Get("--listener"));
    }
    return kOk;
  }

  bool Match(v1::RouteMatch* m) const {
    if (a_.Has("--prefix")) m->set_prefix(a_.Get("--prefix"));
    if (a_.Has("--path")) m->set_path(a_.Get("--path"));
    for (const auto& h : a_.All("--host")) m->add_hosts(h);
    for (const auto& x : a_.All("--method")) m->add_methods(x);
    return a_.Has("--prefix") || a_.Has("--path");
  }

  int RoutesAdd() {
    v1::UpsertRouteRequest req;
    req.set_listener(a_.Get("--listener"));
    auto* route = req.mutable_route();
    if (req.listener().empty()) return UsageError("routes add needs --listener NAME");
    // --route: the whole route in YAML (its policy: redirect, rewrites, headers, retry,
    // rate_limit, ...), "@FILE" to read it from a file; the flags below override its parts.
    if (a_.Has("--route")) {
      std::string text = a_.Get("--route");
      std::string source = "--route";
      if (!text.empty() && text[0] == '@') {
        source = text.substr(1);
        text = ReadFile(source);
      }
      config::ConfigErrors errors = config::LoadMessageYaml(text, source, route);
      if (!errors.empty()) {
        for (const auto& e : errors) std::fprintf(stderr, "zproxyctl: %s\n", e.ToString().c_str());
        return kFailed;
      }
    }
    bool matched = Match(route->mutable_match());
    if (!matched && route->match().prefix().empty() && route->match().path().empty() &&
        route->match().regex().empty()) {
      return UsageError("routes add needs --prefix or --path (or a match in --route)");
    }
    if (a_.Has("--cluster")) route->set_cluster(a_.Get("--cluster"));
    bool answers = route->has_redirect() || route->https_redirect() || route->has_direct_response();
    if (route->cluster().empty() && !answers) {
      return UsageError("routes add needs --cluster NAME (or a redirect or direct_response)");
    }
    if (a_.Has("--name")) route->set_name(a_.Get("--name"));
    if (a_.Has("--host-rewrite")) route->set_host_rewrite(a_.Get("--host-rewrite"));
    uint64_t expected;
    if (!Expected(&expected)) return UsageError("--expected-version must be a number");
    req.set_expected_version(expected);
    v1::ConfigResponse r;
    return Mutated(c_->stub()->UpsertRoute(c_->Context().get(), req, &r), r);
  }

  int RoutesDelete() {
    v1::DeleteRouteRequest req;
    req.set_listener(a_.Get("--listener"));
    if (req.listener().empty()) return UsageError("routes delete needs --listener NAME");
    req.set_name(a_.Get("--name"));
    if (!Match(req.mutable_match()) && req.name().empty()) {
      return UsageError("routes delete needs --name N, --prefix P or --path P");
    }
    uint64_t expected;
    if (!Expected(&expected)) return UsageError("--expected-version must be a number");
    req.set_expected_version(expected);
    v1::ConfigResponse r;
    return Mutated(c_->stub()->DeleteRoute(c_->Context().get(), req, &r), r);
  }

  int ClustersList() {
    v1::ConfigResponse r;
    int rc;
    if (!GetConfig(&r, &rc)) return rc;
    // The health summary is extra: a server without GetHealth still lists its clusters.
    v1::HealthResponse health;
    const bool have_health =
        c_->stub()->GetHealth(c_->Context().get(), v1::GetHealthRequest{}, &health).ok();
    if (Json()) {
      v1::Config only;
      *only.mutable_clusters() = r.config().clusters();
      std::string out = ctl::Json(only);
      if (have_health) {
        std::string list;
        for (const auto& s : health.clusters()) {
          list += (list.empty() ? "[\n  " : ",\n  ") + JsonAllFields(s, /*whitespace=*/false);
        }
        out = AddJsonMember(out, "health", list.empty() ? "[]" : list + "\n ]");
      }
      std::printf("%s\n", out.c_str());
    } else {
      std::map<std::string, std::string> summary;
      for (const auto& s : health.clusters()) summary[s.cluster()] = HealthSummaryText(s);
      PrintClusters(r.config(), summary, health);
    }
    return kOk;
  }

  int ClustersAdd() {
    if (a_.positional.size() < 3) return UsageError("clusters add needs NAME");
    v1::UpsertClusterRequest req;
    auto* c = req.mutable_cluster();
    c->set_name(a_.positional[2]);
    for (const auto& e : a_.All("--endpoint")) c->add_endpoints()->set_address(e);
    if (c->endpoints_size() == 0) return UsageError("clusters add needs --endpoint HOST:PORT");
    if (a_.Has("--lb")) {
      std::string lb = a_.Get("--lb");
      for (auto& ch : lb) ch = static_cast<char>(std::toupper(ch));
      v1::LbPolicy policy;
      if (!v1::LbPolicy_Parse(lb, &policy)) return UsageError("unknown --lb " + a_.Get("--lb"));
      c->set_lb(policy);
    }
    uint64_t expected;
    if (!Expected(&expected)) return UsageError("--expected-version must be a number");
    req.set_expected_version(expected);
    v1::ConfigResponse r;
    return Mutated(c_->stub()->UpsertCluster(c_->Context().get(), req, &r), r);
  }

  int ClustersDelete() {
    if (a_.positional.size() < 3) return UsageError("clusters delete needs NAME");
    v1::DeleteClusterRequest req;
    req.set_name(a_.positional[2]);
    uint64_t expected;
    if (!Expected(&expected)) return UsageError("--expected-version must be a number");
    req.set_expected_version(expected);
    v1::ConfigResponse r;
    return Mutated(c_->stub()->DeleteCluster(c_->Context().get(), req, &r), r);
  }

  int EndpointsSetWeight() {
    uint64_t weight;
    if (a_.positional.size() < 5 || !ParseUint(a_.positional[4], &weight)) {
      return UsageError("endpoints set-weight needs CLUSTER HOST:PORT WEIGHT");
    }
    v1::SetEndpointWeightRequest req;
    req.set_cluster(a_.positional[2]);
    req.set_address(a_.positional[3]);
    req.set_weight(static_cast<uint32_t>(weight));
    uint64_t expected;
    if (!Expected(&expected)) return UsageError("--expected-version must be a number");
    req.set_expected_version(expected);
    v1::ConfigResponse r;
    return Mutated(c_->stub()->SetEndpointWeight(c_->Context().get(), req, &r), r);
  }

  int EndpointsDrain() {
    if (a_.positional.size() < 4) return UsageError("endpoints drain needs CLUSTER HOST:PORT");
    v1::DrainEndpointRequest req;
    req.set_cluster(a_.positional[2]);
    req.set_address(a_.positional[3]);
    req.set_undrain(a_.Has("--undrain"));
    uint64_t expected;
    if (!Expected(&expected)) return UsageError("--expected-version must be a number");
    req.set_expected_version(expected);
    v1::ConfigResponse r;
    return Mutated(c_->stub()->DrainEndpoint(c_->Context().get(), req, &r), r);
  }

  int Stats() {
    v1::StatsResponse r;
    if (int rc = c_->Check(c_->stub()->GetStats(c_->Context().get(), {}, &r)); rc) return rc;
    if (Json()) {
      std::printf("%s\n", ctl::Json(r).c_str());
      return kOk;
    }
    Table t({"METRIC", "TOTAL"});
    t.Add({"requests", std::to_string(r.requests_total())});
    t.Add({"connections open", std::to_string(r.connections_open())});
    t.Add({"errors", std::to_string(r.errors_total())});
    t.Add({"upstream connects", std::to_string(r.upstream_connects_total())});
    t.Add({"data plane config version", std::to_string(r.config_version())});
    std::fputs(t.Render().c_str(), stdout);
    return kOk;
  }

  int HealthShow() {
    v1::GetHealthRequest req;
    req.set_cluster(a_.Get("--cluster"));
    v1::HealthResponse r;
    if (int rc = c_->Check(c_->stub()->GetHealth(c_->Context().get(), req, &r)); rc) return rc;
    if (Json()) {
      std::printf("%s\n", JsonAllFields(r).c_str());
    } else {
      std::fputs(RenderHealthTable(r).c_str(), stdout);
    }
    return kOk;
  }

  int HealthWatch() {
    v1::WatchHealthRequest req;
    req.set_cluster(a_.Get("--cluster"));
    req.set_initial_state(a_.Has("--initial-state"));
    auto ctx = c_->Context(/*stream=*/true);
    auto reader = c_->stub()->WatchHealth(ctx.get(), req);
    v1::HealthEvent e;
    while (reader->Read(&e)) {
      if (Json()) {
        google::protobuf::util::JsonPrintOptions o;
        o.preserve_proto_field_names = true;
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(e, &line, o);
        std::printf("%s\n", line.c_str());
      } else {
        std::printf("%lld %s %s %s %s\n", static_cast<long long>(e.unix_time_ms()),
                    e.cluster().c_str(), e.address().c_str(), e.healthy() ? "healthy" : "unhealthy",
                    e.reason().c_str());
      }
      std::fflush(stdout);
    }
    return c_->Check(reader->Finish());
  }

  int DataplaneRestart() {
    v1::RestartDataplaneResponse r;
    if (int rc = c_->Check(c_->stub()->RestartDataplane(c_->Context().get(), {}, &r)); rc) {
      return rc;
    }
    if (Json()) {
      std::printf("%s\n", ctl::Json(r).c_str());
    } else {
      std::printf("ok: data plane pid %d replaced pid %d (ready after %lld ms; old one drains)\n",
                  r.new_pid(), r.old_pid(), static_cast<long long>(r.handover_ms()));
    }
    return kOk;
  }

  const Args& a_;
  Client* c_;
};

int Main(int argc, char** argv) {
  Args args;
  std::string error;
  if (!ParseArgs(argc, argv, &args, &error)) {
    if (error.empty()) {
      std::fputs(Usage(), stdout);
      return kOk;
    }
    return UsageError(error);
  }
  Client client(args);
  if (!client.Connect(&error)) {
    std::fprintf(stderr, "zproxyctl: %s\n", error.c_str());
    return kUsage;
  }
  return Commands(args, &client).Run();
}

}  // namespace
}  // namespace zproxy::ctl

int main(int argc, char** argv) { return zproxy::ctl::Main(argc, argv); }
