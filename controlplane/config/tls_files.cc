#include "controlplane/config/tls_files.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace zproxy::config {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

std::string LastOpenSslError() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

File Open(const std::string& path, std::string* error) {
  File f(fopen(path.c_str(), "r"));
  if (!f) *error = "cannot read \"" + path + "\": " + strerror(errno);
  return f;
}

}  // namespace

std::string CheckCertificateFiles(const std::string& cert_path, const std::string& key_path,
                                  bool* bad_key) {
  *bad_key = false;
  std::string error;
  File cf = Open(cert_path, &error);
  if (!cf) return error;
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_X509(cf.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return "\"" + cert_path + "\" holds no PEM certificate (" + LastOpenSslError() + ")";

  *bad_key = true;
  File kf = Open(key_path, &error);
  if (!kf) return error;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_PrivateKey(kf.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key) return "\"" + key_path + "\" holds no PEM private key (" + LastOpenSslError() + ")";
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return "the private key in \"" + key_path + "\" does not match the certificate in \"" +
           cert_path + "\"";
  }
  *bad_key = false;
  return "";
}

std::string CheckCaFile(const std::string& path) {
  std::string error;
  File f = Open(path, &error);
  if (!f) return error;
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_X509(f.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return "\"" + path + "\" holds no PEM certificate (" + LastOpenSslError() + ")";
  return "";
}

}  // namespace zproxy::config
