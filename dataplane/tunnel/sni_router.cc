#include "dataplane/tunnel/sni_router.h"

namespace zproxy::tunnel {
namespace {

int ClusterIndex(const zproxy::v1::Config& config, const std::string& name) {
  for (int i = 0; i < config.clusters_size(); i++) {
    if (config.clusters(i).name() == name) return i;
  }
  return -1;
}

// A server name the patterns can be compared with: host-name characters only. Anything
// else (a ':' would be taken for a port by NormalizedHost) matches no name pattern.
bool IsHostNameText(std::string_view s) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// How specific a name match is: exact above every wildcard, a longer "*." suffix above a
// shorter one (keys are at most 255 bytes), a name-less entry lowest.
constexpr unsigned kAnyName = 1;
constexpr unsigned kExact = 1u << 16;
unsigned WildcardRank(const routing::HostPattern& p) {
  return 2 + static_cast<unsigned>(p.key().size());
}

}  // namespace

std::unique_ptr<SniRouter> SniRouter::Build(const zproxy::v1::Config& config,
                                            const zproxy::v1::TcpProxy& tcp_proxy,
                                            const std::string& path, std::string* error) {
  auto router = std::make_unique<SniRouter>();
  router->default_cluster_ = ClusterIndex(config, tcp_proxy.cluster());
  if (router->default_cluster_ < 0) {
    *error = path + ".cluster: unknown cluster \"" + tcp_proxy.cluster() + "\"";
    return nullptr;
  }
  for (int i = 0; i < tcp_proxy.sni_routes_size(); i++) {
    const auto& r = tcp_proxy.sni_routes(i);
    std::string entry_path = path + ".sni_routes[" + std::to_string(i) + "]";
    Entry e;
    e.cluster = ClusterIndex(config, r.cluster());
    if (e.cluster < 0) {
      *error = entry_path + ".cluster: unknown cluster \"" + r.cluster() + "\"";
      return nullptr;
    }
    for (int k = 0; k < r.server_names_size(); k++) {
      routing::HostPattern p;
      std::string why;
      if (!routing::HostPattern::Compile(r.server_names(k), &p, &why)) {
        *error = entry_path + ".server_names[" + std::to_string(k) + "]: " + why;
        return nullptr;
      }
      e.names.push_back(std::move(p));
    }
    e.alpn.assign(r.alpn().begin(), r.alpn().end());
    if (e.names.empty() && e.alpn.empty()) {
      *error = entry_path + ".server_names: at least one server name is required (or alpn)";
      return nullptr;
    }
    router->entries_.push_back(std::move(e));
  }
  return router;
}

int SniRouter::Pick(const ClientHelloInfo& hello) const {
  // On the stack: the lower-cased name without a trailing dot (or invalid: no name).
  routing::NormalizedHost host(IsHostNameText(hello.server_name) ? hello.server_name
                                                                 : std::string_view());
  bool named = !hello.server_name.empty() && host.valid() && !host.view().empty();
  int best = kDefault;
  unsigned best_score = 0;
  for (size_t i = 0; i < entries_.size(); i++) {
    const Entry& e = entries_[i];
    unsigned rank = 0;
    if (e.names.empty()) {
      rank = kAnyName;
    } else if (named) {
      for (const routing::HostPattern& p : e.names) {
        if (!p.Matches(host)) continue;
        unsigned r = p.wildcard() ? WildcardRank(p) : kExact;
        if (r > rank) rank = r;
      }
    }
    if (rank == 0) continue;
    if (!e.alpn.empty()) {
      bool offered = false;
      for (const std::string& a : e.alpn) offered = offered || AlpnOffers(hello.alpn, a);
      if (!offered) continue;
    }
    unsigned score = rank * 2 + (e.alpn.empty() ? 0 : 1);
    if (score > best_score) {  // ties: the first entry stays
      best_score = score;
      best = static_cast<int>(i);
    }
  }
  return best;
}

}  // namespace zproxy::tunnel
