// Drives tls::Session and tls::ServerContext with a BoringSSL client over plain buffers:
// handshake, ALPN, SNI selection by name and key type, data both ways, resumption with a
// ticket issued by another session (another worker), and classification of failures.
#include "dataplane/tls/session.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/tls/testing/self_signed.h"
#include "dataplane/tls/client_context.h"
#include "dataplane/tls/server_context.h"

namespace zproxy::tls {
namespace {

// Writes a self-signed certificate for `names` (SAN DNS; the CN is the first name) and
// its key as PEM files; returns the config entry.
zproxy::v1::TlsCertificate WriteCert(const std::string& tag, std::vector<std::string> names,
                                     bool ecdsa) {
  tlsctx::SelfSignedOptions o;
  o.cn = names[0];
  for (const auto& n : names) o.san += (o.san.empty() ? "DNS:" : ",DNS:") + n;
  o.rsa = !ecdsa;
  const tlsctx::SelfSigned pair = tlsctx::MakeSelfSigned(o);
  zproxy::v1::TlsCertificate c;
  c.set_cert(tlsctx::WriteTestFile(tag + ".pem", pair.cert_pem));
  c.set_key(tlsctx::WriteTestFile(tag + ".key", pair.key_pem));
  return c;
}

// Collects what the server session emits.
struct Buffer : WireSink {
  std::string data;
  bool Append(const char* p, size_t n) override {
    data.append(p, n);
    return true;
  }
};

// A BoringSSL client over two memory BIOs, and the server Session, pumped by hand.
class Pair {
 public:
  Pair(const ServerContext& server, const char* sni, uint16_t max_version = TLS1_3_VERSION,
       SSL_SESSION* resume = nullptr, bool rsa_only = false) {
    cctx_ = SSL_CTX_new(TLS_method());
    SSL_CTX_set_max_proto_version(cctx_, max_version);
    SSL_CTX_set_session_cache_mode(cctx_, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_sess_set_new_cb(cctx_, [](SSL* ssl, SSL_SESSION* s) {
      auto* self = static_cast<Pair*>(SSL_get_app_data(ssl));
      if (self->ticket_ != nullptr) SSL_SESSION_free(self->ticket_);
      self->ticket_ = s;  // keeps the reference
      return 1;
    });
    if (rsa_only) SSL_CTX_set1_sigalgs_list(cctx_, "RSA-PSS+SHA256:RSA+SHA256");
    client_ = SSL_new(cctx_);
    SSL_set_app_data(client_, this);
    static const uint8_t kAlpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(client_, kAlpn, sizeof(kAlpn) - 1);
    if (sni != nullptr) SSL_set_tlsext_host_name(client_, sni);
    if (resume != nullptr) SSL_set_session(client_, resume);
    to_server_ = BIO_new(BIO_s_mem());
    from_server_ = BIO_new(BIO_s_mem());
    SSL_set_bio(client_, from_server_, to_server_);
    SSL_set_connect_state(client_);
    EXPECT_TRUE(server_.Start(server, &wire_));
  }
  ~Pair() {
    server_.Reset();
    if (ticket_ != nullptr) SSL_SESSION_free(ticket_);
    SSL_free(client_);
    SSL_CTX_free(cctx_);
  }

  // Moves client bytes to the server and back until neither makes progress.
  Session::Result Handshake() {
    Session::Result r = Session::Result::kWantInput;
    for (int i = 0; i < 20; i++) {
      SSL_do_handshake(client_);
      FeedServer();
      r = server_.Handshake();
      DrainToClient();
      if (r == Session::Result::kFailed) return r;
      if (r == Session::Result::kOk && SSL_is_init_finished(client_)) break;
    }
    // TLS 1.3 tickets arrive after the handshake: let the client read them.
    char tmp[16];
    SSL_read(client_, tmp, sizeof(tmp));
    return r;
  }

  void FeedServer() {
    char* p;
    long n = BIO_get_mem_data(to_server_, &p);
    pending_.append(p, static_cast<size_t>(n));
    BIO_reset(to_server_);
    server_.SetInput(pending_.data(), pending_.size());
  }
  // The session consumed its whole window (the caller may free its receive buffer).
  void AfterServerCall() {
    EXPECT_EQ(server_.input_left(), 0u);
    pending_.clear();
  }
  void DrainToClient() {
    AfterServerCall();
    BIO_write(from_server_, wire_.data.data(), static_cast<int>(wire_.data.size()));
    wire_.data.clear();
  }

  // Raw bytes as if a client sent them.
  void SendRaw(const std::string& bytes) { BIO_write(to_server_, bytes.data(), bytes.size()); }

  SSL* client() { return client_; }
  Session& server() { return server_; }
  SSL_SESSION* ticket() { return ticket_; }
  std::string& wire() { return wire_.data; }

 private:
  SSL_CTX* cctx_;
  SSL* client_;
  BIO* to_server_;
  BIO* from_server_;
  Buffer wire_;
  Session server_;
  std::string pending_;
  SSL_SESSION* ticket_ = nullptr;
};

class SessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ecdsa_ = new zproxy::v1::TlsCertificate(WriteCert("ecdsa", {"example.com"}, true));
    rsa_ = new zproxy::v1::TlsCertificate(WriteCert("rsa", {"example.com"}, false));
    wild_ = new zproxy::v1::TlsCertificate(WriteCert("wild", {"*.wild.test"}, true));
  }
  std::unique_ptr<ServerContext> Context(bool strict = false, const char* min = "TLS1_2",
                                         std::shared_ptr<TicketKeys> keys = nullptr) {
    zproxy::v1::ListenerTls cfg;
    *cfg.add_certificates() = *ecdsa_;
    *cfg.add_certificates() = *rsa_;
    *cfg.add_certificates() = *wild_;
    cfg.add_alpn("http/1.1");
    cfg.set_min_version(min);
    cfg.set_strict_sni(strict);
    std::string error;
    auto ctx = ServerContext::Create(cfg, std::move(keys), &error);
    EXPECT_NE(ctx, nullptr) << error;
    return ctx;
  }
  static zproxy::v1::TlsCertificate* ecdsa_;
  static zproxy::v1::TlsCertificate* rsa_;
  static zproxy::v1::TlsCertificate* wild_;
};
zproxy::v1::TlsCertificate* SessionTest::ecdsa_;
zproxy::v1::TlsCertificate* SessionTest::rsa_;
zproxy::v1::TlsCertificate* SessionTest::wild_;

std::string PeerName(SSL* client) {
  X509* x = SSL_get_peer_certificate(client);
  if (x == nullptr) return "";
  char buf[256];
  X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf));
  EVP_PKEY* pub = X509_get_pubkey(x);
  int type = EVP_PKEY_id(pub);
  EVP_PKEY_free(pub);
  X509_free(x);
  return std::string(buf) + (type == EVP_PKEY_EC ? "/ec" : "/rsa");
}

TEST_F(SessionTest, HandshakeAlpnAndDataBothWays) {
  auto ctx = Context();
  Pair p(*ctx, "example.com");
  ASSERT_EQ(p.Handshake(), Session::Result::kOk);
  EXPECT_STREQ(p.server().version(), "TLSv1.3");
  const uint8_t* alpn;
  unsigned alpn_len;
  SSL_get0_alpn_selected(p.client(), &alpn, &alpn_len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(alpn), alpn_len), "http/1.1");
  EXPECT_EQ(p.server().alpn(), "http/1.1");
  EXPECT_EQ(PeerName(p.client()), "example.com/ec");

  // 1 MB client -> server.
  std::string sent(1 << 20, '\0');
  for (size_t i = 0; i < sent.size(); i++) sent[i] = static_cast<char>(i * 7 + i / 4096);
  ASSERT_EQ(SSL_write(p.client(), sent.data(), static_cast<int>(sent.size())),
            static_cast<int>(sent.size()));
  p.FeedServer();
  std::string got;
  char buf[16384];
  size_t n;
  while (p.server().Read(buf, sizeof(buf), &n) == Session::Result::kOk) got.append(buf, n);
  p.AfterServerCall();
  EXPECT_EQ(got, sent);

  // 1 MB server -> client.
  ASSERT_EQ(p.server().Write(sent.data(), sent.size()), Session::Result::kOk);
  p.DrainToClient();
  got.clear();
  int r;
  while ((r = SSL_read(p.client(), buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(r));
  EXPECT_EQ(got, sent);

  // close_notify from the client reads as kClosed.
  SSL_shutdown(p.client());
  p.FeedServer();
  EXPECT_EQ(p.server().Read(buf, sizeof(buf), &n), Session::Result::kClosed);
}

TEST_F(SessionTest, SniPicksByNameAndKeyType) {
  auto ctx = Context();
  {
    Pair p(*ctx, "a.wild.test");
    ASSERT_EQ(p.Handshake(), Session::Result::kOk);
    EXPECT_EQ(PeerName(p.client()), "*.wild.test/ec");
  }
  {
    Pair p(*ctx, "example.com", TLS1_3_VERSION, nullptr, /*rsa_only=*/true);
    ASSERT_EQ(p.Handshake(), Session::Result::kOk);
    EXPECT_EQ(PeerName(p.client()), "example.com/rsa");
  }
  {
    Pair p(*ctx, "unknown.test");  // not strict: the default (first) certificate
    ASSERT_EQ(p.Handshake(), Session::Result::kOk);
    EXPECT_EQ(PeerName(p.client()), "example.com/ec");
  }
  {
    Pair p(*ctx, nullptr);  // no SNI at all
    ASSERT_EQ(p.Handshake(), Session::Result::kOk);
    EXPECT_EQ(PeerName(p.client()), "example.com/ec");
  }
}

TEST_F(SessionTest, StrictSniRefusesUnknownName) {
  auto ctx = Context(/*strict=*/true);
  Pair p(*ctx, "unknown.test");
  EXPECT_EQ(p.Handshake(), Session::Result::kFailed);
  EXPECT_EQ(p.server().failure(), HandshakeFailure::kUnknownSni);
}

TEST_F(SessionTest, MinVersionRefusesOlderClient) {
  auto ctx = Context(false, "TLS1_3");
  Pair p(*ctx, "example.com", TLS1_2_VERSION);
  EXPECT_EQ(p.Handshake(), Session::Result::kFailed);
  EXPECT_EQ(p.server().failure(), HandshakeFailure::kVersion);
}

TEST_F(SessionTest, GarbageIsNotTls) {
  auto ctx = Context();
  Pair p(*ctx, "example.com");
  p.SendRaw("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  p.FeedServer();
  EXPECT_EQ(p.server().Handshake(), Session::Result::kFailed);
  EXPECT_EQ(p.server().failure(), HandshakeFailure::kNotTls);
}

TEST_F(SessionTest, TicketFromOneContextResumesOnAnotherWithSharedKeys) {
  // Two contexts sharing keys stand for two config snapshots (or workers).
  auto keys = std::make_shared<TicketKeys>(3600);
  auto first = Context(false, "TLS1_2", keys);
  auto second = Context(false, "TLS1_2", keys);
  for (uint16_t version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    SSL_SESSION* ticket;
    {
      Pair p(*first, "example.com", version);
      ASSERT_EQ(p.Handshake(), Session::Result::kOk);
      EXPECT_FALSE(p.server().resumed());
      ASSERT_NE(p.ticket(), nullptr);
      ticket = p.ticket();
      SSL_SESSION_up_ref(ticket);
    }
    {
      Pair p(*second, "example.com", version, ticket);
      ASSERT_EQ(p.Handshake(), Session::Result::kOk);
      EXPECT_TRUE(p.server().resumed()) << "version " << version;
    }
    // After two rotations the key is gone: a full handshake again.
    keys->RotateForTest();
    keys->RotateForTest();
    {
      Pair p(*second, "example.com", version, ticket);
      ASSERT_EQ(p.Handshake(), Session::Result::kOk);
      EXPECT_FALSE(p.server().resumed());
    }
    SSL_SESSION_free(ticket);
  }
}

TEST_F(SessionTest, BadKeyNamesTheField) {
  zproxy::v1::ListenerTls cfg;
  auto* c = cfg.add_certificates();
  c->set_cert(ecdsa_->cert());
  c->set_key(rsa_->key());
  std::string error;
  EXPECT_EQ(ServerContext::Create(cfg, nullptr, &error), nullptr);
  EXPECT_NE(error.find("certificates[0].key"), std::string::npos) << error;
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;
}

// The exact texts of load errors (they reach zproxyd's log and the Admin API's NACK). The
// library's own text is pinned too, so a change of wording shows here.
TEST_F(SessionTest, LoadErrorTexts) {
  auto server_error = [](const std::string& cert, const std::string& cert_pem,
                         const std::string& key, const std::string& key_pem) {
    zproxy::v1::ListenerTls cfg;
    auto* c = cfg.add_certificates();
    c->set_cert(cert);
    c->set_cert_pem(cert_pem);
    c->set_key(key);
    c->set_key_pem(key_pem);
    std::string error;
    EXPECT_EQ(ServerContext::Create(cfg, nullptr, &error), nullptr);
    return error;
  };
  EXPECT_EQ(server_error("/nonexistent/c.pem", "", ecdsa_->key(), ""),
            "certificates[0].cert: cannot read \"/nonexistent/c.pem\": No such file or directory");
  EXPECT_EQ(server_error("c.pem", "garbage\n", ecdsa_->key(), ""),
            "certificates[0].cert: \"c.pem\" holds no PEM certificate");
  EXPECT_EQ(server_error(ecdsa_->cert(), "", "/nonexistent/k.pem", ""),
            "certificates[0].key: cannot read \"/nonexistent/k.pem\": No such file or directory");
  EXPECT_EQ(server_error(ecdsa_->cert(), "", "k.pem", "garbage\n"),
            "certificates[0].key: \"k.pem\" holds no PEM private key "
            "(error:0900006e:PEM routines:OPENSSL_internal:NO_START_LINE)");
  EXPECT_EQ(server_error(ecdsa_->cert(), "", rsa_->key(), ""),
            "certificates[0].key: the private key does not match the certificate \"" +
                ecdsa_->cert() + "\"");

  auto client_error = [](zproxy::v1::ClusterTls cfg) {
    std::string error;
    EXPECT_EQ(ClientContext::Create(cfg, &error), nullptr);
    return error;
  };
  zproxy::v1::ClusterTls t;
  t.set_ca("/nonexistent/ca.pem");
  EXPECT_EQ(client_error(t), "ca: cannot read \"/nonexistent/ca.pem\": No such file or directory");
  t.set_ca("ca.pem");
  t.set_ca_pem("garbage\n");
  EXPECT_EQ(client_error(t), "ca: cannot load \"ca.pem\": no PEM certificate");
  t = zproxy::v1::ClusterTls();
  t.set_verify(false);
  t.set_cert("/nonexistent/c.pem");
  t.set_key(ecdsa_->key());
  EXPECT_EQ(client_error(t), "cert: cannot read \"/nonexistent/c.pem\": No such file or directory");
  t.set_cert("c.pem");
  t.set_cert_pem("garbage\n");
  EXPECT_EQ(client_error(t), "cert: cannot load \"c.pem\": no PEM certificate");
  t.clear_cert_pem();
  t.set_cert(ecdsa_->cert());
  t.set_key("/nonexistent/k.pem");
  EXPECT_EQ(client_error(t), "key: cannot read \"/nonexistent/k.pem\": No such file or directory");
  t.set_key("k.pem");
  t.set_key_pem("garbage\n");
  EXPECT_EQ(client_error(t),
            "key: cannot load \"k.pem\" for the client certificate: "
            "error:0900006e:PEM routines:OPENSSL_internal:NO_START_LINE");
  t.clear_key_pem();
  t.set_key(rsa_->key());
  EXPECT_EQ(client_error(t), "key: cannot load \"" + rsa_->key() +
                                 "\" for the client certificate: "
                                 "error:0b000073:X.509 certificate routines:OPENSSL_internal:"
                                 "KEY_TYPE_MISMATCH");
}

}  // namespace
}  // namespace zproxy::tls
