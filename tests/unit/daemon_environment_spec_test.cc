// Environments' pure parts: refs, versions made from the last one, and templates laid under create requests.
#include <doctest/doctest.h>

#include "api/protocol.h"
#include "daemon/environment_spec.h"

using namespace sbx;
using namespace sbx::daemon;

namespace {

json wire(const json& j) { return json::parse(j.dump()); }

json image(const std::string& name) { return {{"name", name}, {"id", "sha256:" + std::string(64, 'a')}}; }

}  // namespace

TEST_SUITE("daemon.environment_spec") {

TEST_CASE("a ref is NAME or NAME@VERSION") {
  auto latest = parse_environment_ref("py", "environment");
  REQUIRE(latest.ok());
  CHECK(latest->name == "py");
  CHECK(!latest->version);
  auto v3 = parse_environment_ref("py@3", "environment");
  REQUIRE(v3.ok());
  CHECK(*v3->version == 3);
  for (const char* bad : {"", "@1", "py@", "py@0", "py@-1", "py@x", "py@1x", "py@01", "Py", "py@1@2",
                          "py@99999999999"}) {
    auto r = parse_environment_ref(bad, "environment");
    REQUIRE_MESSAGE(!r.ok(), bad);
    CHECK(r.error().message().rfind("params.environment: ", 0) == 0);
  }
}

TEST_CASE("the first version gets the defaults; the next keeps what the update leaves out") {
  auto v1 = next_environment_spec(wire({{"limits", {{"memory", "256M"}}}, {"env", {"A=1"}}}), json::object(),
                                  image("py"));
  REQUIRE_MESSAGE(v1.ok(), v1.error().message());
  CHECK((*v1)["limits"] == json{{"memory", 256ull << 20}});
  CHECK((*v1)["network"] == "none");
  CHECK((*v1)["ttl"] == 0);
  CHECK((*v1)["description"] == "");
  auto v2 = next_environment_spec(wire({{"ttl", 60}}), *v1, json());
  REQUIRE(v2.ok());
  CHECK((*v2)["ttl"] == 60);
  CHECK((*v2)["limits"] == (*v1)["limits"]);
  CHECK((*v2)["image"]["name"] == "py");
  auto v3 = next_environment_spec(wire({{"limits", {{"pids", 10}}}}), *v2, image("py2"));
  REQUIRE(v3.ok());
  CHECK((*v3)["limits"] == json{{"pids", 10}});  // limits are replaced whole
  CHECK((*v3)["image"]["name"] == "py2");
}

TEST_CASE("a template's fields are checked like sandbox.create's") {
  auto no_image = next_environment_spec(json::object(), json::object(), json());
  CHECK(!no_image.ok());
  for (const json& bad : {json{{"limits", {{"memory", "lots"}}}}, json{{"limits", {{"cpu", 1}}}},
                          json{{"env", {"NOEQUALS"}}}, json{{"seccomp", "../etc"}}, json{{"network", "bridge0"}},
                          json{{"ttl", -1}}, json{{"description", std::string(2000, 'x')}}}) {
    auto r = next_environment_spec(wire(bad), json::object(), image("py"));
    REQUIRE_MESSAGE(!r.ok(), bad.dump());
    CHECK(r.error().code() == api::kInvalidParams);
  }
}

TEST_CASE("a template lies under the request: explicit params win") {
  json spec = {{"limits", {{"memory", 1 << 30}, {"pids", 50}}},
               {"env", {"A=1", "B=2"}},
               {"seccomp", "default"},
               {"network", "none"},
               {"ttl", 600}};
  json out = apply_environment({{"environment", "py@1"}, {"limits", {{"memory", 1 << 20}}}, {"env", {"B=3"}},
                                {"ttl", 5}},
                               spec);
  CHECK(!out.contains("environment"));
  CHECK(out["limits"] == json{{"memory", 1 << 20}, {"pids", 50}});
  CHECK(out["env"] == json{"A=1", "B=3"});
  CHECK(out["ttl"] == 5);
  CHECK(out["seccomp"] == "default");
  CHECK(out["network"] == "none");
  json bare = apply_environment({{"environment", "py"}}, spec);
  CHECK(bare["limits"] == spec["limits"]);
  CHECK(bare["ttl"] == 600);
}

TEST_CASE("isolation defaults: read_only, cap_drop, devices and userns are checked, stored and applied") {
  auto spec = next_environment_spec(wire({{"read_only", true}, {"cap_drop", {"NET_RAW", "ALL"}},
                                          {"devices", {"vendor.com/gpu=0"}}, {"userns", false}}),
                                    json::object(), image("py"));
  REQUIRE_MESSAGE(spec.ok(), spec.error().message());
  CHECK((*spec)["userns"] == false);
  json out = apply_environment({{"environment", "py"}}, *spec);
  CHECK(out["read_only"] == true);
  CHECK(out["cap_drop"] == json{"NET_RAW", "ALL"});
  CHECK(out["devices"] == json{"vendor.com/gpu=0"});
  CHECK(out["userns"] == false);
  CHECK(apply_environment({{"environment", "py"}, {"userns", true}}, *spec)["userns"] == true);
  for (const json& bad : {json{{"cap_drop", {"CAP_NOPE"}}}, json{{"devices", {"not a device"}}}}) {
    auto r = next_environment_spec(wire(bad), json::object(), image("py"));
    REQUIRE_MESSAGE(!r.ok(), bad.dump());
    CHECK(r.error().code() == api::kInvalidParams);
  }
}

TEST_CASE("describe_environment names the version and its image") {
  EnvironmentRow row{"py", 2, 0, 0, {{"image", {{"name", "python"}, {"id", "sha256:x"}, {"layers", json::array()}}},
                                     {"limits", json::object()}, {"env", json::array()}, {"network", "none"},
                                     {"ttl", 0}, {"description", "d"}}};
  json d = describe_environment(row, {1, 2});
  CHECK(d["ref"] == "py@2");
  CHECK(d["image"] == json{{"name", "python"}, {"id", "sha256:x"}});
  CHECK(d["versions"] == json{1, 2});
  CHECK(d["description"] == "d");
}

}
