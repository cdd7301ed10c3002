#include "httpd/routes.h"

namespace sbx::httpd {

namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    out.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

// Whether `path` fits `pattern` segment by segment; the {params} it binds go to `params`.
bool fits(std::string_view pattern, std::string_view path, std::map<std::string, std::string>* params) {
  std::vector<std::string_view> want = split_path(pattern);
  std::vector<std::string_view> got = split_path(path);
  if (want.size() != got.size()) {
    return false;
  }
  std::map<std::string, std::string> bound;
  for (size_t i = 0; i < want.size(); ++i) {
    std::string_view w = want[i];
    if (w.size() > 2 && w.front() == '{' && w.back() == '}') {
      if (got[i].empty()) {
        return false;
      }
      bound[std::string(w.substr(1, w.size() - 2))] = std::string(got[i]);
    } else if (w != got[i]) {
      return false;
    }
  }
  *params = std::move(bound);
  return true;
}

bool allows(const Route& route, std::string_view method) {
  for (std::string_view m : route.methods) {
    if (m == method || (method == "HEAD" && m == "GET")) {
      return true;
    }
  }
  return false;
}

}  // namespace

const std::vector<Route>& routes() {
  static const std::vector<Route> table = {
      {RouteId::kHealthz, "/healthz", {"GET"}, false},
      {RouteId::kReadyz, "/readyz", {"GET"}, false},
      {RouteId::kMetrics, "/metrics", {"GET"}, false},
      {RouteId::kOpenApi, "/v1/openapi.json", {"GET"}, false},
      {RouteId::kSandboxes, "/v1/sandboxes", {"GET", "POST"}, true},
      {RouteId::kSandbox, "/v1/sandboxes/{id}", {"GET", "DELETE"}, true},
      {RouteId::kSandboxStart, "/v1/sandboxes/{id}/start", {"POST"}, true},
      {RouteId::kSandboxStop, "/v1/sandboxes/{id}/stop", {"POST"}, true},
      {RouteId::kSandboxRestart, "/v1/sandboxes/{id}/restart", {"POST"}, true},
      {RouteId::kSandboxExec, "/v1/sandboxes/{id}/exec", {"POST"}, true},
      {RouteId::kSandboxLogs, "/v1/sandboxes/{id}/logs", {"GET"}, true},
      {RouteId::kSandboxFiles, "/v1/sandboxes/{id}/files", {"GET", "PUT"}, true},
      {RouteId::kSandboxStats, "/v1/sandboxes/{id}/stats", {"GET"}, true},
      {RouteId::kImages, "/v1/images", {"GET"}, true},
      {RouteId::kImage, "/v1/images/{id}", {"GET"}, true},
      {RouteId::kEnvironments, "/v1/environments", {"GET"}, true},
      {RouteId::kEnvironment, "/v1/environments/{name}", {"GET"}, true},
  };
  return table;
}

RouteMatch match_route(std::string_view method, std::string_view path) {
  RouteMatch out;
  for (const Route& route : routes()) {
    std::map<std::string, std::string> params;
    if (!fits(route.pattern, path, &params)) {
      continue;
    }
    out.route = &route;
    out.params = std::move(params);
    if (allows(route, method)) {
      out.status = MatchStatus::kMatched;
      out.allow.clear();
      return out;
    }
    out.status = MatchStatus::kMethodNotAllowed;
    for (std::string_view m : route.methods) {
      out.allow += out.allow.empty() ? "" : ", ";
      out.allow += m;
    }
  }
  return out;
}

std::string_view route_label(const RouteMatch& match) {
  return match.route != nullptr ? match.route->pattern : std::string_view("unmatched");
}

}  // namespace sbx::httpd
