#include "controlplane/config/validate.h"

#include <arpa/inet.h>
#include <pwd.h>

#include <cctype>
#include <map>
#include <set>
#include <string>

#include "common/connect_allow.h"
#include "common/net_address.h"
#include "common/route_policy_rules.h"
#include "controlplane/config/tls_files.h"
#include "controlplane/config/validate_config_source.h"
#include "controlplane/dns/dns_settings.h"

namespace zproxy::config {
namespace {

using zproxy::v1::Cluster;
using zproxy::v1::Config;
using zproxy::v1::Listener;
using zproxy::v1::Route;
using zproxy::v1::Sidecar;

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

std::string Index(const std::string& base, int i) { return base + "[" + std::to_string(i) + "]"; }

class Validator {
 public:
  explicit Validator(const Config& config) : config_(config) {}

  ConfigErrors Run() {
    CheckClusters();
    CheckListeners();
    if (config_.has_sidecar()) CheckSidecar();
    CheckProcess();
    CheckIoUring();
    return std::move(errors_);
  }

 private:
  void Error(std::string path, std::string message) {
    errors_.push_back(ConfigError{std::move(path), std::move(message), "", 0, 0});
  }

  // Returns the normalized address ("1.2.3.4:80") or "" after reporting an error.
  std::string CheckAddress(const std::string& path, const std::string& text) {
    if (text.empty()) {
      Error(path, "address is required (\"host:port\")");
      return "";
    }
    NetAddress addr;
    std::string why;
    if (!ParseNetAddress(text, &addr, &why)) {
      Error(path, "invalid address " + Quote(text) + ": " + why);
      return "";
    }
    return addr.ToString();
  }

  // An IP literal or a host name zproxyd resolves (DNS discovery): never looked up here,
  // since a name may not resolve yet when the config is written.
  void CheckEndpointAddress(const std::string& path, const std::string& text) {
    if (text.empty()) {
      Error(path, "address is required (\"host:port\")");
      return;
    }
    std::string host, why;
    uint16_t port = 0;
    if (!SplitHostPort(text, &host, &port, &why)) {
      Error(path, "invalid address " + Quote(text) + ": " + why);
    } else if (!IsIpLiteral(host) && !IsDnsName(host, &why)) {
      Error(path, "invalid address " + Quote(text) + ": not an IP address, and " + why);
    }
  }

  void CheckDns(const std::string& path, const zproxy::v1::DnsDiscovery& d, bool top_level) {
    if (!top_level && d.resolvers_size() > 0) {
      Error(path + ".resolvers", "can only be set in the top-level dns block");
    }
    if (!top_level && d.timeout_ms() != 0) {
      Error(path + ".timeout_ms", "can only be set in the top-level dns block");
    }
    for (int i = 0; i < d.resolvers_size(); ++i) {
      const std::string& r = d.resolvers(i);
      std::string host = r, why;
      uint16_t port = 53;
      const bool has_port = r.find("]:") != std::string::npos ||
                            (r.find(':') != std::string::npos && r.find(':') == r.rfind(':'));
      if (has_port && !SplitHostPort(r, &host, &port, &why)) {
        Error(Index(path + ".resolvers", i), "invalid resolver " + Quote(r) + ": " + why);
      } else if (!IsIpLiteral(host)) {
        Error(Index(path + ".resolvers", i),
              "a resolver is an IP address with an optional port, got " + Quote(r));
      } else if (port == 0) {
        Error(Index(path + ".resolvers", i), "port must be 1-65535, got 0");
      }
    }
    dns::Family family;
    if (!dns::ParseFamily(d.family(), &family)) {
      Error(path + ".family", "must be any, v4 or v6, got " + Quote(d.family()));
    }
    if (d.min_refresh_ms() != 0 && d.max_refresh_ms() != 0 &&
        d.min_refresh_ms() > d.max_refresh_ms()) {
      Error(path + ".min_refresh_ms", "must not exceed max_refresh_ms (" +
                                          std::to_string(d.min_refresh_ms()) + " > " +
                                          std::to_string(d.max_refresh_ms()) + ")");
    }
  }

  void CheckClusters() {
    if (config_.has_dns()) CheckDns("dns", config_.dns(), /*top_level=*/true);
    for (int i = 0; i < config_.clusters_size(); ++i) {
      const Cluster& c = config_.clusters(i);
      std::string path = Index("clusters", i);
      if (c.name().empty()) {
        Error(path + ".name", "cluster name is required");
      } else if (!cluster_names_.insert(c.name()).second) {
        Error(path + ".name", "duplicate cluster name " + Quote(c.name()));
      }
      if (c.type() == zproxy::v1::CLUSTER_TYPE_ORIGINAL_DESTINATION) {
        CheckOriginalDestinationCluster(path, c);
      } else if (c.endpoints_size() == 0) {
        Error(path + ".endpoints", "at least one endpoint is required");
      }
      for (int j = 0; j < c.endpoints_size(); ++j) {
        const auto& e = c.endpoints(j);
        std::string ep = Index(path + ".endpoints", j);
        CheckEndpointAddress(ep + ".address", e.address());
        if (!e.resolved_from().empty()) {
          Error(ep + ".resolved_from", "is set by zproxyd for the data plane, not in a config");
        }
        if (e.weight() < 1 || e.weight() > Limits::kMaxEndpointWeight) {
          Error(ep + ".weight", "weight must be 1.." + std::to_string(Limits::kMaxEndpointWeight) +
                                    ", got " + std::to_string(e.weight()));
        }
      }
      if (c.has_tls()) CheckClusterTls(path, c);
      if (c.has_dns()) CheckDns(path + ".dns", c.dns(), /*top_level=*/false);
      route_policy::PolicyErrors policy_errors;
      route_policy::CheckClusterPolicy(c, path, &policy_errors);
      AddPolicyErrors(policy_errors);
      if (c.panic_threshold_percent() > 100) {
        Error(path + ".panic_threshold_percent",
              "must be 0..100, got " + std::to_string(c.panic_threshold_percent()));
      }
      if (c.has_health_check() && !c.health_check().http_path().empty() &&
          c.health_check().http_path()[0] != '/') {
        Error(path + ".health_check.http_path",
              "must start with '/', got " + Quote(c.health_check().http_path()));
      }
      if (c.has_health_check()) CheckGrpcHealth(path, c);
      for (int k = 0; c.has_health_check() && k < c.health_check().expected_statuses_size(); ++k) {
        const uint32_t s = c.health_check().expected_statuses(k);
        if (s < 100 || s > 599) {
          Error(Index(path + ".health_check.expected_statuses", k),
                "must be an HTTP status 100..599, got " + std::to_string(s));
        }
      }
    }
  }

  // type original_destination: the address comes from each connection, so nothing that
  // names or probes endpoints applies (docs/sidecar.md).
  void CheckOriginalDestinationCluster(const std::string& path, const Cluster& c) {
    original_dst_clusters_.insert(c.name());
    const std::string why =
        " (type original_destination forwards to each client's dialled address)";
    if (c.endpoints_size() > 0) Error(path + ".endpoints", "must be empty" + why);
    if (c.has_health_check()) Error(path + ".health_check", "not supported" + why);
    if (c.has_tls()) Error(path + ".tls", "not supported" + why);
    if (c.protocol() == zproxy::v1::HTTP2)
      Error(path + ".protocol", "http2 is not supported" + why);
  }

  // A cluster of type original_destination only makes sense where the listener recovers
  // the client's original destination.
  void CheckOriginalDestinationRef(const std::string& path, const Listener& l,
                                   const std::string& cluster) {
    if (!l.original_destination() && original_dst_clusters_.count(cluster) != 0) {
      Error(path, "cluster " + Quote(cluster) +
                      " is of type original_destination: the listener needs "
                      "original_destination: true");
    }
  }

  // A gRPC health check speaks HTTP/2 to the endpoint, and it is the check's only kind.
  void CheckGrpcHealth(const std::string& cluster_path, const Cluster& c) {
    const auto& hc = c.health_check();
    if (!hc.has_grpc_service()) return;
    const std::string path = cluster_path + ".health_check.grpc_service";
    if (c.protocol() != zproxy::v1::HTTP2) {
      Error(path, "gRPC health checks need the cluster's protocol: http2");
    }
    if (!hc.http_path().empty()) {
      Error(path, "a check is gRPC or HTTP: set grpc_service or http_path, not both");
    }
    if (hc.expected_statuses_size() > 0) {
      Error(path, "expected_statuses are HTTP statuses: a gRPC check is healthy on SERVING");
    }
  }

  void CheckClusterTls(const std::string& cluster_path, const Cluster& c) {
    std::string path = cluster_path + ".tls";
    const auto& t = c.tls();
    if (!t.ca_pem().empty() || !t.cert_pem().empty() || !t.key_pem().empty()) {
      Error(path + ".tls",
            "ca_pem, cert_pem and key_pem are filled in by zproxyd from the "
            "files; name the files in ca, cert and key");
    }
    bool verify = !t.has_verify() || t.verify();
    if (!t.ca().empty()) {
      std::string why = CheckCaFile(t.ca());
      if (!why.empty()) Error(path + ".ca", why);
    } else if (verify) {
      Error(path + ".ca",
            "a CA file (PEM) is required to verify the endpoints' certificates (or verify: false)");
    }
    if (t.cert().empty() != t.key().empty()) {
      Error(path + (t.cert().empty() ? ".cert" : ".key"),
            "a client certificate needs both cert and key");
    } else if (!t.cert().empty()) {
      bool bad_key = false;
      std::string why = CheckCertificateFiles(t.cert(), t.key(), &bad_key);
      if (!why.empty()) Error(path + (bad_key ? ".key" : ".cert"), why);
    }
    if (!t.min_version().empty() && t.min_version() != "TLS1_2" && t.min_version() != "TLS1_3") {
      Error(path + ".min_version",
            "must be \"TLS1_2\" or \"TLS1_3\", got " + Quote(t.min_version()));
    }
    if (!t.sni().empty()) {
      std::string why;
      if (!ValidateHostPattern(t.sni(), &why) || t.sni().find('*') != std::string::npos) {
        Error(path + ".sni", "invalid server name " + Quote(t.sni()));
      }
    }
  }

  void CheckClusterRef(const std::string& path, const std::string& name) {
    if (name.empty()) {
      Error(path, "cluster is required");
    } else if (cluster_names_.count(name) == 0) {
      Error(path, "unknown cluster " + Quote(name));
    }
  }

  void AddPolicyErrors(const route_policy::PolicyErrors& errors) {
    for (const auto& e : errors) Error(e.path, e.message);
  }

  void CheckRoute(const std::string& path, const Route& r) {
    // A route that answers itself (redirect, direct response) names no cluster.
    if (route_policy::Forwards(r)) CheckClusterRef(path + ".cluster", r.cluster());
    route_policy::PolicyErrors policy_errors;
    route_policy::CheckRoute(r, path, &policy_errors);
    AddPolicyErrors(policy_errors);
    const auto& m = r.match();
    if (!m.prefix().empty() && !m.path().empty()) {
      Error(path + ".match", "give at most one of prefix and path");
    }
    if (!m.prefix().empty() && m.prefix()[0] != '/') {
      Error(path + ".match.prefix", "must start with '/', got " + Quote(m.prefix()));
    }
    if (!m.path().empty() && m.path()[0] != '/') {
      Error(path + ".match.path", "must start with '/', got " + Quote(m.path()));
    }
    for (int k = 0; k < m.hosts_size(); ++k) {
      std::string why;
      if (!ValidateHostPattern(m.hosts(k), &why)) {
        Error(Index(path + ".match.hosts", k), "invalid host " + Quote(m.hosts(k)) + ": " + why);
      }
    }
    for (int k = 0; k < m.methods_size(); ++k) {
      if (!IsHttpToken(m.methods(k))) {
        Error(Index(path + ".match.methods", k),
              "invalid method " + Quote(m.methods(k)) + " (must be an HTTP token)");
      }
    }
  }

  // tcp_proxy.sni_routes (TLS pass-through routed by SNI): known clusters, server names a
  // client can send (host names or "*." wildcards: SNI never carries an IP address, RFC
  // 6066), ALPN protocol names, and no (server name, alpn) pair twice: the second entry
  // could never be chosen.
  void CheckSniRoutes(const std::string& tcp_path, const zproxy::v1::TcpProxy& t) {
    std::map<std::string, std::string> seen;  // server name + alpn set -> first field path
    for (int i = 0; i < t.sni_routes_size(); ++i) {
      const auto& r = t.sni_routes(i);
      std::string path = Index(tcp_path + ".sni_routes", i);
      CheckClusterRef(path + ".cluster", r.cluster());
      if (r.server_names_size() == 0 && r.alpn_size() == 0) {
        Error(path + ".server_names",
              "at least one server name is required (or alpn, to match any name)");
      }
      std::set<std::string> alpn;
      for (int k = 0; k < r.alpn_size(); ++k) {
        const std::string& p = r.alpn(k);
        if (p.empty() || p.size() > 255) {
          Error(Index(path + ".alpn", k), "protocol names are 1..255 bytes");
        } else if (!alpn.insert(p).second) {
          Error(Index(path + ".alpn", k), "duplicate protocol " + Quote(p));
        }
      }
      std::string alpn_key;
      for (const std::string& p : alpn) alpn_key += "\n" + p;
      auto claim = [&](const std::string& name, const std::string& field) {
        auto [it, fresh] = seen.emplace(name + alpn_key, field);
        if (fresh) return;
        std::string what =
            name.empty() ? "an entry without server_names" : "server name " + Quote(name);
        Error(field, "duplicate " + what + (alpn.empty() ? "" : " with the same alpn") +
                         " (already in " + it->second + ")");
      };
      if (r.server_names_size() == 0 && !alpn.empty()) claim("", path + ".alpn");
      for (int k = 0; k < r.server_names_size(); ++k) {
        std::string field = Index(path + ".server_names", k);
        std::string name = r.server_names(k);
        for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
        std::string why;
        bool ip = (name.find_first_not_of("0123456789.") == std::string::npos &&
                   name.find_first_of("0123456789") != std::string::npos) ||
                  name.find_first_of("[]:") != std::string::npos;
        if (ip) {
          Error(field, "invalid server name " + Quote(r.server_names(k)) +
                           ": SNI carries host names, never IP addresses");
        } else if (name == "*") {
          Error(field, "invalid server name \"*\": leave it to tcp_proxy.cluster (the default)");
        } else if (!ValidateHostPattern(name, &why)) {
          Error(field, "invalid server name " + Quote(r.server_names(k)) + ": " + why);
        } else {
          claim(name, field);
        }
      }
    }
  }

  void CheckListenerTls(const std::string& listener_path, const Listener& l) {
    std::string path = listener_path + ".tls";
    const auto& t = l.tls();
    if (l.has_tcp_proxy()) Error(path, "TLS termination is for HTTP listeners (routes) only");
    if (t.certificates_size() == 0) {
      Error(path + ".certificates", "at least one certificate { cert, key } is required");
    }
    for (int k = 0; k < t.certificates_size(); ++k) {
      const auto& c = t.certificates(k);
      std::string cp = Index(path + ".certificates", k);
      if (c.cert().empty()) Error(cp + ".cert", "certificate file (PEM) is required");
      if (c.key().empty()) Error(cp + ".key", "private key file (PEM) is required");
      if (!c.cert_pem().empty() || !c.key_pem().empty()) {
        Error(cp + (c.cert_pem().empty() ? ".key_pem" : ".cert_pem"),
              "is filled in by zproxyd from the files; name the files in cert and key");
      }
      if (c.cert().empty() || c.key().empty()) continue;
      bool bad_key = false;
      std::string why = CheckCertificateFiles(c.cert(), c.key(), &bad_key);
      if (!why.empty()) Error(cp + (bad_key ? ".key" : ".cert"), why);
    }
    if (t.min_version() != "TLS1_2" && t.min_version() != "TLS1_3") {
      Error(path + ".min_version",
            "must be \"TLS1_2\" or \"TLS1_3\", got " + Quote(t.min_version()));
    }
    for (int k = 0; k < t.alpn_size(); ++k) {
      const std::string& p = t.alpn(k);
      if (p.empty() || p.size() > 255) {
        Error(Index(path + ".alpn", k), "protocol names are 1..255 bytes");
      } else if (p != "h2" && p != "http/1.1" && p != "http/1.0") {
        Error(Index(path + ".alpn", k), "unsupported protocol " + Quote(p) +
                                            " (this listener speaks h2, http/1.1, http/1.0)");
      }
    }
  }

  void CheckConnect(const std::string& listener_path, const Listener& l) {
    std::string path = listener_path + ".connect";
    if (l.has_tcp_proxy()) Error(path, "CONNECT is for HTTP listeners (routes) only");
    if (l.connect().allow_size() == 0) {
      Error(path + ".allow", "at least one pattern is required (e.g. \"10.0.0.5:22\")");
    }
    for (int k = 0; k < l.connect().allow_size(); ++k) {
      ConnectAllowRule rule;
      std::string why;
      if (!ParseConnectAllowRule(l.connect().allow(k), &rule, &why)) {
        Error(Index(path + ".allow", k), why);
      }
    }
  }

  void CheckListeners() {
    if (config_.listeners_size() == 0) Error("listeners", "at least one listener is required");
    std::set<std::string> names;
    std::map<std::string, std::string> addresses;  // normalized address -> listener path
    for (int i = 0; i < config_.listeners_size(); ++i) {
      const Listener& l = config_.listeners(i);
      std::string path = Index("listeners", i);
      if (l.name().empty()) {
        Error(path + ".name", "listener name is required");
      } else if (!names.insert(l.name()).second) {
        Error(path + ".name", "duplicate listener name " + Quote(l.name()));
      }
      std::string addr = CheckAddress(path + ".address", l.address());
      if (!addr.empty()) {
        auto [it, inserted] = addresses.emplace(addr, path);
        if (!inserted) {
          Error(path + ".address", "address " + addr + " is already used by " + it->second);
        }
      }
      bool has_routes = l.routes_size() > 0;
      if (has_routes && l.has_tcp_proxy()) {
        Error(path, "give either routes (HTTP) or tcp_proxy (L4), not both");
      } else if (!has_routes && !l.has_tcp_proxy()) {
        Error(path, "needs routes (HTTP) or tcp_proxy (L4)");
      }
      if (l.has_tcp_proxy()) CheckClusterRef(path + ".tcp_proxy.cluster", l.tcp_proxy().cluster());
      if (l.has_tcp_proxy()) CheckSniRoutes(path + ".tcp_proxy", l.tcp_proxy());
      // AUTO is also what defaults give an HTTP listener later turned into a tcp_proxy one.
      if (l.has_tcp_proxy() && l.tunnel_mode() != zproxy::v1::PASSTHROUGH_MODE_UNSPECIFIED &&
          l.tunnel_mode() != zproxy::v1::AUTO) {
        Error(path + ".tunnel_mode",
              "is for HTTP listeners (WebSocket and CONNECT tunnels); a tcp_proxy listener "
              "sets tcp_proxy.mode");
      }
      for (int j = 0; j < l.routes_size(); ++j) CheckRoute(Index(path + ".routes", j), l.routes(j));
      for (int j = 0; j < l.routes_size(); ++j) {
        CheckOriginalDestinationRef(Index(path + ".routes", j) + ".cluster", l,
                                    l.routes(j).cluster());
      }
      if (l.has_tcp_proxy()) {
        CheckOriginalDestinationRef(path + ".tcp_proxy.cluster", l, l.tcp_proxy().cluster());
        for (int j = 0; j < l.tcp_proxy().sni_routes_size(); ++j) {
          CheckOriginalDestinationRef(Index(path + ".tcp_proxy.sni_routes", j) + ".cluster", l,
                                      l.tcp_proxy().sni_routes(j).cluster());
        }
      }
      if (l.has_tls()) CheckListenerTls(path, l);
      if (l.has_connect()) CheckConnect(path, l);
      if (l.has_http()) {
        const auto& h = l.http();
        if (h.max_headers() == 0 || h.max_headers() > Limits::kMaxHeaders) {
          Error(path + ".http.max_headers", "must be 1.." + std::to_string(Limits::kMaxHeaders) +
                                                ", got " + std::to_string(h.max_headers()));
        }
        if (h.http2_max_concurrent_streams() > 10000) {
          Error(path + ".http.http2_max_concurrent_streams",
                "must be 1..10000, got " + std::to_string(h.http2_max_concurrent_streams()));
        }
        if (h.max_request_line_bytes() > h.max_header_bytes()) {
          Error(path + ".http.max_request_line_bytes",
                "must not exceed max_header_bytes (" + std::to_string(h.max_header_bytes()) + ")");
        }
      }
    }
    listener_addresses_ = std::move(addresses);
  }

  // sidecar (docs/sidecar.md): where the programs attach and where they send connections.
  void CheckSidecar() {
    const auto& s = config_.sidecar();
    CheckInbound(s);
    // Inbound only (sk_lookup needs no cgroup): cgroup and outbound_listener both empty.
    if (!s.inbound_listener().empty() && s.cgroup().empty() && s.outbound_listener().empty()) {
      CheckExclusions(s);
      return;
    }
    if (s.cgroup().empty() || s.cgroup()[0] != '/') {
      Error("sidecar.cgroup",
            "must be an absolute path of a cgroup v2 directory, got " + Quote(s.cgroup()));
    }
    const Listener* out = nullptr;
    for (const auto& l : config_.listeners()) {
      if (l.name() == s.outbound_listener()) out = &l;
    }
    if (s.outbound_listener().empty()) {
      Error("sidecar.outbound_listener",
            "is required (the listener intercepted connections go to)");
    } else if (out == nullptr) {
      Error("sidecar.outbound_listener", "unknown listener " + Quote(s.outbound_listener()));
    } else if (!out->original_destination()) {
      Error("sidecar.outbound_listener",
            "listener " + Quote(s.outbound_listener()) + " needs original_destination: true");
    }
    CheckExclusions(s);
  }

  // inbound_listener / inbound_ports (the sk_lookup program): a known listener and ports.
  void CheckInbound(const Sidecar& s) {
    if (s.inbound_listener().empty()) {
      if (s.inbound_ports_size() > 0) {
        Error("sidecar.inbound_ports", "needs sidecar.inbound_listener");
      }
      return;
    }
    // An unknown inbound_listener is zproxyd's warning, not an error here: the issue's
    // contract example names one its listeners lack, and checks outside load it as is.
    if (s.inbound_ports_size() == 0) {
      Error("sidecar.inbound_ports", "is required with inbound_listener (the ports to take)");
    }
    for (int i = 0; i < s.inbound_ports_size(); ++i) {
      if (s.inbound_ports(i) < 1 || s.inbound_ports(i) > 65535) {
        Error(Index("sidecar.inbound_ports", i),
              "must be a port 1..65535, got " + std::to_string(s.inbound_ports(i)));
      }
    }
  }

  void CheckExclusions(const Sidecar& s) {
    for (int i = 0; i < s.exclude_ports_size(); ++i) {
      if (s.exclude_ports(i) < 1 || s.exclude_ports(i) > 65535) {
        Error(Index("sidecar.exclude_ports", i),
              "must be a port 1..65535, got " + std::to_string(s.exclude_ports(i)));
      }
    }
    for (int i = 0; i < s.exclude_cidrs_size(); ++i) {
      if (!IsCidr(s.exclude_cidrs(i))) {
        Error(Index("sidecar.exclude_cidrs", i),
              "invalid CIDR " + Quote(s.exclude_cidrs(i)) + " (e.g. 10.0.0.0/8, fd00::/8)");
      }
    }
  }

  static bool IsCidr(const std::string& text) {
    size_t slash = text.find('/');
    std::string ip = text.substr(0, slash);
    unsigned char buf[16];
    int max = inet_pton(AF_INET, ip.c_str(), buf) == 1    ? 32
              : inet_pton(AF_INET6, ip.c_str(), buf) == 1 ? 128
                                                          : -1;
    if (max < 0) return false;
    if (slash == std::string::npos) return true;
    std::string len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    return std::stoi(len) <= max;
  }

  void CheckProcess() {
    const std::string& format = config_.access_log_format();
    if (!format.empty() && format != "text" && format != "json") {
      Error("access_log_format", "must be \"text\" or \"json\", got " + Quote(format));
    }
    if (config_.workers() > Limits::kMaxWorkers) {
      Error("workers", "must be at most " + std::to_string(Limits::kMaxWorkers) + ", got " +
                           std::to_string(config_.workers()));
    }
    if (!config_.metrics_address().empty()) {
      std::string addr = CheckAddress("metrics_address", config_.metrics_address());
      auto it = listener_addresses_.find(addr);
      if (!addr.empty() && it != listener_addresses_.end()) {
        Error("metrics_address", "address " + addr + " is already used by " + it->second);
      }
    }
    const std::string& admin = config_.admin_address();
    if (admin.rfind("unix:", 0) == 0) {
      std::string p = admin.substr(5);
      if (p.empty() || p[0] != '/') {
        Error("admin_address", "unix socket path must be absolute, got " + Quote(admin));
      } else if (p.size() >= 108) {
        Error("admin_address", "unix socket path is longer than 107 bytes");
      }
    } else if (!admin.empty()) {
      CheckAddress("admin_address", admin);
      // The Admin API changes routing: over TCP only with mutual TLS, never plaintext.
      const auto& tls = config_.admin_tls();
      if (tls.cert().empty() && tls.key().empty() && tls.client_ca().empty()) {
        Error("admin_tls", "TCP admin_address " + Quote(admin) +
                               " needs admin_tls { cert, key, client_ca } (plaintext TCP is "
                               "refused; use unix:/path for a local socket)");
      } else {
        if (tls.cert().empty()) Error("admin_tls.cert", "server certificate (PEM) is required");
        if (tls.key().empty()) Error("admin_tls.key", "server private key (PEM) is required");
        if (tls.client_ca().empty()) {
          Error("admin_tls.client_ca",
                "client CA (PEM) is required: clients must present a "
                "certificate (mutual TLS)");
        }
      }
    }
    if (!config_.state_dir().empty() && config_.state_dir()[0] != '/') {
      Error("state_dir", "must be an absolute path, got " + Quote(config_.state_dir()));
    }
    if (!config_.dataplane_user().empty()) {
      // Resolved here so a typo is refused with the field named, not by a data plane
      // that cannot start.
      if (getpwnam(config_.dataplane_user().c_str()) == nullptr) {
        Error("dataplane_user", "no such user " + Quote(config_.dataplane_user()));
      } else if (config_.dataplane_keep_privileges()) {
        Error("dataplane_keep_privileges",
              "true keeps every capability, so dataplane_user has no effect; set one of them");
      }
    }
    if (!config_.bpffs_path().empty() && config_.bpffs_path()[0] != '/') {
      Error("bpffs_path", "must be an absolute path, got " + Quote(config_.bpffs_path()));
    }
  }

  void CheckIoUring() {
    const auto& u = config_.io_uring();
    if (!IsPowerOfTwo(u.sq_depth()) || u.sq_depth() > Limits::kMaxSqDepth) {
      Error("io_uring.sq_depth", "must be a power of two in 1.." +
                                     std::to_string(Limits::kMaxSqDepth) + ", got " +
                                     std::to_string(u.sq_depth()));
    }
    if (!IsPowerOfTwo(u.buf_count()) || u.buf_count() > Limits::kMaxBufCount) {
      Error("io_uring.buf_count", "must be a power of two in 1.." +
                                      std::to_string(Limits::kMaxBufCount) + ", got " +
                                      std::to_string(u.buf_count()));
    }
    if (u.buf_size() < Limits::kMinBufSize || u.buf_size() > Limits::kMaxBufSize) {
      Error("io_uring.buf_size", "must be " + std::to_string(Limits::kMinBufSize) + ".." +
                                     std::to_string(Limits::kMaxBufSize) + " bytes, got " +
                                     std::to_string(u.buf_size()));
    }
  }

  const Config& config_;
  std::set<std::string> cluster_names_;
  std::set<std::string> original_dst_clusters_;
  std::map<std::string, std::string> listener_addresses_;
  ConfigErrors errors_;
};

bool IsLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool IsHostName(const std::string& name, std::string* error) {
  if (name.empty()) return *error = "empty name", false;
  if (name.size() > 253) return *error = "longer than 253 characters", false;
  size_t label = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0) return *error = "empty label", false;
      if (label > 63) return *error = "label longer than 63 characters", false;
      label = 0;
    } else if (!IsLabelChar(name[i])) {
      return *error = std::string("invalid character '") + name[i] + "'", false;
    } else {
      ++label;
    }
  }
  return true;
}

}  // namespace

bool ValidateHostPattern(const std::string& host, std::string* error) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    in6_addr a;
    std::string inner = host.substr(1, host.size() - 2);
    if (inet_pton(AF_INET6, inner.c_str(), &a) == 1) return true;
    *error = "not an IPv6 address";
    return false;
  }
  if (host.rfind("*.", 0) == 0) return IsHostName(host.substr(2), error);
  if (host.find('*') != std::string::npos) {
    *error = "a wildcard is only allowed as a leading \"*.\"";
    return false;
  }
  if (host.find(':') != std::string::npos) {
    *error = "hosts match without a port; IPv6 literals need brackets";
    return false;
  }
  return IsHostName(host, error);
}

bool IsHttpToken(const std::string& text) {
  if (text.empty()) return false;
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  for (char c : text) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              kExtra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

ConfigErrors ValidateConfig(const zproxy::v1::Config& config) {
  ConfigErrors errors = Validator(config).Run();
  ValidateConfigSource(config, &errors);
  return errors;
}

}  // namespace zproxy::config
