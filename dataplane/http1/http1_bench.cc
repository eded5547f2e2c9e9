// Micro-benchmark of ParseRequest per SIMD level. Results: see README.md in this folder.
// Run: bazel run -c opt //dataplane/http1:http1_bench
#include <benchmark/benchmark.h>

#include <string>

#include "dataplane/http1/http1.h"

namespace zproxy::http1 {
namespace {

const std::string kTypical =
    "GET /api/v1/users/12345?fields=name,email HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl\r\n"
    "X-Request-Id: 7f3c9a2e-1b4d-4c8e-9f0a-2d6b8e1c3a5f\r\n"
    "Connection: keep-alive\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

std::string BrowserRequest() {
  std::string s =
      "GET /static/js/app.3f9c2e1b.chunk.js?v=20240101 HTTP/1.1\r\n"
      "Host: www.example.com\r\n"
      "Connection: keep-alive\r\n"
      "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
      "sec-ch-ua-mobile: ?0\r\n"
      "sec-ch-ua-platform: \"Linux\"\r\n"
      "Upgrade-Insecure-Requests: 1\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/124.0.0.0 Safari/537.36\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
      "*/*;q=0.8\r\n"
      "Sec-Fetch-Site: same-origin\r\n"
      "Sec-Fetch-Mode: no-cors\r\n"
      "Sec-Fetch-Dest: script\r\n"
      "Referer: https://www.example.com/products/category/shoes?page=2&sort=price\r\n"
      "Accept-Encoding: gzip, deflate, br, zstd\r\n"
      "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
      "Cookie: session=eyJ1c2VyIjoiYWxpY2UiLCJleHAiOjE3MTAwMDAwMDB9; _ga=GA1.2.123456789."
      "1700000000; _gid=GA1.2.987654321.1700000000; theme=dark; consent=all\r\n"
      "If-None-Match: W/\"5e15153d-120f\"\r\n"
      "If-Modified-Since: Wed, 08 Jan 2024 23:11:55 GMT\r\n"
      "Cache-Control: max-age=0\r\n"
      "DNT: 1\r\n"
      "Pragma: no-cache\r\n"
      "Priority: u=1\r\n"
      "X-Requested-With: XMLHttpRequest\r\n"
      "X-Forwarded-For: 203.0.113.7\r\n"
      "X-Forwarded-Proto: https\r\n"
      "X-Real-IP: 203.0.113.7\r\n"
      "Origin: https://www.example.com\r\n"
      "Sec-Purpose: prefetch\r\n"
      "Via: 1.1 cdn-edge-42\r\n"
      "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
      "\r\n";
  return s;
}

void Run(benchmark::State& state, const char* level, const std::string& req) {
  if (!ForceSimdLevelForTesting(level)) {
    state.SkipWithError("SIMD level not supported on this CPU");
    return;
  }
  Header storage[64];
  RequestHead head;
  Error error;
  for (auto _ : state) {
    Status st = ParseRequest(req, Limits(), storage, &head, &error);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(head);
  }
  if (ParseRequest(req, Limits(), storage, &head, &error) != Status::kDone) {
    state.SkipWithError("request did not parse");
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * req.size()));
  state.counters["headers"] = static_cast<double>(head.headers.size());
}

void BM_Typical(benchmark::State& state, const char* level) { Run(state, level, kTypical); }
void BM_Browser(benchmark::State& state, const char* level) {
  static const std::string req = BrowserRequest();
  Run(state, level, req);
}

BENCHMARK_CAPTURE(BM_Typical, scalar, "scalar");
BENCHMARK_CAPTURE(BM_Typical, sse2, "sse2");
BENCHMARK_CAPTURE(BM_Typical, avx2, "avx2");
BENCHMARK_CAPTURE(BM_Browser, scalar, "scalar");
BENCHMARK_CAPTURE(BM_Browser, sse2, "sse2");
BENCHMARK_CAPTURE(BM_Browser, avx2, "avx2");

}  // namespace
}  // namespace zproxy::http1

BENCHMARK_MAIN();
