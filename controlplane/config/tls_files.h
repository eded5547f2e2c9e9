// Checks the PEM files of a TLS certificate before a config is accepted: readable, a
// certificate and a private key that parse, and a key that belongs to the certificate.
// zproxyd runs this (OpenSSL's libcrypto) so `--check` and the Admin API reject a broken
// certificate with the field named; the data plane loads the same files with BoringSSL.
#pragma once

#include <string>

namespace zproxy::config {

// Returns "" when the pair is usable; otherwise the reason and sets *bad_key to true when
// the problem is the key file (false: the certificate file).
std::string CheckCertificateFiles(const std::string& cert_path, const std::string& key_path,
                                  bool* bad_key);

// Returns "" when `path` is a readable PEM file with at least one certificate (a CA bundle).
std::string CheckCaFile(const std::string& path);

}  // namespace zproxy::config
