#include "controlplane/dns/expand.h"

#include <set>
#include <string>

namespace zproxy::dns {

std::string JoinHostPort(const std::string& ip, uint16_t port) {
  if (ip.find(':') != std::string::npos) return "[" + ip + "]:" + std::to_string(port);
  return ip + ":" + std::to_string(port);
}

void ExpandNamedEndpoints(const NameTable& names, zproxy::v1::Config* config) {
  config->clear_dns();
  for (zproxy::v1::Cluster& c : *config->mutable_clusters()) {
    c.clear_dns();
    bool named = false;
    for (const auto& e : c.endpoints()) {
      std::string host;
      uint16_t port = 0;
      if (NamedEndpoint(e.address(), &host, &port)) named = true;
    }
    if (!named) continue;
    google::protobuf::RepeatedPtrField<zproxy::v1::Endpoint> out;
    std::set<std::string> listed;
    for (const auto& e : c.endpoints()) {
      std::string host;
      uint16_t port = 0;
      if (!NamedEndpoint(e.address(), &host, &port)) listed.insert(e.address());
    }
    for (const auto& e : c.endpoints()) {
      std::string host;
      uint16_t port = 0;
      if (!NamedEndpoint(e.address(), &host, &port)) {
        *out.Add() = e;
        continue;
      }
      const NameState* s = names.Find(c.name(), host);
      if (s == nullptr) continue;
      for (const std::string& ip : s->ips) {
        std::string address = JoinHostPort(ip, port);
        if (!listed.insert(address).second) continue;
        zproxy::v1::Endpoint* x = out.Add();
        *x = e;
        x->set_address(address);
        x->set_resolved_from(e.address());
      }
    }
    c.mutable_endpoints()->Swap(&out);
  }
}

}  // namespace zproxy::dns
