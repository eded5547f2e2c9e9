// Byte scanners behind a plain function interface: the hot loops of the head parser.
// Each returns the first position in [p, end) whose byte ends the current element, or
// `end`. AVX2 (32 bytes/step), SSE2 (16) and scalar versions give identical results; the
// best one the CPU supports is chosen once, on first use.
#pragma once

namespace zproxy::http1::internal {

// First byte that may not appear in a field value or reason phrase: a control byte other
// than HTAB (so CR, LF and NUL stop it), or DEL. obs-text (0x80-0xFF) is allowed.
const char* ScanFieldValue(const char* p, const char* end);

// First byte outside visible ASCII (0x21-0x7E): ends a request-target (SP) or is invalid.
const char* ScanTarget(const char* p, const char* end);

// Implementations, exposed for tests and the fuzzer (the dispatching ones above are what
// the parser uses).
const char* ScanFieldValueScalar(const char* p, const char* end);
const char* ScanTargetScalar(const char* p, const char* end);
const char* ScanFieldValueSse2(const char* p, const char* end);
const char* ScanTargetSse2(const char* p, const char* end);
const char* ScanFieldValueAvx2(const char* p, const char* end);
const char* ScanTargetAvx2(const char* p, const char* end);

}  // namespace zproxy::http1::internal
