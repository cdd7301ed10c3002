// Plan, ProcessSpec and RuntimeConfig as JSON: what sbxd hands sbx-monitor.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "runtime/plan_json.h"

using namespace sbx;
using namespace sbx::rt;
using nlohmann::json;

namespace {

Plan full_plan() {
  Plan p = default_plan("box-7", {"/srv/images/a", "/srv/images/b"});
  p.hostname = "web";
  p.root.upper_tmpfs_size = 512ull << 20;
  p.mounts.push_back({"/data", "/mnt/data", false});
  p.mounts.push_back({"/etc/hosts", "/etc/hosts", true});
  p.dev_shm_size = 1 << 20;
  p.tmp_size = 2 << 20;
  p.limits.memory_max = 1ull << 30;
  p.limits.memory_swap_max = 0;
  p.limits.vcpus = 1.5;
  p.limits.cpu_weight = 200;
  p.limits.pids_max = 128;
  p.limits.io.push_back({"8:0", 1000, std::nullopt, 10, std::nullopt});
  p.security.keep_caps = {"CAP_NET_BIND_SERVICE"};
  p.security.seccomp_profile = "/usr/share/sbx/seccomp/default.json";
  p.security.rlimits.nofile = 4096;
  p.security.rlimits.fsize = 1 << 30;
  p.security.rlimits.core = 0;
  ProcessSpec main;
  main.argv = {"/bin/sh", "-c", "echo hi"};
  main.env = {"PATH=/bin", "A=b c"};
  main.cwd = "/srv";
  main.uid = 1000;
  main.gid = 1001;
  main.groups = {10, 4294967295u};
  p.main = main;
  p.network = NetworkPlan{"sbxv0a420005", "sbx0", *parse_ipv4_net("10.66.0.5/16", false), 0x0a420001, 1400};
  p.userns = UserNamespacePlan{{{0, 1000000000, 65536}}, {{0, 1000000000, 1000}, {1000, 2000000000, 1}}};
  p.devices.push_back({"/dev/acme0", "/dev/null", 'c', 1, 3, "rw"});
  p.limits.devices.push_back({'c', 1, -1, "rwm"});
  return p;
}

// The error of parsing `text` as a plan.
std::string plan_error(const std::string& text) {
  auto r = plan_from_json_text(text);
  REQUIRE_FALSE(r.ok());
  return r.error().message();
}

}  // namespace

TEST_SUITE("rt.plan_json") {

TEST_CASE("a plan with every field set survives the round trip through text") {
  Plan p = full_plan();
  std::string text = plan_to_json_text(p);
  auto back = plan_from_json_text(text);
  REQUIRE_MESSAGE(back.ok(), back.error().message());
  CHECK(plan_to_json(*back) == plan_to_json(p));
  CHECK(back->id == "box-7");
  CHECK(back->root.lower_dirs == std::vector<std::string>{"/srv/images/a", "/srv/images/b"});
  CHECK(back->root.upper_tmpfs_size == 512ull << 20);
  CHECK(back->mounts.size() == 2);
  CHECK_FALSE(back->mounts[0].read_only);
  CHECK(back->limits.vcpus == 1.5);
  CHECK(back->limits.memory_swap_max == 0u);
  CHECK(back->limits.io.at(0).rbps == 1000u);
  CHECK_FALSE(back->limits.io.at(0).wbps.has_value());
  CHECK(back->security.rlimits.nofile == 4096u);
  CHECK_FALSE(back->security.rlimits.nproc.has_value());
  REQUIRE(back->main.has_value());
  CHECK(back->main->groups == std::vector<uint32_t>{10, 4294967295u});
  CHECK(back->main->cwd == "/srv");
  CHECK(back->main->stdout_fd == -1);
  CHECK(back->masked_paths == p.masked_paths);
  REQUIRE(back->network.has_value());
  CHECK(back->network->address == Ipv4Net{0x0a420005, 16});
  CHECK(back->network->gateway == 0x0a420001u);
  CHECK(plan_to_json(*back)["network"]["address"] == "10.66.0.5/16");
  REQUIRE(back->userns.has_value());
  CHECK(back->userns->gid_map.size() == 2);
  CHECK(back->userns->gid_map[1].host == 2000000000u);
  REQUIRE(back->devices.size() == 1);
  CHECK(back->devices[0].type == 'c');
  CHECK(back->devices[0].minor == 3u);
  REQUIRE(back->limits.devices.size() == 1);
  CHECK(back->limits.devices[0].minor == -1);
}

TEST_CASE("a network's addresses must be dotted text") {
  CHECK(plan_error(R"({"id": "a", "network": {"address": "10.66.0.5", "gateway": "10.66.0.256"}})")
            .find("plan.network.gateway") != std::string::npos);
  CHECK(plan_error(R"({"id": "a", "network": {"address": 5}})").find("plan.network.address") != std::string::npos);
}

TEST_CASE("missing fields keep the defaults and a null main means none") {
  auto p = plan_from_json_text(R"({"id": "a", "root": {"lower_dirs": ["/"]}, "main": null})");
  REQUIRE(p.ok());
  Plan defaults;
  CHECK(p->dev_shm_size == defaults.dev_shm_size);
  CHECK(p->tmp_size == defaults.tmp_size);
  CHECK_FALSE(p->main.has_value());
  CHECK(p->limits.empty());
  CHECK(p->security.seccomp_profile.empty());
  CHECK(plan_to_json(*p)["main"].is_null());
}

TEST_CASE("type errors name the field, down to array items") {
  CHECK(plan_error(R"({"limits": {"memory_max": "1G"}})") ==
        "plan.limits.memory_max: expected a non-negative integer, got string '1G'");
  CHECK(plan_error(R"({"mounts": [{"source": "/a", "destination": "/b"}, {"source": "/c", "read_only": 1}]})") ==
        "plan.mounts[1].read_only: expected true or false, got number 1");
  CHECK(plan_error(R"({"main": {"argv": ["sh", 3]}})") == "plan.main.argv[1]: expected a string, got number 3");
  CHECK(plan_error(R"({"main": {"uid": -1}})") == "plan.main.uid: expected an integer in 0..4294967295, got number -1");
  CHECK(plan_error(R"({"main": {"groups": [4294967296]}})").starts_with("plan.main.groups[0]:"));
  CHECK(plan_error(R"({"limits": {"io": [{"device": "8:0", "rbps": 1.5}]}})").starts_with("plan.limits.io[0].rbps:"));
  CHECK(plan_error(R"({"limits": {"vcpus": "two"}})") == "plan.limits.vcpus: expected a number, got string 'two'");
  CHECK(plan_error(R"({"security": {"rlimits": []}})") == "plan.security.rlimits: expected an object, got array");
  CHECK(plan_error(R"({"root": {"lower_dirs": "/"}})") == "plan.root.lower_dirs: expected an array, got string '/'");
}

TEST_CASE("unknown fields are refused so that a typo never becomes a default") {
  CHECK(plan_error(R"({"limits": {"memroy_max": 1}})") == "plan.limits: unknown field 'memroy_max'");
  CHECK(plan_error(R"({"id": "a", "seccomp": "x"})") == "plan: unknown field 'seccomp'");
  CHECK(plan_error(R"({"main": {"argv": ["x"], "stdout_fd": 1}})") == "plan.main: unknown field 'stdout_fd'");
}

TEST_CASE("text that is not a JSON object is refused") {
  CHECK(plan_error("{\"id\": ") == "plan: not valid JSON");
  CHECK(plan_error("[1, 2]") == "plan: expected an object, got array");
  CHECK(plan_error("null") == "plan: expected an object, got null");
  auto r = plan_from_json_text("42");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().sys_errno() == EINVAL);
}

TEST_CASE("a runtime config survives the round trip and its cgroup mode is a name") {
  RuntimeConfig c;
  c.run_root = "/run/sbx-x";
  c.cgroup.mode = CgroupMode::kV1;
  c.cgroup.parent = "/system.slice/sbxd.service/sbx";
  c.cgroup.parent_name = "other";
  c.setup_timeout_ms = 1234;
  c.seccomp_cache_dir = "/var/lib/sbx/seccomp-cache";
  json j = runtime_config_to_json(c);
  CHECK(j["cgroup"]["mode"] == "v1");
  auto back = runtime_config_from_json(j);
  REQUIRE(back.ok());
  CHECK(runtime_config_to_json(*back) == j);
  CHECK(back->cgroup.mode == CgroupMode::kV1);
  CHECK(back->setup_timeout_ms == 1234);
  CHECK(back->seccomp_cache_dir == "/var/lib/sbx/seccomp-cache");

  auto partial = runtime_config_from_json(json::parse(R"({"run_root": "/run/a", "cgroup": {"mode": "v2"}})"));
  REQUIRE(partial.ok());
  CHECK(partial->cgroup.mode == CgroupMode::kV2);
  CHECK(partial->cgroup.root == "/sys/fs/cgroup");
  CHECK(partial->setup_timeout_ms == RuntimeConfig{}.setup_timeout_ms);
  CHECK(partial->seccomp_cache_dir.empty());  // no disk cache unless asked for

  auto bad = runtime_config_from_json(json::parse(R"({"cgroup": {"mode": "v3"}})"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message() == "runtime.cgroup.mode: 'v3' is not one of auto, v1, v2");
  bad = runtime_config_from_json(json::parse(R"({"setup_timeout_ms": -5})"), "spec.runtime");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().starts_with("spec.runtime.setup_timeout_ms:"));
}

TEST_CASE("a process spec alone round-trips and uses the given field name in errors") {
  ProcessSpec p = *full_plan().main;
  auto back = process_from_json(process_to_json(p));
  REQUIRE(back.ok());
  CHECK(back->argv == p.argv);
  CHECK(back->env == p.env);
  CHECK(back->uid == 1000);
  auto bad = process_from_json(json::parse(R"({"env": "A=b"})"), "spec.process");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message() == "spec.process.env: expected an array, got string 'A=b'");
}

}  // TEST_SUITE
