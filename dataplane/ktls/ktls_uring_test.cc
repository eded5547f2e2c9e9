// The worker's io_uring paths on a kTLS socket (dataplane/io's Ring and BufferRing, as the
// workers use them): multishot recv with provided buffers returns plaintext and ends with
// -EIO at a control record (RecvRecord then names it), SENDMSG with several iovecs sends
// plaintext that the userspace peer decrypts, and SEND_ZC either works or (6.1) is refused
// with EOPNOTSUPP without sending anything. Needs kTLS, so on a host without
// it this only checks the fallback outcome; in the VM (tools/ktls-vm-test) it runs for real.
#include <gtest/gtest.h>
#include <liburing.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/io/buffer_ring.h"
#include "dataplane/io/ring.h"
#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/records.h"
#include "dataplane/ktls/testing/tls_peers.h"

namespace zproxy::ktls {
namespace {

using testing::Endpoint;

constexpr uint16_t kGroup = 7;

// Waits for one CQE and copies it out (the slot is released at once).
bool WaitCqe(io_uring* ring, io_uring_cqe* out) {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{30, 0};
  if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) != 0 || cqe == nullptr) return false;
  *out = *cqe;
  io_uring_cqe_seen(ring, cqe);
  return true;
}

TEST(KtlsIoUring, WorkerPathsOnKtlsSocket) {
  const testing::TlsParams tls13{TLS1_3_VERSION, TLS1_3_VERSION, nullptr};
  auto server_ctx = testing::NewServerContext(tls13);
  auto client_ctx = testing::NewClientContext(tls13);
  ASSERT_TRUE(server_ctx && client_ctx);
  testing::TcpPair pair = testing::LoopbackPair();
  const std::vector<uint8_t> c2s = testing::RandomBytes(512 << 10);
  const std::vector<uint8_t> s2c = testing::RandomBytes(1 << 20);

  struct {
    std::string error;
    std::vector<uint8_t> got;
    int final_error = 0;
  } client;
  std::thread peer([&] {
    const int fd = pair.client.get();
    auto ssl = testing::Connect(client_ctx.get(), fd, &client.error);
    if (!ssl) return;
    Endpoint ep{fd, ssl.get(), false};
    if (!ep.WriteAll(c2s.data(), c2s.size(), &client.error)) return;
    SSL_shutdown(ssl.get());  // close_notify: the record the server's recv stops at
    client.got.resize(s2c.size());
    if (!ep.ReadExact(client.got.data(), client.got.size(), &client.error)) return;
    uint8_t byte;
    client.final_error = SSL_get_error(ssl.get(), SSL_read(ssl.get(), &byte, 1));
  });
  struct JoinOnExit {
    std::thread* t;
    testing::TcpPair* p;
    ~JoinOnExit() {
      if (t == nullptr) return;
      ::shutdown(p->server.get(), SHUT_RDWR);
      t->join();
    }
  } join{&peer, &pair};

  std::string error;
  auto ssl = testing::Accept(server_ctx.get(), pair.server.get(), &error);
  ASSERT_TRUE(ssl) << error;
  const Result r = TryInstall(pair.server.get(), ssl.get());
  if (!r.installed()) {
    // No kTLS here: the io_uring cases need it (they run in the VM). Finish in userspace so
    // the peer completes.
    EXPECT_EQ(Detect(), Support::kAbsent) << OutcomeName(r.outcome);
    EXPECT_EQ(r.outcome, Outcome::kNoKernelSupport);
    Endpoint ep{pair.server.get(), ssl.get(), false};
    std::vector<uint8_t> got(c2s.size());
    ASSERT_TRUE(ep.ReadExact(got.data(), got.size(), &error)) << error;
    ASSERT_TRUE(ep.WriteAll(s2c.data(), s2c.size(), &error)) << error;
    ASSERT_TRUE(ep.CloseNotify(&error)) << error;
    return;
  }
  const int fd = pair.server.get();

  io::Ring ring;
  io::RingOptions options;
  options.sq_depth = 64;
  ASSERT_TRUE(ring.Init(options, &error)) << error;
  io::BufferRing buffers;
  ASSERT_TRUE(buffers.Init(ring.raw(), kGroup, 64, 16384, &error)) << error;

  // 1. Multishot recv of the client's 512 KiB, then its close_notify.
  auto arm_recv = [&] {
    io_uring_sqe* sqe = ring.Sqe();
    io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    sqe->user_data = 1;
    io_uring_submit(ring.raw());
  };
  std::vector<uint8_t> got;
  bool close_notify = false;
  int eio_seen = 0;
  arm_recv();
  for (int guard = 0; !close_notify && guard < 100000; ++guard) {
    io_uring_cqe cqe;
    ASSERT_TRUE(WaitCqe(ring.raw(), &cqe)) << "no recv completion";
    if (cqe.res > 0) {
      ASSERT_TRUE(cqe.flags & IORING_CQE_F_BUFFER);
      const uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
      const auto* p = reinterpret_cast<const uint8_t*>(buffers.Data(bid));
      got.insert(got.end(), p, p + cqe.res);
      buffers.OnConsumed();
      buffers.Recycle(bid);
      buffers.Commit();
    } else if (cqe.res == -ENOBUFS) {
      buffers.OnExhausted();
      buffers.Commit();
    } else if (cqe.res == -EIO) {
      // A record that is not application data is next: the worker reads it with a cmsg.
      ++eio_seen;
      std::vector<uint8_t> record(kMaxRecordPayload);
      const RxResult rx = RecvRecord(fd, record.data(), record.size(), MSG_DONTWAIT);
      ASSERT_EQ(rx.kind, RxKind::kCloseNotify) << "kind " << static_cast<int>(rx.kind);
      close_notify = true;
      break;
    } else {
      FAIL() << "recv completion " << cqe.res << " (" << strerror(-cqe.res) << ") after "
             << got.size() << " bytes";
    }
    if (!(cqe.flags & IORING_CQE_F_MORE)) arm_recv();
  }
  EXPECT_EQ(eio_seen, 1);
  EXPECT_TRUE(close_notify);
  EXPECT_EQ(got.size(), c2s.size());
  EXPECT_TRUE(got == c2s) << "multishot recv plaintext differs";

  // 2. The first half of s2c with SENDMSG, four 32 KiB iovecs per call (one send in flight).
  const size_t half = s2c.size() / 2;
  for (size_t off = 0; off < half;) {
    iovec iov[4];
    size_t batch = 0;
    for (int i = 0; i < 4 && off + batch < half; ++i) {
      const size_t n = std::min<size_t>(32 << 10, half - off - batch);
      iov[i] = {const_cast<uint8_t*>(s2c.data() + off + batch), n};
      batch += n;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 4;
    while (msg.msg_iovlen > 0 && iov[msg.msg_iovlen - 1].iov_len == 0) --msg.msg_iovlen;
    io_uring_sqe* sqe = ring.Sqe();
    io_uring_prep_sendmsg(sqe, fd, &msg, MSG_NOSIGNAL);
    sqe->user_data = 2;
    io_uring_submit(ring.raw());
    io_uring_cqe cqe;
    do {
      ASSERT_TRUE(WaitCqe(ring.raw(), &cqe));
    } while (cqe.user_data != 2);  // a late multishot CQE (user_data 1) is not ours
    ASSERT_GT(cqe.res, 0) << "sendmsg on kTLS: " << strerror(-cqe.res);
    off += static_cast<size_t>(cqe.res);  // partial sends resume at the right byte
  }

  // 3. The second half with SEND_ZC (64 KiB per op; result CQE, then the notification).
  // Kernel 6.1 refuses zero-copy sends on a TLS socket with EOPNOTSUPP and sends nothing;
  // the worker then uses a plain SEND for that buffer (done here with IORING_OP_SEND), and
  // the stream must stay intact either way.
  int zc_ops = 0, zc_refused = 0;
  for (size_t off = half; off < s2c.size();) {
    const size_t n = std::min<size_t>(64 << 10, s2c.size() - off);
    const bool try_zc = zc_refused == 0;
    io_uring_sqe* sqe = ring.Sqe();
    if (try_zc) {
      io_uring_prep_send_zc(sqe, fd, s2c.data() + off, n, MSG_NOSIGNAL, 0);
    } else {
      io_uring_prep_send(sqe, fd, s2c.data() + off, n, MSG_NOSIGNAL);
    }
    sqe->user_data = 3;
    io_uring_submit(ring.raw());
    int result = 0;
    bool have_result = false, notified = !try_zc;
    while (!have_result || (!notified && result > 0)) {
      io_uring_cqe cqe;
      ASSERT_TRUE(WaitCqe(ring.raw(), &cqe)) << "send completion missing";
      if (cqe.user_data != 3) continue;
      if (cqe.flags & IORING_CQE_F_NOTIF) {
        notified = true;
      } else {
        have_result = true;
        result = cqe.res;
        if (!(cqe.flags & IORING_CQE_F_MORE)) notified = true;  // no notification will come
      }
    }
    if (try_zc && result == -EOPNOTSUPP) {
      ++zc_refused;  // nothing was sent: resend the same bytes without zero-copy
      continue;
    }
    ASSERT_GT(result, 0) << (try_zc ? "SEND_ZC" : "SEND") << " on kTLS: " << strerror(-result);
    off += static_cast<size_t>(result);
    if (try_zc) ++zc_ops;
  }
  std::printf(
      "io_uring on kTLS: multishot recv %zu bytes, EIO at close_notify; SENDMSG ok; SEND_ZC %s\n",
      got.size(), zc_refused ? "refused with EOPNOTSUPP (plain SEND used)" : "ok");
  if (zc_refused == 0) {
    EXPECT_GT(zc_ops, 0);
  }
  ASSERT_EQ(SendCloseNotify(fd), 0);
  ::shutdown(fd, SHUT_WR);
  peer.join();
  join.t = nullptr;
  EXPECT_EQ(client.error, "");
  EXPECT_TRUE(client.got == s2c) << "SENDMSG/SEND_ZC plaintext differs at the peer";
  EXPECT_EQ(client.final_error, SSL_ERROR_ZERO_RETURN);
}

}  // namespace
}  // namespace zproxy::ktls
