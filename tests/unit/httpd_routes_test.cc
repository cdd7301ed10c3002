// sbx-httpd's route table: matching, 404 against 405, route labels, and the OpenAPI document against the table.
#include <doctest/doctest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "httpd/openapi.h"
#include "httpd/routes.h"

using namespace sbx::httpd;
using json = nlohmann::json;

TEST_SUITE("httpd.routes") {

TEST_CASE("a sandbox path binds its id and names its pattern as the label") {
  RouteMatch m = match_route("GET", "/v1/sandboxes/web-1");
  REQUIRE(m.status == MatchStatus::kMatched);
  CHECK(m.route->id == RouteId::kSandbox);
  CHECK(m.params.at("id") == "web-1");
  CHECK(route_label(m) == "/v1/sandboxes/{id}");
}

TEST_CASE("sub-resources match their own routes and methods") {
  CHECK(match_route("POST", "/v1/sandboxes/a/exec").route->id == RouteId::kSandboxExec);
  CHECK(match_route("PUT", "/v1/sandboxes/a/files").route->id == RouteId::kSandboxFiles);
  CHECK(match_route("GET", "/v1/sandboxes/a/files").status == MatchStatus::kMatched);
  CHECK(match_route("GET", "/v1/environments/py@3").params.at("name") == "py@3");
  CHECK(match_route("HEAD", "/v1/sandboxes").status == MatchStatus::kMatched);
}

TEST_CASE("a known path with a wrong method is 405 with the allowed methods") {
  RouteMatch m = match_route("PATCH", "/v1/sandboxes/a");
  CHECK(m.status == MatchStatus::kMethodNotAllowed);
  CHECK(m.allow == "GET, DELETE");
  CHECK(match_route("GET", "/v1/sandboxes/a/exec").status == MatchStatus::kMethodNotAllowed);
  CHECK(match_route("DELETE", "/metrics").allow == "GET");
}

TEST_CASE("unknown paths, empty segments and trailing slashes are not found and labelled unmatched") {
  for (const char* p : {"/", "/v1", "/v1/sandboxes/", "/v1/sandboxes//exec", "/v1/sandboxes/a/b/c", "/v2/sandboxes",
                        "/v1/sandboxes/a/exec/x"}) {
    CAPTURE(p);
    RouteMatch m = match_route("GET", p);
    CHECK(m.status == MatchStatus::kNotFound);
    CHECK(route_label(m) == "unmatched");
  }
}

TEST_CASE("only health, readiness, metrics and the OpenAPI document go without a key") {
  std::set<std::string_view> open;
  for (const Route& r : routes()) {
    if (!r.auth) {
      open.insert(r.pattern);
    }
  }
  CHECK(open == std::set<std::string_view>{"/healthz", "/readyz", "/metrics", "/v1/openapi.json"});
}

TEST_CASE("the OpenAPI document lists exactly the served routes and methods") {
  json doc = json::parse(openapi_json(), nullptr, false);
  REQUIRE(doc.is_object());
  CHECK(doc["openapi"].get<std::string>().rfind("3.0", 0) == 0);
  std::set<std::string> served, documented;
  for (const Route& r : routes()) {
    for (std::string_view m : r.methods) {
      served.insert(std::string(m) + " " + std::string(r.pattern));
    }
  }
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [key, op] : item.items()) {
      if (key == "get" || key == "post" || key == "put" || key == "delete" || key == "patch") {
        std::string method = key;
        for (char& c : method) {
          c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        documented.insert(method + " " + path);
      }
    }
  }
  CHECK(served == documented);
}

}
