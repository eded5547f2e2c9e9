// Where the data plane's PEM text comes from: the contents zproxyd put in the config
// (controlplane/state/inline_tls_files.h: the data plane opens no files after its
// privilege drop), else the named file itself (a file zproxyd could not read: the error
// then names it, and says why the data plane may not read it either).
#pragma once

#include <string>

#include "common/tls/context_setup.h"

namespace zproxy::tls {

inline constexpr char kPrivilegeDropNote[] =
    " (the data plane has dropped its privileges: zproxyd sends it the contents of "
    "the files it can read; see docs/security.md)";

// A PEM source over `inline_pem` (when set) or `path`; both must outlive its use.
inline tlsctx::PemSource PemFrom(const std::string& inline_pem, const std::string& path) {
  return {inline_pem, path, kPrivilegeDropNote};
}

}  // namespace zproxy::tls
