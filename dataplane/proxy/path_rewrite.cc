#include "dataplane/proxy/path_rewrite.h"

#include <algorithm>

#include "dataplane/proxy/scratch_writer.h"

namespace zproxy::proxy {
namespace {

void PutSubstitution(std::string_view sub, const re2::StringPiece* groups, int ngroups,
                     ScratchWriter* w) {
  for (size_t i = 0; i < sub.size(); ++i) {
    if (sub[i] != '\\' || i + 1 == sub.size()) {
      w->Put(sub.substr(i, 1));
      continue;
    }
    char next = sub[++i];
    if (next >= '0' && next <= '9') {
      int g = next - '0';
      if (g < ngroups && groups[g].data() != nullptr) {
        w->Put(std::string_view(groups[g].data(), groups[g].size()));
      }
    } else {
      w->Put(sub.substr(i, 1));  // "\\" -> "\"
    }
  }
}

bool IsOriginPath(std::string_view p) {
  if (p.empty() || p[0] != '/') return false;
  return std::none_of(p.begin(), p.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == '?' || c == '#';
  });
}

}  // namespace

void RegexReplaceAll(const RE2& re, std::string_view substitution, std::string_view text,
                     ScratchWriter* w) {
  constexpr int kMaxGroups = 10;
  re2::StringPiece groups[kMaxGroups];
  const int ngroups = std::min(kMaxGroups, re.NumberOfCapturingGroups() + 1);
  const re2::StringPiece all(text.data(), text.size());
  size_t pos = 0;
  while (pos <= text.size() && re.Match(all, pos, text.size(), RE2::UNANCHORED, groups, ngroups)) {
    size_t start = static_cast<size_t>(groups[0].data() - text.data());
    size_t end = start + groups[0].size();
    w->Put(text.substr(pos, start - pos));
    PutSubstitution(substitution, groups, ngroups, w);
    if (end == start) {
      if (end == text.size()) {
        pos = end + 1;
        break;
      }
      w->Put(text.substr(end, 1));
      pos = end + 1;
    } else {
      pos = end;
    }
  }
  if (pos < text.size()) w->Put(text.substr(pos));
}

RewriteResult RewritePath(const routing::RoutePolicy& policy, std::string_view path,
                          std::string_view path_and_query, std::span<char> out,
                          std::string_view* result) {
  const bool prefix = !policy.prefix_rewrite.empty();
  if (!prefix && policy.regex_rewrite == nullptr) return RewriteResult::kUnchanged;
  std::string_view query = path_and_query.substr(std::min(path.size(), path_and_query.size()));
  // Half the space for the prefix rewrite's result, half for the regex's.
  const size_t half = out.size() / 2;
  std::string_view current = path;
  if (prefix) {
    ScratchWriter w(out.subspan(0, half));
    w.Put(policy.prefix_rewrite);
    size_t cut = policy.prefix_rewrite_whole_path
                     ? path.size()
                     : std::min(policy.matched_prefix_len, path.size());
    w.Put(path.substr(cut));
    if (!w.ok) return RewriteResult::kTooLong;
    current = w.Since(0);
  }
  ScratchWriter w(out.subspan(half));
  if (policy.regex_rewrite != nullptr) {
    RegexReplaceAll(*policy.regex_rewrite, policy.regex_substitution, current, &w);
  } else {
    w.Put(current);
  }
  size_t path_len = w.len;
  w.Put(query);
  if (!w.ok) return RewriteResult::kTooLong;
  if (!IsOriginPath(w.Since(0).substr(0, path_len))) return RewriteResult::kInvalid;
  *result = w.Since(0);
  return RewriteResult::kRewritten;
}

}  // namespace zproxy::proxy
