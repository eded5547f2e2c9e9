#include "controlplane/config/validate_config_source.h"

#include <string>

#include "common/net_address.h"

namespace zproxy::config {

void ValidateConfigSource(const zproxy::v1::Config& config, ConfigErrors* errors) {
  auto add = [errors](std::string path, std::string message) {
    errors->push_back(ConfigError{std::move(path), std::move(message), "", 0, 0});
  };
  if (!config.has_config_source()) {
    if (config.node().listener_addresses_size() > 0) {
      add("node.listener_addresses", "only meaningful with config_source (fleet mode)");
    }
    return;
  }
  if (!config.config_source().has_etcd()) {
    add("config_source", "etcd is the only config source: set config_source.etcd");
    return;
  }
  const zproxy::v1::EtcdSource& e = config.config_source().etcd();
  if (e.endpoints_size() == 0) {
    add("config_source.etcd.endpoints", "at least one endpoint is required");
  }
  bool https = false;
  for (int i = 0; i < e.endpoints_size(); ++i) {
    const std::string path = "config_source.etcd.endpoints[" + std::to_string(i) + "]";
    const std::string& ep = e.endpoints(i);
    std::string rest;
    if (ep.rfind("http://", 0) == 0) {
      rest = ep.substr(7);
    } else if (ep.rfind("https://", 0) == 0) {
      rest = ep.substr(8);
      https = true;
    } else {
      add(path, "\"" + ep + "\": must start with http:// or https://");
      continue;
    }
    std::string host, why;
    uint16_t port = 0;
    if (!SplitHostPort(rest, &host, &port, &why)) add(path, "\"" + ep + "\": " + why);
  }
  if (e.prefix().empty()) {
    add("config_source.etcd.prefix", "required (e.g. /zproxy/fleet-a/): the fleet's keys");
  }
  const auto& tls = e.tls();
  if (!tls.cert().empty() != !tls.key().empty()) {
    add("config_source.etcd.tls", "cert and key go together");
  }
  if ((!tls.ca().empty() || !tls.cert().empty()) && !https) {
    add("config_source.etcd.tls", "set, but no endpoint is https://");
  }
  for (const auto& [listener, address] : config.node().listener_addresses()) {
    NetAddress addr;
    std::string why;
    if (!ParseNetAddress(address, &addr, &why)) {
      add("node.listener_addresses." + listener, "invalid address \"" + address + "\": " + why);
    }
  }
}

}  // namespace zproxy::config
