#include "httpd/backend.h"

#include <poll.h>
#include <sys/socket.h>

#include <optional>

#include "httpd/rate_limit.h"

namespace sbx::httpd {

namespace {

// The worker thread's connection. One Backend per process, so one slot per thread is enough.
thread_local std::optional<api::Client> tls_client;

// Whether an idle connection is still usable: nothing may arrive on it between calls, so readable means closed
// by sbxd (EOF) or broken.
bool looks_alive(const api::Client& c) {
  pollfd p{c.fd(), POLLIN | POLLRDHUP, 0};
  int n = ::poll(&p, 1, 0);
  return n == 0;
}

}  // namespace

Result<api::Client> Backend::connect_dedicated(std::string_view tenant) {
  auto c = api::Client::connect(socket_path_);
  if (!c.ok()) {
    return std::move(c).error().with_code(0);
  }
  c->set_tenant(std::string(tenant));
  return std::move(*c);
}

Result<json> Backend::call(std::string_view tenant, const std::string& method, json params, bool idempotent,
                           const api::Client::NotificationHandler& on_notification) {
  for (int attempt = 0;; ++attempt) {
    if (tls_client && !looks_alive(*tls_client)) {
      tls_client.reset();
    }
    if (!tls_client) {
      SBX_ASSIGN(api::Client c, connect_dedicated(""));
      tls_client.emplace(std::move(c));
    }
    tls_client->set_tenant(std::string(tenant));
    double start = monotonic_seconds();
    auto r = tls_client->call(method, params, on_notification);
    metrics_->record_rpc(method, monotonic_seconds() - start);
    if (r.ok() || tls_client->last_error().code != 0) {
      return r;
    }
    // No answer: the connection is unusable whatever happened.
    tls_client.reset();
    if (!idempotent || attempt > 0) {
      return std::move(r).error().with_code(0);
    }
  }
}

}  // namespace sbx::httpd
