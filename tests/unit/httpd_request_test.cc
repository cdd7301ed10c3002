// Pure request helpers of sbx-httpd: bearer tokens, query values, Accept, exec and create bodies.
#include <doctest/doctest.h>

#include "api/protocol.h"
#include "httpd/request.h"

using namespace sbx;
using namespace sbx::httpd;

TEST_SUITE("httpd.request") {

TEST_CASE("the bearer token is taken from the Authorization header, other schemes are not") {
  CHECK(bearer_token("Bearer abc") == "abc");
  CHECK(bearer_token("bearer   abc  ") == "abc");
  CHECK(bearer_token("BEARER abc") == "abc");
  CHECK(bearer_token("") == "");
  CHECK(bearer_token("Bearer ") == "");
  CHECK(bearer_token("Basic YTpi") == "");
  CHECK(bearer_token("Bearer a b") == "");
  CHECK(bearer_token("Bearerabc") == "");
}

TEST_CASE("query booleans, counts and octal modes") {
  CHECK(*parse_bool("force", "true"));
  CHECK(!*parse_bool("force", "0"));
  CHECK(!parse_bool("force", "maybe").ok());
  CHECK(*parse_count("tail", "10") == 10);
  CHECK(!parse_count("tail", "-1").ok());
  CHECK(!parse_count("tail", "1x").ok());
  CHECK(*parse_mode("0644") == 0644);
  CHECK(*parse_mode("755") == 0755);
  CHECK(!parse_mode("0999").ok());
  CHECK(!parse_mode("17777").ok());
}

TEST_CASE("Accept asks for an event stream only when it lists text/event-stream") {
  CHECK(wants_event_stream("text/event-stream"));
  CHECK(wants_event_stream("application/json, Text/Event-Stream;q=0.9"));
  CHECK(!wants_event_stream("application/json"));
  CHECK(!wants_event_stream(""));
  CHECK(!wants_event_stream("*/*"));
}

TEST_CASE("an exec body becomes sandbox.exec params; cmd as a string runs under /bin/sh -c") {
  auto p = exec_params("box", {{"cmd", "echo hi"}, {"stdin", "in"}, {"timeout", 5}, {"env", {"A=1"}}});
  REQUIRE(p.ok());
  CHECK((*p)["id"] == "box");
  CHECK((*p)["argv"] == json::array({"/bin/sh", "-c", "echo hi"}));
  CHECK((*p)["stdin_b64"] == api::base64_encode("in"));
  CHECK((*p)["timeout"] == 5);
  CHECK((*p)["env"] == json::array({"A=1"}));
  auto a = exec_params("box", {{"argv", {"true"}}});
  REQUIRE(a.ok());
  CHECK((*a)["argv"] == json::array({"true"}));
}

TEST_CASE("exec bodies without a command, with both, or with unknown fields are invalid params") {
  CHECK(exec_params("b", json::object()).error().code() == api::kInvalidParams);
  CHECK(exec_params("b", {{"argv", {"a"}}, {"cmd", "a"}}).error().code() == api::kInvalidParams);
  CHECK(exec_params("b", {{"argv", json::array()}}).error().code() == api::kInvalidParams);
  CHECK(exec_params("b", {{"argv", {1}}}).error().code() == api::kInvalidParams);
  CHECK(exec_params("b", {{"argv", {"a"}}, {"id", "other"}}).error().code() == api::kInvalidParams);
  CHECK(exec_params("b", {{"argv", {"a"}}, {"stdin", "x"}, {"stdin_b64", "eA=="}}).error().code() ==
        api::kInvalidParams);
}

TEST_CASE("a create body may not name a tenant nor host mounts, nor unknown fields") {
  CHECK(create_params({{"rootfs", "/r"}, {"name", "a"}, {"limits", {{"memory", "64M"}}}}).ok());
  CHECK(create_params({{"tenant", "other"}}).error().code() == api::kInvalidParams);
  CHECK(create_params({{"mounts", json::array()}}).error().code() == api::kPermissionDenied);
  CHECK(create_params({{"bogus", 1}}).error().code() == api::kInvalidParams);
  // What only the host's root may ask for is refused over HTTP, whatever the key's tenant.
  CHECK(create_params({{"userns", false}}).error().code() == api::kPermissionDenied);
  CHECK(create_params({{"cap_add", {"CAP_SYS_ADMIN"}}}).error().code() == api::kPermissionDenied);
  CHECK(create_params({{"read_only", true}, {"cap_drop", {"ALL"}}, {"devices", {"a.com/b=c"}}}).ok());
  CHECK(create_params(json::array()).error().code() == api::kInvalidParams);
}

}
