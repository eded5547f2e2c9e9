#include "dataplane/sync/sync_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "common/log.h"
#include "zproxy/v1/dataplane_sync.grpc.pb.h"

namespace zproxy::dataplane {

using Clock = std::chrono::steady_clock;
using zproxy::v1::ControlMessage;
using zproxy::v1::DataplaneMessage;

struct SyncClient::Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<DataplaneMessage, ControlMessage>> rw;
  std::mutex write_mu;  // ACK/NACK (reader thread) and stats (stats thread)
  bool ended = false;   // under the client's mu_: the stats thread stops
  bool Write(const DataplaneMessage& m) {
    std::lock_guard<std::mutex> lock(write_mu);
    return rw->Write(m);
  }
};

namespace {

std::shared_ptr<grpc::Channel> Dial(const std::string& address, std::chrono::milliseconds max) {
  grpc::ChannelArguments args;
  // A fresh channel per attempt, not shared with earlier ones: our backoff decides.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(max.count()));
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

SyncClient::SyncClient(Options options, ConfigApplier* applier)
    : options_(std::move(options)), applier_(applier) {}

SyncClient::~SyncClient() { Stop(); }

void SyncClient::Prepare() {
  if (engine_anchor_ == nullptr) engine_anchor_ = Dial(options_.address, options_.max_backoff);
}

void SyncClient::Start() {
  Prepare();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "zp-sync");
    Loop();
  });
}

void SyncClient::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (stream_ != nullptr) stream_->context.TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  engine_anchor_.reset();
}

bool SyncClient::SleepUnlessStopped(Ms d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

void SyncClient::Loop() {
  Ms backoff = options_.min_backoff;
  bool logged_down = false;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    const Clock::time_point began = Clock::now();
    const bool established = RunStream();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (established) {
      ZLOG_WARN("sync: stream to zproxyd (%s) ended; serving config version %llu and redialing",
                options_.address.c_str(), static_cast<unsigned long long>(applier_->version()));
      logged_down = false;
      // A stream that lived a while proves zproxyd was healthy: start over at the minimum.
      if (Clock::now() - began > options_.max_backoff) backoff = options_.min_backoff;
    } else if (!logged_down) {
      ZLOG_WARN(
          "sync: cannot reach zproxyd at %s; serving config version %llu and retrying "
          "(backoff %lld..%lld ms)",
          options_.address.c_str(), static_cast<unsigned long long>(applier_->version()),
          static_cast<long long>(options_.min_backoff.count()),
          static_cast<long long>(options_.max_backoff.count()));
      logged_down = true;
    }
    if (!SleepUnlessStopped(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool SyncClient::RunStream() {
  auto channel = Dial(options_.address, options_.max_backoff);
  auto stub = zproxy::v1::DataplaneSync::NewStub(channel);
  Stream stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    stream_ = &stream;
  }
  stream.rw = stub->Sync(&stream.context);
  DataplaneMessage hello;
  hello.mutable_hello()->set_pid(static_cast<uint32_t>(options_.pid));
  hello.mutable_hello()->set_config_version(applier_->version());
  if (options_.fill_hello) options_.fill_hello(hello.mutable_hello());
  bool established = false;
  std::thread stats;
  if (stream.Write(hello)) {
    // With wait_for_ready off, a write on a channel that cannot connect fails at once;
    // a successful one means zproxyd's socket took it.
    established = true;
    connected_.store(true);
    ZLOG_INFO("sync: connected to zproxyd at %s (pid %d, config version %llu)",
              options_.address.c_str(), options_.pid,
              static_cast<unsigned long long>(applier_->version()));
    stats = std::thread([this, &stream] {
      pthread_setname_np(pthread_self(), "zp-sync-stats");
      StatsLoop(&stream);
    });
    ControlMessage m;
    while (stream.rw->Read(&m)) {
      if (m.kind_case() != ControlMessage::kSnapshot) continue;
      const auto& snap = m.snapshot();
      ConfigApplier::Result r = applier_->Apply(snap, options_.apply_timeout_ms);
      DataplaneMessage answer;
      if (r.ok) {
        answer.mutable_ack()->set_version(snap.version());
        answer.mutable_ack()->set_apply_us(r.apply_us);
      } else {
        ZLOG_WARN("sync: config version %llu not applied%s: %s",
                  static_cast<unsigned long long>(snap.version()),
                  r.needs_restart ? " (needs a data plane restart)" : "", r.reason.c_str());
        answer.mutable_nack()->set_version(snap.version());
        answer.mutable_nack()->set_reason(r.reason);
        answer.mutable_nack()->set_needs_restart(r.needs_restart);
      }
      if (!stream.Write(answer)) break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream.ended = true;
    stream_ = nullptr;
  }
  cv_.notify_all();
  stream.context.TryCancel();  // unblocks a stats Write
  if (stats.joinable()) stats.join();
  connected_.store(false);
  grpc::Status st = stream.rw->Finish();
  if (established && !st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
    ZLOG_INFO("sync: stream closed: %s", st.error_message().c_str());
  }
  return established;
}

void SyncClient::StatsLoop(Stream* stream) {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, options_.stats_interval, [&] { return stopping_ || stream->ended; })) {
        return;
      }
    }
    DataplaneMessage m;
    m.mutable_stats()->set_config_version(applier_->version());
    if (options_.render_stats) m.mutable_stats()->set_prometheus_text(options_.render_stats());
    if (!stream->Write(m)) return;
  }
}

}  // namespace zproxy::dataplane
