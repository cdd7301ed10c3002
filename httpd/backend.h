#pragma once
// The shim's side of sbxd: JSON-RPC calls over the unix socket through api::Client, as sbxctl makes them. Each
// worker thread keeps one connection of its own (thread_local), made on first use and made again when sbxd closed
// it (a restart); a call that gets no answer fails with code 0, which the API reports as 503.
#include <string>
#include <string_view>

#include "api/client.h"
#include "httpd/metrics.h"

namespace sbx::httpd {

class Backend {
 public:
  Backend(std::string socket_path, Metrics* metrics) : socket_path_(std::move(socket_path)), metrics_(metrics) {}

  // `method` on this thread's connection, acting for `tenant` (empty: as the shim itself). A connection found
  // closed before the call is replaced first; `idempotent` calls are tried once more on a fresh connection when
  // the answer does not come (sbxd restarted in between). Errors keep the daemon's code (0: no answer).
  Result<json> call(std::string_view tenant, const std::string& method, json params = json::object(),
                    bool idempotent = false, const api::Client::NotificationHandler& on_notification = {});

  // A connection of its own for one streaming call: closing it (destroying the client) makes sbxd stop what runs
  // for it (an exec's process tree, a followed log).
  Result<api::Client> connect_dedicated(std::string_view tenant);

  // Times a call on a dedicated connection into the RPC histogram.
  void record_rpc(std::string_view method, double seconds) { metrics_->record_rpc(method, seconds); }

  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  Metrics* metrics_;
};

}  // namespace sbx::httpd
