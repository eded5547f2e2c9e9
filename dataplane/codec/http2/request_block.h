// An HTTP/2 upstream request as written when its stream starts: the head's views die
// with the client's input (or header block) right after, and the request may be sent
// later (the connection is still connecting) or twice (a retry on another endpoint), so
// it is kept in a block: pseudo-fields first, then the end-to-end fields, each as
// name length (2 bytes), value length (4 bytes), name, value.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "dataplane/http/message.h"

namespace zproxy::codec::http2 {

// Writes the request (after header policy): :method, :scheme, :authority, :path (no
// :path/:scheme for CONNECT), the fields, and "te: trailers" when asked (gRPC needs it).
// Returns the length, 0 if it did not fit in cap.
size_t EncodeRequestBlock(const http::RequestHead& req, std::string_view scheme, bool te_trailers,
                          char* out, size_t cap);

// Fields alone in the same format (trailers kept until they can be sent).
size_t EncodeFieldBlock(std::span<const http::Field> fields, char* out, size_t cap);

// The next (name, value) of a block; false at its end.
bool NextBlockField(std::string_view* block, std::string_view* name, std::string_view* value);

}  // namespace zproxy::codec::http2
