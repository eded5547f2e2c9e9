// For tests: the smallest valid config (listener "web" on 127.0.0.1:8080 routing "/" to
// cluster "app" at 127.0.0.1:3000), defaults applied. Tests change it in one way each.
#pragma once

#include "controlplane/config/defaults.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::config::testing {

inline zproxy::v1::Config MinimalConfig() {
  zproxy::v1::Config c;
  auto* l = c.add_listeners();
  l->set_name("web");
  l->set_address("127.0.0.1:8080");
  auto* r = l->add_routes();
  r->mutable_match()->set_prefix("/");
  r->set_cluster("app");
  auto* cl = c.add_clusters();
  cl->set_name("app");
  cl->add_endpoints()->set_address("127.0.0.1:3000");
  ApplyDefaults(&c);
  return c;
}

}  // namespace zproxy::config::testing
