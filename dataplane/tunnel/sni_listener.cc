#include "dataplane/tunnel/sni_listener.h"

namespace zproxy::dataplane {

std::shared_ptr<const SniListener> BuildSniListener(const zproxy::v1::Config& config,
                                                    const zproxy::v1::Listener& listener,
                                                    const std::string& path, std::string* error) {
  const auto& t = listener.tcp_proxy();
  if (!listener.has_tcp_proxy() || t.sni_routes_size() == 0) return nullptr;
  auto sni = std::make_shared<SniListener>();
  sni->router = tunnel::SniRouter::Build(config, t, path + ".tcp_proxy", error);
  if (sni->router == nullptr) return nullptr;
  sni->hello_timeout_ms = t.client_hello_timeout_ms() != 0 ? t.client_hello_timeout_ms() : 10000;
  SniCounters& counters = SniCounters::Process();
  for (int i = 0; i < t.sni_routes_size(); i++) {
    sni->routed.push_back(counters.Routed(listener.name(), t.sni_routes(i).cluster()));
  }
  sni->routed.push_back(counters.Routed(listener.name(), t.cluster()));
  sni->failures = counters.Failures(listener.name());
  return sni;
}

}  // namespace zproxy::dataplane
