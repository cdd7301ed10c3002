#include "httpd/server.h"

#include <chrono>

#include "api/client.h"
#include "api/protocol.h"
#include "httpd/handlers.h"
#include "httpd/log.h"
#include "httpd/rate_limit.h"
#include "httpd/request.h"

namespace sbx::httpd {

namespace {

// What the logger needs of the request the worker thread is serving (a thread serves one request at a time).
struct RequestState {
  double start = 0;  // 0: routing never began (httplib refused the request line)
  std::string route = "unmatched";
};
thread_local RequestState tls_request;

void send_rate_limited(httplib::Response& res, int retry_after, std::string message) {
  res.set_header("Retry-After", std::to_string(retry_after));
  send_error(res, {429, "rate_limited", std::move(message)});
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(HttpdConfig c)
      : config(std::move(c)),
        backend(config.socket.empty() ? api::default_socket_path() : config.socket, &metrics),
        handlers(config, backend, metrics),
        rate(config.rate, config.burst),
        failures(static_cast<int>(config.auth_failures), config.auth_failure_window) {}

  void dispatch(const httplib::Request& req, httplib::Response& res);
  // Checks the bearer key with sbxd; fills in the tenant and key id, or sends the error and returns false.
  bool authenticate(Exchange& x);
  void log_request(const httplib::Request& req, const httplib::Response& res);
  void setup();

  HttpdConfig config;
  Metrics metrics;
  Backend backend;
  Handlers handlers;
  KeyedRateLimiter rate;
  FailureLimiter failures;
  httplib::Server server;
  ListenAddress address;
};

bool HttpServer::Impl::authenticate(Exchange& x) {
  const std::string& client = x.req.remote_addr;
  if (int wait = failures.blocked(client, monotonic_seconds())) {
    send_rate_limited(x.res, wait, "too many failed authentications from this address");
    return false;
  }
  std::string key = bearer_token(x.req.get_header_value("Authorization"));
  if (key.empty()) {
    failures.record_failure(client, monotonic_seconds());
    x.res.set_header("WWW-Authenticate", "Bearer");
    send_error(x.res, {401, "unauthorized", "missing API key: send Authorization: Bearer <key>"});
    return false;
  }
  // Verified on every request, never cached: a revoked key stops working at once.
  auto r = backend.call("", "apikey.verify", {{"key", key}}, true);
  if (!r.ok()) {
    int code = r.error().code();
    if (code == api::kPermissionDenied || code == api::kNotFound || code == api::kInvalidParams) {
      failures.record_failure(client, monotonic_seconds());
      x.res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      send_error(x.res, {401, "unauthorized", "invalid API key"});  // the same for unknown and revoked keys
      return false;
    }
    send_call_error(x.res, r.error());
    return false;
  }
  x.tenant = r->value("tenant", "");
  x.key_id = r->value("id", "");
  if (x.tenant.empty() || x.key_id.empty()) {
    // Without a tenant every call would act as the shim itself: refuse rather than widen the key's reach.
    send_error(x.res, {500, "internal", "sbxd verified the key without naming its tenant"});
    return false;
  }
  if (int wait = rate.take(x.key_id, monotonic_seconds())) {
    send_rate_limited(x.res, wait, fmt::format("rate limit of {} requests per second exceeded", config.rate));
    return false;
  }
  return true;
}

void HttpServer::Impl::dispatch(const httplib::Request& req, httplib::Response& res) {
  RouteMatch match = match_route(req.method, req.path);
  tls_request.route = std::string(route_label(match));
  if (match.status == MatchStatus::kNotFound) {
    return send_error(res, {404, "not_found", "no such route"});
  }
  if (match.status == MatchStatus::kMethodNotAllowed) {
    res.set_header("Allow", match.allow);
    return send_error(res, {405, "method_not_allowed", fmt::format("{} is not allowed here; allowed: {}",
                                                                   req.method, match.allow)});
  }
  Exchange x{req, res, match, "", ""};
  if (match.route->auth && !authenticate(x)) {
    return;
  }
  handlers.serve(x);
}

void HttpServer::Impl::log_request(const httplib::Request& req, const httplib::Response& res) {
  double now = monotonic_seconds();
  double seconds = tls_request.start > 0 ? now - tls_request.start : 0;
  const std::string& route = tls_request.route;
  metrics.record_request(route, req.method, res.status, seconds);
  log_line("{} {} {} {:.1f}ms client={}", req.method.empty() ? "-" : req.method, route, res.status, seconds * 1000,
           req.remote_addr);
  tls_request = RequestState();
}

void HttpServer::Impl::setup() {
  const size_t threads = static_cast<size_t>(config.threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_payload_max_length(config.max_body);
  // A response goes out as headers then body: with Nagle on, the body waits for the client's delayed ACK of the
  // headers (40 ms on Linux) on every request.
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(5);
  server.set_read_timeout(30);
  server.set_write_timeout(30);
  server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    tls_request.start = monotonic_seconds();
    tls_request.route = "unmatched";
    // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3), but cpp-httplib
    // 0.11 reads a POST, PUT or PATCH body until the client closes: `curl -X POST .../start` would hang for the
    // read timeout. Say the length the RFC implies before httplib reads. (The Request is httplib's own mutable
    // object, handed to this hook as const.)
    if ((req.method == "POST" || req.method == "PUT" || req.method == "PATCH") && !req.has_header("Content-Length") &&
        !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { dispatch(req, res); };
  server.Get(".*", handler);
  server.Post(".*", handler);
  server.Put(".*", handler);
  server.Patch(".*", handler);
  server.Delete(".*", handler);
  server.Options(".*", handler);
  // Called for every status >= 400: fills in a JSON error where httplib itself refused the request (413, 400).
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
        if (res.body.empty() && !res.is_chunked_content_provider_) {
          send_error(res, http_error_of_status(res.status));
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, {500, "internal", "internal error"});
  });
  server.set_logger([this](const httplib::Request& req, const httplib::Response& res) { log_request(req, res); });
}

HttpServer::HttpServer(HttpdConfig config) : impl_(std::make_unique<Impl>(std::move(config))) { impl_->setup(); }

HttpServer::~HttpServer() = default;

Result<int> HttpServer::bind() {
  SBX_ASSIGN(impl_->address, parse_listen(impl_->config.listen));
  int port = impl_->address.port;
  if (!impl_->server.bind_to_port(impl_->address.host, port)) {
    return Error(fmt::format("cannot listen on {}: address in use, not local, or not permitted",
                             impl_->config.listen));
  }
  // Warn early when sbxd does not treat this uid as trusted: every key would then fail verification.
  auto info = impl_->backend.call("", "daemon.info");
  if (!info.ok()) {
    log_line("warning: sbxd at {} does not answer yet ({}); requests get 503 until it does",
             impl_->backend.socket_path(), info.error().message());
  } else if (info->contains("caller") && (*info)["caller"].value("role", "") == "user") {
    log_line("warning: sbxd does not list uid {} in trusted_uids: API keys cannot be verified",
             (*info)["caller"].value("uid", -1));
  }
  return port;
}

Result<void> HttpServer::serve() {
  log_line("listening on {} (sbxd at {}, {} threads)", impl_->config.listen, impl_->backend.socket_path(),
           impl_->config.threads);
  if (!impl_->server.listen_after_bind()) {
    return Error("the HTTP server stopped with an error");
  }
  return ok();
}

void HttpServer::stop() { impl_->server.stop(); }

}  // namespace sbx::httpd
