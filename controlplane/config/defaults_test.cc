#include "controlplane/config/defaults.h"

#include <gtest/gtest.h>

namespace zproxy::config {
namespace {

TEST(Defaults, FillsEmptyConfig) {
  zproxy::v1::Config c;
  c.add_listeners()->set_name("web");
  auto* l4 = c.add_listeners();
  l4->mutable_tcp_proxy()->set_cluster("pg");
  auto* cl = c.add_clusters();
  cl->add_endpoints()->set_address("127.0.0.1:1");
  ApplyDefaults(&c);

  EXPECT_EQ(c.io_uring().sq_depth(), 4096u);
  EXPECT_EQ(c.io_uring().buf_count(), 1024u);
  EXPECT_EQ(c.io_uring().buf_size(), Defaults::kBufSize);
  EXPECT_EQ(c.io_uring().send_zc_threshold(), 65536u);
  EXPECT_EQ(c.io_uring().sqpoll_idle_ms(), 1000u);
  EXPECT_EQ(c.listeners(0).http().max_request_line_bytes(), 8192u);
  EXPECT_EQ(c.listeners(0).http().max_header_bytes(), 65536u);
  EXPECT_EQ(c.listeners(0).http().max_headers(), 100u);
  EXPECT_EQ(c.listeners(0).http().idle_timeout_ms(), 60000u);
  EXPECT_EQ(c.listeners(0).http().request_header_timeout_ms(), 10000u);
  EXPECT_EQ(c.listeners(0).http().max_body_bytes(), 0u);  // 0 = unlimited, no default
  EXPECT_FALSE(c.listeners(1).has_http());                // L4 listener: no HTTP options
  EXPECT_EQ(c.listeners(1).tcp_proxy().mode(), zproxy::v1::AUTO);
  EXPECT_EQ(c.listeners(1).tcp_proxy().idle_timeout_ms(), 60000u);
  EXPECT_EQ(c.listeners(0).tunnel_mode(), zproxy::v1::AUTO);  // WebSocket/CONNECT tunnels
  EXPECT_EQ(c.listeners(1).tunnel_mode(), zproxy::v1::PASSTHROUGH_MODE_UNSPECIFIED);
  EXPECT_FALSE(c.listeners(0).has_connect());  // CONNECT stays off unless configured
  EXPECT_EQ(cl->pool_size(), 64u);
  EXPECT_EQ(cl->connect_timeout_ms(), 2000u);
  EXPECT_EQ(cl->read_timeout_ms(), 30000u);
  EXPECT_EQ(cl->idle_timeout_ms(), 60000u);
  EXPECT_EQ(cl->lb(), zproxy::v1::ROUND_ROBIN);
  EXPECT_EQ(cl->endpoints(0).weight(), 1u);
  EXPECT_FALSE(cl->has_health_check());
  EXPECT_EQ(c.workers(), 0u);  // 0 = one per CPU, resolved by zproxyd
  EXPECT_EQ(c.drain_timeout_ms(), 10000u);
  EXPECT_EQ(c.admin_address(), "unix:/run/zproxy/admin.sock");
  EXPECT_EQ(c.metrics_address(), "");  // off
  EXPECT_EQ(c.bpffs_path(), "/sys/fs/bpf/zproxy");
  EXPECT_EQ(c.bpf().steering(), zproxy::v1::STEERING_POLICY_CPU);
  EXPECT_FALSE(c.bpf().keep_pins());
}

TEST(Defaults, ConnectTimeouts) {
  zproxy::v1::Listener l;
  l.mutable_connect()->add_allow("127.0.0.1:*");
  ApplyDefaults(&l);
  EXPECT_EQ(l.connect().connect_timeout_ms(), 5000u);
  EXPECT_EQ(l.connect().idle_timeout_ms(), 300000u);
  EXPECT_EQ(l.connect().dns_cache_ms(), 5000u);
  EXPECT_EQ(l.connect().dns_negative_cache_ms(), 1000u);
  l.mutable_connect()->set_connect_timeout_ms(700);
  ApplyDefaults(&l);
  EXPECT_EQ(l.connect().connect_timeout_ms(), 700u);
}

TEST(Defaults, KeepsExplicitValuesAndIsIdempotent) {
  zproxy::v1::Config c;
  c.mutable_io_uring()->set_sq_depth(256);
  auto* cl = c.add_clusters();
  cl->set_lb(zproxy::v1::LEAST_CONNECTIONS);
  cl->set_pool_size(7);
  cl->add_endpoints()->set_weight(9);
  cl->mutable_health_check()->set_http_path("/h");
  c.set_admin_address("unix:/tmp/a.sock");
  ApplyDefaults(&c);
  zproxy::v1::Config once = c;
  ApplyDefaults(&c);
  EXPECT_EQ(c.SerializeAsString(), once.SerializeAsString());
  EXPECT_EQ(c.io_uring().sq_depth(), 256u);
  EXPECT_EQ(cl->lb(), zproxy::v1::LEAST_CONNECTIONS);
  EXPECT_EQ(cl->pool_size(), 7u);
  EXPECT_EQ(cl->endpoints(0).weight(), 9u);
  EXPECT_EQ(cl->health_check().interval_ms(), 5000u);
  EXPECT_EQ(cl->health_check().timeout_ms(), 1000u);
  EXPECT_EQ(c.admin_address(), "unix:/tmp/a.sock");
}

}  // namespace
}  // namespace zproxy::config
