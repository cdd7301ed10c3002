#pragma once
// The routes' handlers: each turns one HTTP request into sbxd calls made for the request's tenant, and the
// answers into a JSON (or raw, or event-stream) response. Authentication and rate limits have passed already
// (server.cc). Includes httplib.h: only the shim's own .cc files include this header.
#include <httplib.h>

#include <string>

#include "base/error.h"
#include "httpd/backend.h"
#include "httpd/config.h"
#include "httpd/errors.h"
#include "httpd/metrics.h"
#include "httpd/routes.h"

namespace sbx::httpd {

// One request on its way through.
struct Exchange {
  const httplib::Request& req;
  httplib::Response& res;
  const RouteMatch& match;
  std::string tenant;  // the API key's; empty on routes without auth
  std::string key_id;

  const std::string& param(const char* name) const { return match.params.at(name); }
};

void send_json(httplib::Response& res, int status, const json& body);
void send_error(httplib::Response& res, const HttpError& error);
// An sbxd error (or a local one with an API code) as its HTTP error; transport failures become 503 with a
// message that does not reveal the socket path (it is logged instead).
void send_call_error(httplib::Response& res, const Error& error);

class Handlers {
 public:
  Handlers(const HttpdConfig& config, Backend& backend, Metrics& metrics)
      : config_(config), backend_(backend), metrics_(metrics) {}

  void serve(Exchange& x);

 private:
  void healthz(Exchange& x);
  void readyz(Exchange& x);
  void metrics(Exchange& x);
  void openapi(Exchange& x);
  void sandboxes_list(Exchange& x);
  void sandboxes_create(Exchange& x);
  void sandbox_get(Exchange& x);
  void sandbox_delete(Exchange& x);
  void sandbox_lifecycle(Exchange& x, const std::string& method);
  void sandbox_exec(Exchange& x);
  void sandbox_logs(Exchange& x);
  void file_put(Exchange& x);
  void file_get(Exchange& x);
  void sandbox_stats(Exchange& x);
  void images(Exchange& x);
  void environments(Exchange& x);

  // streams.cc: event streams on a connection of their own, closed when the HTTP client goes away.
  void stream_exec(Exchange& x, json params, bool base64);
  void stream_logs(Exchange& x, json params);

  // A call for the request's tenant; on failure the error response is sent and nullopt returned.
  std::optional<json> call(Exchange& x, const std::string& method, json params, bool idempotent);
  // The request body as a JSON object ({} when empty and `empty_ok`); on failure a 400 is sent.
  std::optional<json> body_object(Exchange& x, bool empty_ok);

  const HttpdConfig& config_;
  Backend& backend_;
  Metrics& metrics_;
};

}  // namespace sbx::httpd
