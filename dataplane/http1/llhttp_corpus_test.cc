// Runs llhttp's conformance cases (tests/corpora/llhttp, MIT) against our parser.
//
// Each markdown case has an ```http block (raw bytes; a real newline is CRLF, a trailing
// '\' joins lines, and \r \n \t \f \xHH \ooo are escapes), an optional
// <!-- meta={...} --> line before it, and a ```log block with llhttp's events. We replay
// the input like a proxy connection would (head, body by its framing, next message) and
// compare the outcome: llhttp error => we must reject; clean parse => we must accept with
// the same method, target, status, field count and framing. Cases run in an opt-in lenient
// llhttp mode (meta type *-lenient-*) expect the strict outcome: reject. Deliberate
// differences are listed in kAllowlist with a reason; an allowlisted case that starts to
// agree fails too, so the list stays true.
//
// One divergence is handled by rule rather than by name: llhttp does not check Host, and
// most of its HTTP/1.1 cases have none, which we reject (kMissingHost, RFC 9112 3.2). Such
// a request is re-parsed with "Host: llhttp.test" inserted after its request-line, so the
// rest of the case is still compared.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "dataplane/http1/http1.h"

namespace zproxy::http1 {
namespace {

constexpr char kCorpusDir[] = "tests/corpora/llhttp";

// Cases where our strict policy deliberately differs from llhttp (key: "dir/file#heading").
const std::map<std::string, std::string>& Allowlist() {
  static const auto* list = new std::map<std::string, std::string>{
#include "dataplane/http1/llhttp_allowlist.inc"
  };
  return *list;
}

struct ExpectedHead {
  int method_or_status = -1;
  unsigned flags = 0;
  uint64_t content_length = 0;
};

struct Case {
  std::string key;   // "request/sample.md#Heading"
  std::string name;  // gtest-safe
  std::string type;  // meta type
  bool pause = false;
  bool skip_body = false;
  std::string input;
  std::vector<std::string> log;
};

std::string Unescape(const std::vector<std::string>& lines) {
  std::string joined;
  for (size_t i = 0; i < lines.size(); i++) {
    const std::string& l = lines[i];
    bool last = i + 1 == lines.size();
    if (!l.empty() && l.back() == '\\' && !last) {
      joined += l.substr(0, l.size() - 1);  // continuation: no newline
    } else {
      joined += l;
      if (!last) joined += '\n';  // placeholder for CRLF, distinct from escaped "\n"
    }
  }
  std::string out;
  for (size_t i = 0; i < joined.size(); i++) {
    char c = joined[i];
    if (c == '\n') {
      out += "\r\n";
      continue;
    }
    if (c != '\\' || i + 1 >= joined.size()) {
      out += c;
      continue;
    }
    char e = joined[i + 1];
    auto is_oct = [](char d) { return d >= '0' && d <= '7'; };
    if (e == 'r' || e == 'n' || e == 't' || e == 'f') {
      out += e == 'r' ? '\r' : e == 'n' ? '\n' : e == 't' ? '\t' : '\f';
      i++;
    } else if (e == 'x' && i + 2 < joined.size() && isxdigit(joined[i + 2])) {
      size_t j = i + 2;
      int v = 0;
      while (j < joined.size() && j < i + 4 && isxdigit(joined[j])) {
        v = v * 16 + (isdigit(joined[j]) ? joined[j] - '0' : (tolower(joined[j]) - 'a' + 10));
        j++;
      }
      out += static_cast<char>(v);
      i = j - 1;
    } else if (is_oct(e)) {
      size_t j = i + 1;
      int v = 0;
      while (j < joined.size() && j < i + 4 && is_oct(joined[j])) v = v * 8 + (joined[j++] - '0');
      out += static_cast<char>(v);
      i = j - 1;
    } else {
      out += c;  // "\\" and "\"" stay literal, as in llhttp's harness
    }
  }
  return out;
}

std::string Sanitize(const std::string& s) {
  std::string out;
  for (char c : s) out += isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

std::string MetaString(const std::string& meta, const std::string& key) {
  size_t k = meta.find("\"" + key + "\"");
  if (k == std::string::npos) return "";
  size_t q1 = meta.find('"', meta.find(':', k) + 1);
  size_t q2 = meta.find('"', q1 + 1);
  return meta.substr(q1 + 1, q2 - q1 - 1);
}

void LoadFile(const std::filesystem::path& path, const std::string& rel, std::vector<Case>* out) {
  std::ifstream f(path);
  std::string line, heading, meta;
  std::vector<std::string> block;
  enum { kText, kHttp, kLog } mode = kText;
  Case pending;
  bool have_pending = false;
  auto flush = [&]() {
    if (have_pending) out->push_back(pending);
    have_pending = false;
  };
  while (std::getline(f, line)) {
    if (mode == kText) {
      if (line.rfind("#", 0) == 0 && line.find_first_not_of('#') != std::string::npos) {
        size_t s = line.find_first_not_of("# ");
        heading = s == std::string::npos ? "" : line.substr(s);
      } else if (line.rfind("<!-- meta=", 0) == 0) {
        meta = line;
      } else if (line == "```http") {
        flush();
        mode = kHttp;
        block.clear();
      } else if (line == "```log" && have_pending) {
        mode = kLog;
      }
      continue;
    }
    if (line == "```") {
      if (mode == kHttp) {
        pending = Case();
        pending.key = rel + "#" + heading;
        pending.type = MetaString(meta, "type");
        pending.pause = meta.find("\"pause\"") != std::string::npos;
        pending.skip_body = meta.find("\"skipBody\": true") != std::string::npos;
        pending.input = Unescape(block);
        have_pending = true;
        meta.clear();
      } else {
        pending.log = block;
        flush();
      }
      mode = kText;
      block.clear();
      continue;
    }
    if (mode == kHttp) block.push_back(line);
    if (mode == kLog) block.push_back(line);
  }
  flush();
}

std::vector<Case> LoadCases() {
  std::vector<Case> cases;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const char* dir : {"request", "response"}) {
    for (const auto& e :
         std::filesystem::directory_iterator(std::string(kCorpusDir) + "/" + dir, ec)) {
      if (e.path().extension() == ".md") files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    std::string rel = p.parent_path().filename().string() + "/" + p.filename().string();
    LoadFile(p, rel, &cases);
  }
  std::map<std::string, int> seen;
  for (Case& c : cases) {
    std::string base = Sanitize(c.key);
    int n = seen[base]++;
    c.name = n == 0 ? base : base + "_" + std::to_string(n);
  }
  return cases;
}

const std::vector<Case>& AllCases() {
  static const auto* cases = new std::vector<Case>(LoadCases());
  return *cases;
}

// What llhttp reported, reduced to what we can compare.
struct Expected {
  bool error = false;
  std::string error_line;
  std::vector<ExpectedHead> heads;
  std::string first_method, first_url;
  int first_fields = 0;
};

uint64_t NumberAfter(const std::string& s, const std::string& key, int base = 10) {
  size_t k = s.find(key);
  if (k == std::string::npos) return 0;
  return std::stoull(s.substr(k + key.size()), nullptr, base);
}

std::string SpanValue(const std::string& line) {
  size_t q = line.find("=\"");
  if (q == std::string::npos || line.size() < q + 3) return "";
  return line.substr(q + 2, line.size() - q - 3);
}

Expected ReadLog(const Case& c) {
  Expected x;
  for (const std::string& l : c.log) {
    if (l.find(" error code=") != std::string::npos || l.rfind("error code=", 0) == 0) {
      int code = static_cast<int>(NumberAfter(l, "code="));
      // 22/23: llhttp pauses on CONNECT/Upgrade (not an error). 5: data after
      // "Connection: close" (a proxy closes and never reads it).
      if (code == 22 || code == 23 || code == 5) continue;
      x.error = true;
      x.error_line = l;
    } else if (l.find("finish=") != std::string::npos) {
      // 2 = llhttp_finish() found the input ended inside a message (1 is the harness's own
      // callback return value in response/finish.md, not an error).
      if (NumberAfter(l, "finish=") == 2) {
        x.error = true;
        x.error_line = l;
      }
    } else if (l.find("headers complete") != std::string::npos) {
      ExpectedHead h;
      h.method_or_status =
          static_cast<int>(l.find("status=") != std::string::npos ? NumberAfter(l, "status=")
                                                                  : NumberAfter(l, "method="));
      h.flags = static_cast<unsigned>(NumberAfter(l, "flags=", 16));
      h.content_length = NumberAfter(l, "content_length=");
      x.heads.push_back(h);
    } else if (x.heads.empty()) {
      if (l.find("span[method]") != std::string::npos) x.first_method += SpanValue(l);
      if (l.find("span[url]") != std::string::npos) x.first_url += SpanValue(l);
      if (l.find("header_field complete") != std::string::npos) x.first_fields++;
    }
  }
  return x;
}

struct Observed {
  bool rejected = false;
  Error error = Error::kNone;
  bool incomplete = false;
  std::vector<RequestHead> requests;
  std::vector<bool> host_injected;  // per request
  std::deque<std::string> patched;  // heads with an injected Host; views point here
  std::vector<ResponseHead> responses;
};

// Reads `in` as one connection: head, then body by its framing, then the next message.
Observed Replay(const Case& c, bool is_request) {
  Observed o;
  static Header storage[128];
  std::string_view in = c.input;
  size_t pos = 0;
  while (pos < in.size()) {
    std::string_view rest = in.substr(pos);
    BodyKind body;
    uint64_t length;
    bool keep_alive, opaque;
    Status st;
    if (is_request) {
      RequestHead h;
      st = ParseRequest(rest, Limits(), storage, &h, &o.error);
      bool injected = false;
      if (st == Status::kError && o.error == Error::kMissingHost) {
        static constexpr std::string_view kHost = "Host: llhttp.test\r\n";
        std::string& p = o.patched.emplace_back(rest);
        size_t line_end = p.find('\n', p.find_first_not_of("\r\n")) + 1;
        p.insert(line_end, kHost);
        st = ParseRequest(p, Limits(), storage, &h, &o.error);
        if (st == Status::kDone) h.head_bytes -= kHost.size();
        injected = true;
      }
      if (st == Status::kDone) {
        o.requests.push_back(h);
        o.host_injected.push_back(injected);
      }
      // skipBody: llhttp's on_headers_complete returned 1, i.e. "this message has no body".
      body = c.skip_body ? BodyKind::kNone : h.body;
      length = h.content_length;
      keep_alive = h.keep_alive;
      opaque = h.upgrade || h.method_id == Method::kConnect;
      pos += h.head_bytes;
    } else {
      ResponseHead h;
      st = ParseResponse(rest, c.skip_body ? Method::kHead : Method::kGet, Limits(), storage, &h,
                         &o.error);
      if (st == Status::kDone) o.responses.push_back(h);
      body = h.body;
      length = h.content_length;
      keep_alive = h.keep_alive;
      opaque = h.status == 101;
      pos += h.head_bytes;
    }
    if (st == Status::kError) {
      o.rejected = true;
      return o;
    }
    if (st == Status::kNeedMore) {
      o.incomplete = true;
      return o;
    }
    if (opaque) return o;  // bytes after this are a tunnel, not HTTP
    switch (body) {
      case BodyKind::kNone:
        break;
      case BodyKind::kContentLength:
        if (in.size() - pos < length) {
          o.incomplete = true;
          return o;
        }
        pos += length;
        break;
      case BodyKind::kChunked: {
        ChunkedScanner scanner;
        size_t used = 0;
        Status cs = scanner.Feed(in.substr(pos), &used, &o.error);
        if (cs == Status::kError) {
          o.rejected = true;
          return o;
        }
        if (cs == Status::kNeedMore) {
          o.incomplete = true;
          return o;
        }
        pos += used;
        break;
      }
      case BodyKind::kCloseDelimited:
        return o;
    }
    if (!keep_alive) return o;  // the proxy closes; anything after is never read
  }
  return o;
}

class LlhttpCorpus : public testing::TestWithParam<Case> {};

TEST_P(LlhttpCorpus, MatchesStrictOutcome) {
  const Case& c = GetParam();
  if (c.pause) GTEST_SKIP() << "llhttp pause/resume callback semantics; no equivalent here";
  const bool is_request = c.type.rfind("request", 0) == 0;
  ASSERT_TRUE(is_request || c.type.rfind("response", 0) == 0) << "unknown type " << c.type;
  const bool lenient = c.type.find("lenient") != std::string::npos;
  const bool finish = c.type.find("finish") != std::string::npos;

  Expected x = ReadLog(c);
  Observed o = Replay(c, is_request);
  // At EOF (llhttp_finish) an unfinished message is an error; otherwise input just stops.
  const bool we_reject = o.rejected || (finish && o.incomplete);
  // Leniency about data after "Connection: close" is moot for us: we stop reading there,
  // which is what strict llhttp's error 5 amounts to (only the first message counts).
  const bool after_close = c.type.find("keep-alive") != std::string::npos ||
                           c.type.find("data-after-close") != std::string::npos;
  const bool want_reject = (x.error || lenient) && !after_close;
  if (after_close && x.heads.size() > 1) x.heads.resize(1);

  std::ostringstream why;
  bool agree = we_reject == want_reject;
  if (agree && !we_reject) {
    size_t parsed = is_request ? o.requests.size() : o.responses.size();
    if (parsed != x.heads.size()) {
      agree = false;
      why << "heads: llhttp " << x.heads.size() << ", ours " << parsed << "; ";
    } else if (parsed > 0) {
      const ExpectedHead& e = x.heads[0];
      BodyKind body;
      uint64_t cl;
      if (is_request) {
        const RequestHead& h = o.requests[0];
        if (h.method != x.first_method || h.target != x.first_url ||
            static_cast<int>(h.headers.size()) - o.host_injected[0] != x.first_fields) {
          agree = false;
          why << "method/url/fields: ours " << h.method << " " << h.target << " "
              << h.headers.size() << "; ";
        }
        body = h.body;
        cl = h.content_length;
      } else {
        const ResponseHead& h = o.responses[0];
        if (h.status != e.method_or_status ||
            static_cast<int>(h.headers.size()) != x.first_fields) {
          agree = false;
          why << "status/fields: ours " << h.status << " " << h.headers.size() << "; ";
        }
        body = h.body;
        cl = h.content_length;
      }
      // Framing fields of a message that has no body (1xx/204/304, HEAD) are moot.
      if (body != BodyKind::kNone && ((e.flags & 0x08) != 0) != (body == BodyKind::kChunked)) {
        agree = false;
        why << "chunked flag differs; ";
      }
      if ((e.flags & 0x20) && body == BodyKind::kContentLength && cl != e.content_length) {
        agree = false;
        why << "content-length differs; ";
      }
    }
  }

  auto it = Allowlist().find(c.key);
  std::string input_shown = testing::PrintToString(c.input);
  if (it != Allowlist().end()) {
    EXPECT_FALSE(agree) << c.key << " is allowlisted (" << it->second
                        << ") but now agrees with llhttp: remove it from the allowlist";
    return;
  }
  EXPECT_TRUE(agree) << c.key << "\n  type=" << c.type << "\n  llhttp: "
                     << (want_reject ? "reject " + x.error_line + (lenient ? " (lenient)" : "")
                                     : "accept")
                     << "\n  ours: "
                     << (we_reject ? std::string("reject ") + ErrorName(o.error)
                                   : std::string("accept"))
                     << (o.incomplete ? " (incomplete)" : "") << "\n  " << why.str()
                     << "\n  input: " << input_shown;
}

INSTANTIATE_TEST_SUITE_P(Cases, LlhttpCorpus, testing::ValuesIn(AllCases()),
                         [](const testing::TestParamInfo<Case>& i) { return i.param.name; });

// A loader that finds nothing (wrong runfiles path, format change) must not pass.
TEST(LlhttpCorpusLoader, FindsEnoughCases) {
  size_t requests = 0, responses = 0;
  for (const Case& c : AllCases()) (c.type.rfind("request", 0) == 0 ? requests : responses)++;
  EXPECT_GE(AllCases().size(), 250u);
  EXPECT_GE(requests, 150u);
  EXPECT_GE(responses, 60u);
}

TEST(LlhttpCorpusLoader, AllowlistedCasesExist) {
  for (const auto& [key, reason] : Allowlist()) {
    bool found = std::any_of(AllCases().begin(), AllCases().end(),
                             [&](const Case& c) { return c.key == key; });
    EXPECT_TRUE(found) << "allowlist entry matches no case: " << key;
  }
}

TEST(LlhttpCorpusLoader, UnescapesLikeLlhttp) {
  EXPECT_EQ(Unescape({"GET / HTTP/1.1", "A: 1\\r\\n\\", "B:\\t\\x41\\101\\0", ""}),
            std::string("GET / HTTP/1.1\r\nA: 1\r\nB:\tAA\0\r\n", 30));
}

}  // namespace
}  // namespace zproxy::http1
