#include "common/unix_socket_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zproxy {

bool PrepareUnixSocketPath(const std::string& path, std::string_view what, std::string* error) {
  const std::string dir = path.substr(0, path.rfind('/'));
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = std::string(what) + ": mkdir " + part + ": " + std::strerror(errno);
      return false;
    }
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error = std::string(what) + ": " + path + " exists and is not a socket";
      return false;
    }
    unlink(path.c_str());  // stale socket of a previous process
  }
  return true;
}

}  // namespace zproxy
