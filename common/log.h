// Minimal structured-enough logging to stderr: one write(2) per line so lines from
// several threads and processes never interleave. Not for the per-request hot path
// (use counters there); for startup, fallbacks, errors and lifecycle events.
#pragma once

#include <cstdarg>

namespace zproxy {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// Component name printed in every line, e.g. "zproxyd" or "dataplane". Set once at
// startup before threads start.
void SetLogComponent(const char* name);
void SetLogLevel(LogLevel level);

void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define ZLOG_DEBUG(...) ::zproxy::Log(::zproxy::LogLevel::kDebug, __VA_ARGS__)
#define ZLOG_INFO(...) ::zproxy::Log(::zproxy::LogLevel::kInfo, __VA_ARGS__)
#define ZLOG_WARN(...) ::zproxy::Log(::zproxy::LogLevel::kWarn, __VA_ARGS__)
#define ZLOG_ERROR(...) ::zproxy::Log(::zproxy::LogLevel::kError, __VA_ARGS__)

}  // namespace zproxy
