// Stand-in for controlplane/config/tls_files.cc in the config fuzz target: the validator's
// PEM checks would open whatever path the fuzzer writes (/dev/zero, a FIFO, /dev/stdin),
// which hangs or depends on the machine, so the fuzz target gets a deterministic answer
// instead: paths under /fuzz-ok/ are usable, every other path is "not readable". The real
// checks are unit tested (validate_test, load_test) with real PEM files.
#include <string>

#include "controlplane/config/tls_files.h"

namespace zproxy::config {

namespace {
bool Usable(const std::string& path) { return path.rfind("/fuzz-ok/", 0) == 0; }
}  // namespace

std::string CheckCertificateFiles(const std::string& cert_path, const std::string& key_path,
                                  bool* bad_key) {
  *bad_key = false;
  if (!Usable(cert_path)) return "cannot read " + cert_path + ": fuzz stub";
  if (!Usable(key_path)) {
    *bad_key = true;
    return "cannot read " + key_path + ": fuzz stub";
  }
  return "";
}

std::string CheckCaFile(const std::string& path) {
  return Usable(path) ? "" : "cannot read " + path + ": fuzz stub";
}

}  // namespace zproxy::config
