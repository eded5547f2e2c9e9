#include "controlplane/state/state_file.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/unique_fd.h"

namespace zproxy::state {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool MakeDirs(const std::string& dir, std::string* error) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      *error = Errno("mkdir " + part);
      return false;
    }
  }
  return true;
}

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::string StatePath(const std::string& dir) { return dir + "/state.pb"; }

bool SaveState(const std::string& dir, const zproxy::v1::PersistedState& state,
               std::string* error) {
  if (!MakeDirs(dir, error)) return false;
  std::string data;
  if (!state.SerializeToString(&data)) {
    *error = "cannot serialize the state";
    return false;
  }
  const std::string path = StatePath(dir);
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    *error = Errno("open " + tmp);
    return false;
  }
  if (!WriteAll(fd.get(), data) || fsync(fd.get()) != 0) {
    *error = Errno("write " + tmp);
    unlink(tmp.c_str());
    return false;
  }
  fd.reset();
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    *error = Errno("rename " + tmp + " -> " + path);
    unlink(tmp.c_str());
    return false;
  }
  UniqueFd dirfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirfd.valid()) fsync(dirfd.get());  // make the rename itself durable
  return true;
}

LoadStatus LoadState(const std::string& dir, zproxy::v1::PersistedState* state,
                     std::string* error) {
  const std::string path = StatePath(dir);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return LoadStatus::kMissing;
    *error = Errno("open " + path);
    return LoadStatus::kError;
  }
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = Errno("read " + path);
      return LoadStatus::kError;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  if (!state->ParseFromString(data)) {
    *error = path + ": not a valid PersistedState (corrupt?)";
    return LoadStatus::kError;
  }
  return LoadStatus::kOk;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    const unsigned char b = digest[i];
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace zproxy::state
