#include "controlplane/state/inline_tls_files.h"

#include <fstream>
#include <sstream>
#include <string>

namespace zproxy::state {
namespace {

// A PEM file is a few KB; anything past this is no certificate and is left to the data
// plane's own error.
constexpr std::streamsize kMaxPemBytes = 1 << 20;

void Inline(const std::string& path, std::string* out) {
  out->clear();
  if (path.empty()) return;
  std::ifstream in(path, std::ios::binary);
  if (!in) return;
  std::string text(kMaxPemBytes + 1, '\0');
  in.read(text.data(), kMaxPemBytes + 1);
  if (in.bad() || in.gcount() > kMaxPemBytes) return;
  text.resize(static_cast<size_t>(in.gcount()));
  *out = std::move(text);
}

}  // namespace

void InlineTlsFiles(zproxy::v1::Config* config) {
  for (auto& l : *config->mutable_listeners()) {
    if (!l.has_tls()) continue;
    for (auto& c : *l.mutable_tls()->mutable_certificates()) {
      Inline(c.cert(), c.mutable_cert_pem());
      Inline(c.key(), c.mutable_key_pem());
    }
  }
  for (auto& c : *config->mutable_clusters()) {
    if (!c.has_tls()) continue;
    auto* t = c.mutable_tls();
    Inline(t->ca(), t->mutable_ca_pem());
    Inline(t->cert(), t->mutable_cert_pem());
    Inline(t->key(), t->mutable_key_pem());
  }
}

}  // namespace zproxy::state
