// Character classes of RFC 9110/9112 as 256-entry tables, shared by the head parsers and
// the chunked scanner. Internal to dataplane/http1.
#pragma once

#include <array>
#include <cstdint>

namespace zproxy::http1::internal {

constexpr bool IsTcharSlow(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

constexpr std::array<bool, 256> MakeTcharTable() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; c++) t[c] = IsTcharSlow(static_cast<unsigned char>(c));
  return t;
}

inline constexpr std::array<bool, 256> kTchar = MakeTcharTable();

inline bool IsTchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }

// field-vchar / SP / HTAB: what a field value (and a reason phrase) may contain.
inline bool IsValueByte(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7F);
}

inline bool IsOws(char c) { return c == ' ' || c == '\t'; }
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Hex digit value, or -1.
inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  unsigned char l = static_cast<unsigned char>(c) | 0x20;
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}

inline char ToLowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

}  // namespace zproxy::http1::internal
