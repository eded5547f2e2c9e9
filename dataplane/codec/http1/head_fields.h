// Pieces both sides of the HTTP/1 codec use to turn parsed heads into neutral ones and
// neutral heads into HTTP/1 bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/codec/http1/writer.h"
#include "dataplane/http/message.h"
#include "dataplane/http1/http1.h"

namespace zproxy::codec::http1 {

http::Framing ToFraming(zproxy::http1::BodyKind kind);

// The first Upgrade field's value ("" if none). Multiple Upgrade fields are not merged:
// clients send one.
std::string_view UpgradeValue(std::span<const http::Field> fields);

// Removes the connection-specific fields (the parser's hop-by-hop mask) and, for
// requests, Host (it is the head's authority) from `fields`, in place, keeping order.
std::span<http::Field> EndToEndFields(std::span<http::Field> fields, const uint64_t hop_by_hop[2],
                                      bool drop_host);

void WriteStatusLine(Writer& w, const http::ResponseHead& resp);
void WriteFields(Writer& w, std::span<const http::Field> fields);
// "Connection: Upgrade" and the Upgrade field.
void WriteUpgrade(Writer& w, std::string_view protocol);

}  // namespace zproxy::codec::http1
