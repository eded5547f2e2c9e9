// Plain-text tables for zproxyctl: columns padded to the widest cell. No gRPC here.
#pragma once

#include <string>
#include <vector>

namespace zproxy::ctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace zproxy::ctl
