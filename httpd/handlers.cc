#include "httpd/handlers.h"

#include "api/protocol.h"
#include "httpd/log.h"
#include "httpd/openapi.h"
#include "httpd/rate_limit.h"
#include "httpd/request.h"

namespace sbx::httpd {

namespace {

constexpr size_t kWriteChunk = 4u << 20;  // file.write pieces: 5.3 MiB of base64, under sbxd's request limit
constexpr size_t kReadChunk = 8u << 20;   // file.read pieces

// The exec result with stdout_b64/stderr_b64 decoded into stdout/stderr (unless the caller wants base64).
json exec_result(json result, bool base64) {
  if (base64) {
    return result;
  }
  for (const char* stream : {"stdout", "stderr"}) {
    std::string key = std::string(stream) + "_b64";
    if (result.contains(key)) {
      auto bytes = api::base64_decode(result[key].get<std::string>());
      result[stream] = bytes.ok() ? *bytes : std::string();
      result.erase(key);
    }
  }
  // Bytes that are not UTF-8 become U+FFFD when the body is written (api::dump_json).
  return result;
}

}  // namespace

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(api::dump_json(body), "application/json");
}

void send_error(httplib::Response& res, const HttpError& error) {
  res.status = error.status;
  res.set_content(error_body(error), "application/json");
}

void send_call_error(httplib::Response& res, const Error& error) {
  if (error.code() == 0) {
    log_line("sbxd unavailable: {}", error.message());
    send_error(res, http_error_of_rpc(0, "sbxd is unavailable; try again later"));
    return;
  }
  send_error(res, http_error_of_rpc(error.code(), error.message()));
}

std::optional<json> Handlers::call(Exchange& x, const std::string& method, json params, bool idempotent) {
  auto r = backend_.call(x.tenant, method, std::move(params), idempotent);
  if (!r.ok()) {
    send_call_error(x.res, r.error());
    return std::nullopt;
  }
  return std::move(*r);
}

std::optional<json> Handlers::body_object(Exchange& x, bool empty_ok) {
  if (x.req.body.empty() && empty_ok) {
    return json::object();
  }
  json body = json::parse(x.req.body, nullptr, false);
  if (body.is_discarded()) {
    send_error(x.res, {400, "bad_request", "the body is not valid JSON"});
    return std::nullopt;
  }
  if (!body.is_object()) {
    send_error(x.res, {400, "bad_request", "the body must be a JSON object"});
    return std::nullopt;
  }
  return body;
}

void Handlers::serve(Exchange& x) {
  const std::string& m = x.req.method;
  switch (x.match.route->id) {
    case RouteId::kHealthz: return healthz(x);
    case RouteId::kReadyz: return readyz(x);
    case RouteId::kMetrics: return metrics(x);
    case RouteId::kOpenApi: return openapi(x);
    case RouteId::kSandboxes: return m == "POST" ? sandboxes_create(x) : sandboxes_list(x);
    case RouteId::kSandbox: return m == "DELETE" ? sandbox_delete(x) : sandbox_get(x);
    case RouteId::kSandboxStart: return sandbox_lifecycle(x, "sandbox.start");
    case RouteId::kSandboxStop: return sandbox_lifecycle(x, "sandbox.stop");
    case RouteId::kSandboxRestart: return sandbox_lifecycle(x, "sandbox.restart");
    case RouteId::kSandboxExec: return sandbox_exec(x);
    case RouteId::kSandboxLogs: return sandbox_logs(x);
    case RouteId::kSandboxFiles: return m == "PUT" ? file_put(x) : file_get(x);
    case RouteId::kSandboxStats: return sandbox_stats(x);
    case RouteId::kImages:
    case RouteId::kImage: return images(x);
    case RouteId::kEnvironments:
    case RouteId::kEnvironment: return environments(x);
  }
  send_error(x.res, {500, "internal", "route without a handler"});
}

void Handlers::healthz(Exchange& x) { send_json(x.res, 200, {{"status", "ok"}}); }

void Handlers::readyz(Exchange& x) {
  auto r = backend_.call("", "daemon.health", json::object(), true);
  if (!r.ok()) {
    log_line("readyz: sbxd does not answer: {}", r.error().message());
    send_error(x.res, {503, "unavailable", "sbxd does not answer"});
    return;
  }
  send_json(x.res, 200, {{"status", "ready"}, {"sbxd", *r}});
}

void Handlers::metrics(Exchange& x) {
  auto r = backend_.call("", "daemon.metrics", json::object(), true);
  std::string text = metrics_.render(daemon_metrics_text(r.ok() ? *r : json()));
  x.res.status = 200;
  x.res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
}

void Handlers::openapi(Exchange& x) {
  x.res.status = 200;
  x.res.set_content(std::string(openapi_json()), "application/json");
}

void Handlers::sandboxes_list(Exchange& x) {
  json params = json::object();
  if (x.req.has_param("state")) {
    params["state"] = x.req.get_param_value("state");
  }
  size_t labels = x.req.get_param_value_count("label");
  if (labels > 0) {
    params["label"] = json::array();
    for (size_t i = 0; i < labels; ++i) {
      params["label"].push_back(x.req.get_param_value("label", i));
    }
  }
  if (auto r = call(x, "sandbox.list", std::move(params), true)) {
    send_json(x.res, 200, *r);
  }
}

void Handlers::sandboxes_create(Exchange& x) {
  auto body = body_object(x, false);
  if (!body) {
    return;
  }
  auto params = create_params(*body);
  if (!params.ok()) {
    return send_call_error(x.res, params.error());
  }
  if (auto r = call(x, "sandbox.create", std::move(*params), false)) {
    x.res.set_header("Location", "/v1/sandboxes/" + (*r)["id"].get<std::string>());
    send_json(x.res, 201, *r);
  }
}

void Handlers::sandbox_get(Exchange& x) {
  if (auto r = call(x, "sandbox.inspect", {{"id", x.param("id")}}, true)) {
    send_json(x.res, 200, *r);
  }
}

void Handlers::sandbox_delete(Exchange& x) {
  bool force = false;
  if (x.req.has_param("force")) {
    auto f = parse_bool("force", x.req.get_param_value("force"));
    if (!f.ok()) {
      return send_call_error(x.res, f.error());
    }
    force = *f;
  }
  if (call(x, "sandbox.remove", {{"id", x.param("id")}, {"force", force}}, false)) {
    x.res.status = 204;
  }
}

void Handlers::sandbox_lifecycle(Exchange& x, const std::string& method) {
  auto body = body_object(x, true);
  if (!body) {
    return;
  }
  json params = {{"id", x.param("id")}};
  for (const auto& [k, v] : body->items()) {
    if (k != "timeout" || method == "sandbox.start") {
      return send_error(x.res, {400, "invalid_params", fmt::format("params.{}: unknown field", k)});
    }
    params[k] = v;
  }
  if (auto r = call(x, method, std::move(params), false)) {
    send_json(x.res, 200, *r);
  }
}

void Handlers::sandbox_exec(Exchange& x) {
  auto body = body_object(x, false);
  if (!body) {
    return;
  }
  auto params = exec_params(x.param("id"), *body);
  if (!params.ok()) {
    return send_call_error(x.res, params.error());
  }
  bool base64 = x.req.get_param_value("encoding") == "base64";
  if (wants_event_stream(x.req.get_header_value("Accept"))) {
    return stream_exec(x, std::move(*params), base64);
  }
  (*params)["stream"] = false;
  double start = monotonic_seconds();
  auto r = call(x, "sandbox.exec", std::move(*params), false);
  if (r) {
    metrics_.record_exec(monotonic_seconds() - start);
    send_json(x.res, 200, exec_result(std::move(*r), base64));
  }
}

void Handlers::sandbox_logs(Exchange& x) {
  json params = {{"id", x.param("id")}};
  if (x.req.has_param("tail")) {
    auto n = parse_count("tail", x.req.get_param_value("tail"));
    if (!n.ok()) {
      return send_call_error(x.res, n.error());
    }
    params["tail"] = *n;
  }
  bool follow = false;
  if (x.req.has_param("follow")) {
    auto f = parse_bool("follow", x.req.get_param_value("follow"));
    if (!f.ok()) {
      return send_call_error(x.res, f.error());
    }
    follow = *f;
  }
  if (follow) {
    params["follow"] = true;
    return stream_logs(x, std::move(params));
  }
  std::string data;
  bool bad_chunk = false;
  auto r = backend_.call(x.tenant, "sandbox.logs", std::move(params), true, [&](const std::string& m, const json& p) {
    if (m == "logs.output" && p.contains("data_b64") && p["data_b64"].is_string()) {
      auto bytes = api::base64_decode(p["data_b64"].get<std::string>());
      bad_chunk = bad_chunk || !bytes.ok();
      data += bytes.ok() ? *bytes : std::string();
    }
  });
  if (!r.ok()) {
    return send_call_error(x.res, r.error());
  }
  if (bad_chunk) {
    return send_error(x.res, {500, "internal", "sbxd sent log data that is not base64"});
  }
  send_json(x.res, 200, {{"logs", data}, {"bytes", r->value("bytes", data.size())}});
}

void Handlers::file_put(Exchange& x) {
  if (!x.req.has_param("path")) {
    return send_error(x.res, {400, "invalid_params", "params.path: required (?path=/absolute/path)"});
  }
  json base = {{"id", x.param("id")}, {"path", x.req.get_param_value("path")}};
  if (x.req.has_param("mode")) {
    auto mode = parse_mode(x.req.get_param_value("mode"));
    if (!mode.ok()) {
      return send_call_error(x.res, mode.error());
    }
    base["mode"] = *mode;
  }
  if (x.req.has_param("mkdirs")) {
    auto mk = parse_bool("mkdirs", x.req.get_param_value("mkdirs"));
    if (!mk.ok()) {
      return send_call_error(x.res, mk.error());
    }
    base["mkdirs"] = *mk;
  }
  const std::string& body = x.req.body;
  size_t off = 0;
  // The first piece replaces the file, the others append; an empty body still writes (an empty file).
  do {
    size_t n = std::min(kWriteChunk, body.size() - off);
    json params = base;
    params["data_b64"] = api::base64_encode(std::string_view(body).substr(off, n));
    params["append"] = off > 0;
    if (!call(x, "file.write", std::move(params), false)) {
      return;
    }
    off += n;
  } while (off < body.size());
  send_json(x.res, 200, {{"bytes", body.size()}});
}

void Handlers::file_get(Exchange& x) {
  if (!x.req.has_param("path")) {
    return send_error(x.res, {400, "invalid_params", "params.path: required (?path=/absolute/path)"});
  }
  std::string data;
  while (true) {
    json params = {{"id", x.param("id")}, {"path", x.req.get_param_value("path")}, {"offset", data.size()},
                   {"length", kReadChunk}};
    auto r = call(x, "file.read", std::move(params), true);
    if (!r) {
      return;
    }
    auto bytes = api::base64_decode(r->value("data_b64", ""));
    if (!bytes.ok()) {
      return send_error(x.res, {500, "internal", "sbxd sent file data that is not base64"});
    }
    data += *bytes;
    if (data.size() > config_.max_body) {
      return send_error(x.res, {413, "too_large", fmt::format("the file is larger than max_body ({} bytes)",
                                                              config_.max_body)});
    }
    if (r->value("eof", true) || bytes->empty()) {
      break;
    }
  }
  x.res.status = 200;
  x.res.set_content(std::move(data), "application/octet-stream");
}

void Handlers::sandbox_stats(Exchange& x) {
  if (auto r = call(x, "sandbox.stats", {{"id", x.param("id")}}, true)) {
    send_json(x.res, 200, *r);
  }
}

void Handlers::images(Exchange& x) {
  auto r = x.match.route->id == RouteId::kImages ? call(x, "image.list", json::object(), true)
                                                 : call(x, "image.inspect", {{"image", x.param("id")}}, true);
  if (r) {
    send_json(x.res, 200, *r);
  }
}

void Handlers::environments(Exchange& x) {
  auto r = x.match.route->id == RouteId::kEnvironments
               ? call(x, "environment.list", json::object(), true)
               : call(x, "environment.inspect", {{"name", x.param("name")}}, true);
  if (r) {
    send_json(x.res, 200, *r);
  }
}

}  // namespace sbx::httpd
