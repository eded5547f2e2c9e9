// What zproxyd tells systemd, and when (deploy/systemd/zproxyd.service is Type=notify):
// READY=1 once the readiness rule (probes/readiness.h) first holds, i.e. every listener is
// served by a data plane on the current config; RELOADING=1 then READY=1 around a SIGHUP
// reload; STOPPING=1 when the drain starts; WATCHDOG=1 at half of WatchdogSec while
// zproxyd's supervisor answers (`live`), so a stuck zproxyd is restarted by systemd.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "controlplane/notify/sd_notify.h"
#include "controlplane/probes/readiness.h"

namespace zproxy::notify {

class ServiceNotifier {
 public:
  ServiceNotifier(SdNotify sd, std::function<probes::Readiness()> ready,
                  std::function<bool(std::string* why)> live);
  ~ServiceNotifier() { Stop(); }
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // Starts the thread that sends READY=1 and the watchdog pings (none without systemd).
  void Start();
  // Each sends one message at once; safe from any thread, never blocks for long.
  void Stopping();
  void Reloading();
  void Reloaded(const std::string& status);
  void Stop();

 private:
  void Run();
  void Send(const std::string& state);

  const SdNotify sd_;
  const std::function<probes::Readiness()> ready_;
  const std::function<bool(std::string*)> live_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zproxy::notify
