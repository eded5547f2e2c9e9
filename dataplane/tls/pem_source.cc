#include "dataplane/tls/pem_source.h"

#include <openssl/err.h>

#include <cerrno>
#include <cstring>

namespace zproxy::tls {

PemBio OpenPem(const std::string& inline_pem, const std::string& path, std::string* error) {
  if (!inline_pem.empty()) {
    return PemBio(BIO_new_mem_buf(inline_pem.data(), static_cast<ptrdiff_t>(inline_pem.size())));
  }
  PemBio b(BIO_new_file(path.c_str(), "r"));
  if (!b) {
    const int err = errno;
    ERR_clear_error();
    *error = "cannot read \"" + path + "\": " + strerror(err);
    if (err == EACCES) {
      *error +=
          " (the data plane has dropped its privileges: zproxyd sends it the contents of "
          "the files it can read; see README \"Security\")";
    }
  }
  return b;
}

}  // namespace zproxy::tls
