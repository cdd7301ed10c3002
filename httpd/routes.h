#pragma once
// The HTTP API's route table and the matching of a request's method and path against it: pure, so that the
// server, the unit tests and the OpenAPI check share one list. Patterns are OpenAPI's: "/v1/sandboxes/{id}".
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sbx::httpd {

enum class RouteId {
  kHealthz,
  kReadyz,
  kMetrics,
  kOpenApi,
  kSandboxes,
  kSandbox,
  kSandboxStart,
  kSandboxStop,
  kSandboxRestart,
  kSandboxExec,
  kSandboxLogs,
  kSandboxFiles,
  kSandboxStats,
  kImages,
  kImage,
  kEnvironments,
  kEnvironment,
};

struct Route {
  RouteId id;
  std::string_view pattern;
  std::vector<std::string_view> methods;  // upper case; HEAD is served wherever GET is
  bool auth;                              // needs Authorization: Bearer <key>
};

// Every route the server serves, in the order the manual lists them.
const std::vector<Route>& routes();

enum class MatchStatus { kMatched, kNotFound, kMethodNotAllowed };

struct RouteMatch {
  MatchStatus status = MatchStatus::kNotFound;
  const Route* route = nullptr;               // set unless kNotFound
  std::map<std::string, std::string> params;  // {"id": "web"} for "/v1/sandboxes/{id}"
  std::string allow;                          // kMethodNotAllowed: the Allow header ("GET, DELETE")
};

// Matches `path` (already percent-decoded, without the query) and `method`. A path that matches a pattern whose
// methods do not include `method` is kMethodNotAllowed; a {param} matches one non-empty segment.
RouteMatch match_route(std::string_view method, std::string_view path);

// The label metrics and logs use for a request: the route's pattern, or "unmatched" (never a raw path).
std::string_view route_label(const RouteMatch& match);

}  // namespace sbx::httpd
