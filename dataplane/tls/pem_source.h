// Where the data plane's PEM text comes from: the contents zproxyd put in the config
// (controlplane/state/inline_tls_files.h: the data plane opens no files after its
// privilege drop), else the named file itself (a file zproxyd could not read: the error
// then names it).
#pragma once

#include <openssl/bio.h>

#include <memory>
#include <string>

namespace zproxy::tls {

struct PemBioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using PemBio = std::unique_ptr<BIO, PemBioFree>;

// A BIO over `inline_pem` (which must outlive it) when set, else over `path`. On failure
// returns null and *error says "cannot read \"path\": reason".
PemBio OpenPem(const std::string& inline_pem, const std::string& path, std::string* error);

}  // namespace zproxy::tls
