#include "controlplane/config/validate.h"

#include <gtest/gtest.h>

#include "controlplane/config/defaults.h"
#include "controlplane/config/testing/minimal_config.h"

namespace zproxy::config {
namespace {

using zproxy::v1::Config;

// A valid config each test breaks in exactly one way.
Config Base() { return testing::MinimalConfig(); }

std::string Joined(const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

// Expects exactly one error, at `path`, whose message contains `needle`.
void ExpectOne(const Config& c, const std::string& path, const std::string& needle) {
  ConfigErrors errors = ValidateConfig(c);
  ASSERT_EQ(errors.size(), 1u) << Joined(errors);
  EXPECT_EQ(errors[0].field_path, path);
  EXPECT_NE(errors[0].message.find(needle), std::string::npos) << errors[0].message;
}

TEST(Validate, BaseIsValid) { EXPECT_TRUE(ValidateConfig(Base()).empty()); }

TEST(Validate, NoListeners) {
  Config c = Base();
  c.clear_listeners();
  ExpectOne(c, "listeners", "at least one listener");
}

TEST(Validate, ListenerNameRequired) {
  Config c = Base();
  c.mutable_listeners(0)->clear_name();
  ExpectOne(c, "listeners[0].name", "required");
}

TEST(Validate, ListenerNamesUnique) {
  Config c = Base();
  auto* l = c.add_listeners();
  *l = c.listeners(0);
  l->set_address("127.0.0.1:8081");
  ExpectOne(c, "listeners[1].name", "duplicate listener name \"web\"");
}

TEST(Validate, ListenerAddressMustParse) {
  Config c = Base();
  c.mutable_listeners(0)->set_address("127.0.0.1");
  ExpectOne(c, "listeners[0].address", "missing port");
  c.mutable_listeners(0)->set_address("");
  ExpectOne(c, "listeners[0].address", "required");
}

TEST(Validate, ConnectAllowPatterns) {
  Config c = Base();
  auto* connect = c.mutable_listeners(0)->mutable_connect();
  ExpectOne(c, "listeners[0].connect.allow", "at least one pattern");
  connect->add_allow("10.0.0.5:22");
  connect->add_allow("192.168.1.0/24:*");
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
  connect->add_allow("10.0.0.0/40:80");
  ExpectOne(c, "listeners[0].connect.allow[2]", "prefix length must be 0..32");
  connect->set_allow(2, "10.0.0.300:80");
  ExpectOne(c, "listeners[0].connect.allow[2]", "not an IP literal");
  // Host-name patterns: exact and "*." suffix; anything else naming the field.
  connect->set_allow(2, "db.internal:5432");
  connect->add_allow("*.svc.cluster.local:443");
  connect->add_allow("localhost:*");
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
  connect->set_allow(3, "*:443");
  ExpectOne(c, "listeners[0].connect.allow[3]", "a wildcard is \"*.\" followed by a domain");
  connect->set_allow(3, "bad_name!.internal:443");
  ExpectOne(c, "listeners[0].connect.allow[3]", "not an IP literal, CIDR or host name");
}

TEST(Validate, ListenerAddressesUnique) {
  Config c = Base();
  auto* l = c.add_listeners();
  *l = c.listeners(0);
  l->set_name("web2");
  l->set_address("127.0.0.1:08080");  // same address, spelled differently
  ExpectOne(c, "listeners[1].address", "already used by listeners[0]");
}

TEST(Validate, RoutesOrTcpProxyNotBothNotNeither) {
  Config c = Base();
  c.mutable_listeners(0)->mutable_tcp_proxy()->set_cluster("app");
  ExpectOne(c, "listeners[0]", "not both");
  c = Base();
  c.mutable_listeners(0)->clear_routes();
  ExpectOne(c, "listeners[0]", "needs routes");
}

TEST(Validate, TunnelModeIsForHttpListeners) {
  Config c = Base();
  c.mutable_listeners(0)->set_tunnel_mode(zproxy::v1::SOCKMAP);
  EXPECT_TRUE(ValidateConfig(c).empty());
  c.mutable_listeners(0)->clear_routes();
  c.mutable_listeners(0)->mutable_tcp_proxy()->set_cluster(c.clusters(0).name());
  ExpectOne(c, "listeners[0].tunnel_mode", "tcp_proxy.mode");
}

TEST(Validate, ClusterReferencesExist) {
  Config c = Base();
  c.mutable_listeners(0)->mutable_routes(0)->set_cluster("nope");
  ExpectOne(c, "listeners[0].routes[0].cluster", "unknown cluster \"nope\"");
  c = Base();
  c.mutable_listeners(0)->clear_routes();
  c.mutable_listeners(0)->mutable_tcp_proxy()->set_cluster("pg");
  ExpectOne(c, "listeners[0].tcp_proxy.cluster", "unknown cluster \"pg\"");
}

TEST(Validate, MatchAtMostOneOfPrefixAndPath) {
  Config c = Base();
  c.mutable_listeners(0)->mutable_routes(0)->mutable_match()->set_path("/x");
  ExpectOne(c, "listeners[0].routes[0].match", "at most one of prefix and path");
}

TEST(Validate, PrefixAndPathStartWithSlash) {
  Config c = Base();
  c.mutable_listeners(0)->mutable_routes(0)->mutable_match()->set_prefix("api");
  ExpectOne(c, "listeners[0].routes[0].match.prefix", "must start with '/'");
  c = Base();
  auto* m = c.mutable_listeners(0)->mutable_routes(0)->mutable_match();
  m->clear_prefix();
  m->set_path("x");
  ExpectOne(c, "listeners[0].routes[0].match.path", "must start with '/'");
}

TEST(Validate, Hosts) {
  for (const char* good : {"a.example", "*.example.com", "localhost", "10.0.0.1", "[::1]"}) {
    std::string why;
    EXPECT_TRUE(ValidateHostPattern(good, &why)) << good << ": " << why;
  }
  for (const char* bad : {"", "a..b", "*", "a.*.b", "ex ample", "a.example:80", "[zz]", "*."}) {
    std::string why;
    EXPECT_FALSE(ValidateHostPattern(bad, &why)) << bad;
  }
  Config c = Base();
  c.mutable_listeners(0)->mutable_routes(0)->mutable_match()->add_hosts("a.*");
  ExpectOne(c, "listeners[0].routes[0].match.hosts[0]", "invalid host \"a.*\"");
}

TEST(Validate, MethodsAreTokens) {
  Config c = Base();
  auto* m = c.mutable_listeners(0)->mutable_routes(0)->mutable_match();
  m->add_methods("GET");
  m->add_methods("PURGE");
  m->add_methods("GE T");
  ExpectOne(c, "listeners[0].routes[0].match.methods[2]", "invalid method \"GE T\"");
}

TEST(Validate, ClusterNamesRequiredAndUnique) {
  Config c = Base();
  *c.add_clusters() = c.clusters(0);
  ExpectOne(c, "clusters[1].name", "duplicate cluster name \"app\"");
  c = Base();
  auto* extra = c.add_clusters();
  extra->add_endpoints()->set_address("127.0.0.1:1");
  extra->mutable_endpoints(0)->set_weight(1);
  ExpectOne(c, "clusters[1].name", "required");
}

TEST(Validate, EndpointsRequiredAndParse) {
  Config c = Base();
  c.mutable_clusters(0)->clear_endpoints();
  ExpectOne(c, "clusters[0].endpoints", "at least one endpoint");
  c = Base();
  c.mutable_clusters(0)->mutable_endpoints(0)->set_address("127.0.0.1:99999");
  ExpectOne(c, "clusters[0].endpoints[0].address", "port");
}

TEST(Validate, EndpointWeightRange) {
  Config c = Base();
  c.mutable_clusters(0)->mutable_endpoints(0)->set_weight(1001);
  ExpectOne(c, "clusters[0].endpoints[0].weight", "1..1000");
  c.mutable_clusters(0)->mutable_endpoints(0)->set_weight(0);
  ExpectOne(c, "clusters[0].endpoints[0].weight", "got 0");
  c.mutable_clusters(0)->mutable_endpoints(0)->set_weight(1000);
  EXPECT_TRUE(ValidateConfig(c).empty());
}

TEST(Validate, BufCount) {
  Config c = Base();
  c.mutable_io_uring()->set_buf_count(1000);
  ExpectOne(c, "io_uring.buf_count", "power of two");
  c.mutable_io_uring()->set_buf_count(65536);
  ExpectOne(c, "io_uring.buf_count", "power of two in 1..32768");
  c.mutable_io_uring()->set_buf_count(32768);
  EXPECT_TRUE(ValidateConfig(c).empty());
}

TEST(Validate, BufSize) {
  Config c = Base();
  c.mutable_io_uring()->set_buf_size(4095);
  ExpectOne(c, "io_uring.buf_size", "4096..1048576");
  c.mutable_io_uring()->set_buf_size((1 << 20) + 1);
  ExpectOne(c, "io_uring.buf_size", "4096..1048576");
  c.mutable_io_uring()->set_buf_size(1 << 20);
  EXPECT_TRUE(ValidateConfig(c).empty());
}

TEST(Validate, SqDepth) {
  Config c = Base();
  c.mutable_io_uring()->set_sq_depth(3000);
  ExpectOne(c, "io_uring.sq_depth", "power of two");
}

TEST(Validate, MaxHeaders) {
  Config c = Base();
  c.mutable_listeners(0)->mutable_http()->set_max_headers(129);
  ExpectOne(c, "listeners[0].http.max_headers", "1..128");
}

TEST(Validate, Workers) {
  Config c = Base();
  c.set_workers(1025);
  ExpectOne(c, "workers", "at most 1024");
  c.set_workers(1024);
  EXPECT_TRUE(ValidateConfig(c).empty());
}

TEST(Validate, MetricsAddress) {
  Config c = Base();
  c.set_metrics_address("nonsense");
  ExpectOne(c, "metrics_address", "invalid address");
  c.set_metrics_address("127.0.0.1:8080");
  ExpectOne(c, "metrics_address", "already used by listeners[0]");
  c.set_metrics_address("127.0.0.1:9901");
  EXPECT_TRUE(ValidateConfig(c).empty());
}

TEST(Validate, AdminAddress) {
  Config c = Base();
  c.set_admin_address("unix:relative.sock");
  ExpectOne(c, "admin_address", "absolute");
}

TEST(Validate, CollectsAllErrors) {
  Config c = Base();
  c.set_workers(5000);
  c.mutable_io_uring()->set_sq_depth(3);
  c.mutable_listeners(0)->mutable_routes(0)->set_cluster("x");
  c.mutable_clusters(0)->mutable_endpoints(0)->set_weight(0);
  EXPECT_EQ(ValidateConfig(c).size(), 4u) << Joined(ValidateConfig(c));
}

// A TLS listener whose certificate files are not looked at (tests below break the
// block in ways that are reported before any file is opened, or name a missing file).
Config WithTls() {
  Config c = Base();
  auto* tls = c.mutable_listeners(0)->mutable_tls();
  ApplyDefaults(tls);
  return c;
}

TEST(Validate, TlsNeedsCertificates) {
  ExpectOne(WithTls(), "listeners[0].tls.certificates", "at least one certificate");
}

TEST(Validate, TlsUnreadableCertificateNamesTheField) {
  Config c = WithTls();
  auto* cert = c.mutable_listeners(0)->mutable_tls()->add_certificates();
  cert->set_cert("/nonexistent/zproxy-test.pem");
  cert->set_key("/nonexistent/zproxy-test.key");
  ExpectOne(c, "listeners[0].tls.certificates[0].cert", "cannot read");
}

TEST(Validate, TlsKeyRequired) {
  Config c = WithTls();
  c.mutable_listeners(0)->mutable_tls()->add_certificates()->set_cert("/x.pem");
  ExpectOne(c, "listeners[0].tls.certificates[0].key", "required");
}

TEST(Validate, TlsAlpnTakesH2RejectsUnknownAndBadMinVersion) {
  Config c = WithTls();
  auto* tls = c.mutable_listeners(0)->mutable_tls();
  tls->add_alpn("spdy/3");
  tls->set_min_version("TLS1_0");
  ConfigErrors errors = ValidateConfig(c);
  std::string all = Joined(errors);
  // alpn[0] and [1] are the defaults (h2, http/1.1): accepted.
  EXPECT_EQ(all.find("listeners[0].tls.alpn[0]"), std::string::npos) << all;
  EXPECT_EQ(all.find("listeners[0].tls.alpn[1]"), std::string::npos) << all;
  EXPECT_NE(all.find("listeners[0].tls.alpn[2]"), std::string::npos) << all;
  EXPECT_NE(all.find("unsupported protocol \"spdy/3\""), std::string::npos) << all;
  EXPECT_NE(all.find("listeners[0].tls.min_version"), std::string::npos) << all;
}

TEST(Validate, TlsDefaults) {
  Config c = WithTls();
  const auto& tls = c.listeners(0).tls();
  EXPECT_EQ(tls.min_version(), "TLS1_2");
  ASSERT_EQ(tls.alpn_size(), 2);
  EXPECT_EQ(tls.alpn(0), "h2");
  EXPECT_EQ(tls.alpn(1), "http/1.1");
  EXPECT_EQ(tls.session_ticket_rotation_s(), 3600u);
  EXPECT_EQ(tls.handshake_timeout_ms(), 10000u);
}

TEST(Validate, ClusterTlsVerifiesByDefaultAndNeedsCa) {
  Config c = Base();
  c.mutable_clusters(0)->mutable_tls()->set_sni("app.internal");
  ApplyDefaults(c.mutable_clusters(0)->mutable_tls());
  EXPECT_TRUE(c.clusters(0).tls().verify());
  ExpectOne(c, "clusters[0].tls.ca", "CA file");
  c.mutable_clusters(0)->mutable_tls()->set_verify(false);
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
}

TEST(Validate, ClusterTlsTakesHttpHealthChecks) {
  Config c = Base();
  c.mutable_clusters(0)->mutable_tls()->set_verify(false);
  c.mutable_clusters(0)->mutable_health_check()->set_http_path("/healthz");
  ApplyDefaults(c.mutable_clusters(0));
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
}

// A gRPC check on an http2 cluster, as docs/health-checks.md documents it (with defaults
// applied).
Config GrpcChecked() {
  Config c = Base();
  c.mutable_clusters(0)->set_protocol(zproxy::v1::HTTP2);
  c.mutable_clusters(0)->mutable_health_check()->set_grpc_service("app.Svc");
  ApplyDefaults(c.mutable_clusters(0));
  return c;
}

TEST(Validate, GrpcHealthCheckOnHttp2Cluster) {
  Config c = GrpcChecked();
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
  // "" is a service name too: the server's overall health.
  c.mutable_clusters(0)->mutable_health_check()->set_grpc_service("");
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
}

TEST(Validate, GrpcHealthCheckNeedsHttp2) {
  Config c = GrpcChecked();
  c.mutable_clusters(0)->set_protocol(zproxy::v1::HTTP1);
  ExpectOne(c, "clusters[0].health_check.grpc_service", "protocol: http2");
  c.mutable_clusters(0)->clear_protocol();  // unspecified = http1
  ExpectOne(c, "clusters[0].health_check.grpc_service", "protocol: http2");
}

TEST(Validate, GrpcHealthCheckExcludesHttpPath) {
  Config c = GrpcChecked();
  c.mutable_clusters(0)->mutable_health_check()->set_http_path("/healthz");
  ExpectOne(c, "clusters[0].health_check.grpc_service", "not both");
}

TEST(Validate, GrpcHealthCheckExcludesExpectedStatuses) {
  Config c = GrpcChecked();
  c.mutable_clusters(0)->mutable_health_check()->add_expected_statuses(200);
  ExpectOne(c, "clusters[0].health_check.grpc_service", "SERVING");
}

TEST(Validate, Http2ClusterKeepsTcpAndHttpChecks) {
  Config c = GrpcChecked();
  c.mutable_clusters(0)->mutable_health_check()->clear_grpc_service();
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
  c.mutable_clusters(0)->mutable_health_check()->set_http_path("/healthz");
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
}

}  // namespace
}  // namespace zproxy::config
