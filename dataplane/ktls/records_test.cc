// Classification of decrypted handshake records (what RecvRecord does after TLS_GET_RECORD_TYPE).
#include "dataplane/ktls/records.h"

#include <gtest/gtest.h>

#include <vector>

namespace zproxy::ktls {
namespace {

RxKind Classify(const std::vector<uint8_t>& record, bool* requested = nullptr) {
  bool r = false;
  const RxKind k = ClassifyHandshake(record.data(), record.size(), &r);
  if (requested) *requested = r;
  return k;
}

TEST(ClassifyHandshake, TicketsAreSkippable) {
  EXPECT_EQ(Classify({4, 0, 0, 2, 0xaa, 0xbb}), RxKind::kNewSessionTicket);
  EXPECT_EQ(Classify({4, 0, 0, 1, 0xaa, 4, 0, 0, 0}), RxKind::kNewSessionTicket);
}

TEST(ClassifyHandshake, KeyUpdateWithRequestFlag) {
  bool requested = false;
  EXPECT_EQ(Classify({24, 0, 0, 1, 1}, &requested), RxKind::kKeyUpdate);
  EXPECT_TRUE(requested);
  EXPECT_EQ(Classify({24, 0, 0, 1, 0}, &requested), RxKind::kKeyUpdate);
  EXPECT_FALSE(requested);
  EXPECT_EQ(Classify({4, 0, 0, 0, 24, 0, 0, 1, 0}), RxKind::kKeyUpdate);  // after a ticket
}

TEST(ClassifyHandshake, AnythingElseIsUnexpected) {
  EXPECT_EQ(Classify({}), RxKind::kUnexpectedHandshake);
  EXPECT_EQ(Classify({1, 0, 0, 0}), RxKind::kUnexpectedHandshake);         // ClientHello
  EXPECT_EQ(Classify({4, 0, 0, 9, 1, 2}), RxKind::kUnexpectedHandshake);   // split message
  EXPECT_EQ(Classify({24, 0, 0, 1, 2}), RxKind::kUnexpectedHandshake);     // bad KeyUpdate
  EXPECT_EQ(Classify({24, 0, 0, 2, 0, 0}), RxKind::kUnexpectedHandshake);  // bad length
  EXPECT_EQ(Classify({4, 0}), RxKind::kUnexpectedHandshake);               // short header
}

}  // namespace
}  // namespace zproxy::ktls
