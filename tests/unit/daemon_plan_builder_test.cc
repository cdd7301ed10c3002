// From a sandbox.create request to the stored spec (normalize_create) and to the runtime's Plan (build_plan):
// defaults, the non-root policy, and errors that name the field.
#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "api/protocol.h"
#include "base/file.h"
#include "daemon/plan_builder.h"

using namespace sbx;
using namespace sbx::daemon;

namespace {

// A temp tree: allowed/rootfs (under the configured rootfs_dirs), outside/rootfs, a prefix look-alike
// and a symlink from inside the allowed dir to outside it.
struct Tree {
  Tree() {
    char tmpl[] = "/tmp/daemon-plan-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    for (const char* d : {"/allowed/rootfs", "/allowed/nested/deeper", "/outside/rootfs", "/allowed-evil/rootfs"}) {
      REQUIRE(make_dirs(dir + d, 0755).ok());
    }
    REQUIRE(::symlink((dir + "/outside/rootfs").c_str(), (dir + "/allowed/escape").c_str()) == 0);
    REQUIRE(create_file(dir + "/allowed/file", "x").ok());
    config.rootfs_dirs = {dir + "/allowed"};
    config.state_dir = dir + "/state";
    config.seccomp_dir = SBX_SOURCE_ROOT "/seccomp-profiles";
  }
  ~Tree() { (void)remove_tree(dir); }

  std::string rootfs() const { return dir + "/allowed/rootfs"; }

  std::string dir;
  DaemonConfig config;
};

// What the daemon sees of `j`: parsed from its text, so non-negative integers are unsigned as on the wire.
json wire(const json& j) { return json::parse(j.dump()); }

const CreatePolicy kRoot{true};
const CreatePolicy kUser{false};

json normalized(const Tree& t, const json& params, const CreatePolicy& policy = kRoot) {
  auto r = normalize_create(wire(params), t.config, policy);
  REQUIRE_MESSAGE(r.ok(), params.dump() << ": " << r.error().message());
  return *r;
}

// normalize_create's error, checked to carry `code` and (for invalid params) to name `field`.
void check_refused(const Tree& t, const json& params, const CreatePolicy& policy, int code,
                   std::string_view field = "") {
  auto r = normalize_create(wire(params), t.config, policy);
  REQUIRE_MESSAGE(!r.ok(), "accepted " << params.dump());
  CHECK_MESSAGE(r.error().code() == code, params.dump() << ": " << r.error().message());
  if (!field.empty()) {
    CHECK_MESSAGE(r.error().message().rfind(fmt::format("params.{}: ", field), 0) == 0,
                  "'" << r.error().message() << "' does not start with params." << std::string(field));
  }
}

void check_invalid(const Tree& t, const json& params, std::string_view field) {
  check_refused(t, params, kRoot, api::kInvalidParams, field);
}

UserIds user_of(const json& v) {
  auto r = parse_user(wire(v), "user");
  REQUIRE_MESSAGE(r.ok(), v.dump() << ": " << r.error().message());
  return *r;
}

int signal_of(const json& v) {
  auto r = parse_signal(wire(v), "signal");
  REQUIRE_MESSAGE(r.ok(), v.dump() << ": " << r.error().message());
  return *r;
}

rt::Plan plan_of(const Tree& t, const json& params, const std::string& id = "a1b2c3d4e5f6") {
  json spec = normalized(t, params);
  auto plan = build_plan(id, spec, t.config);
  REQUIRE_MESSAGE(plan.ok(), plan.error().message());
  return std::move(*plan);
}

}  // namespace

TEST_SUITE("daemon.plan_builder") {

TEST_CASE("normalize_create fills in the daemon's defaults") {
  Tree t;
  json s = normalized(t, {{"rootfs", t.rootfs()}});
  CHECK(s["rootfs"] == t.rootfs());
  CHECK(s["image"] == "");
  CHECK(s["labels"] == json::object());
  CHECK(s["limits"] == json{{"memory", 1ull << 30}, {"pids", 1024}});
  CHECK(s["env"] == json::array());
  CHECK(s["mounts"] == json::array());
  CHECK(s["ttl"] == 0);
  CHECK(s["seccomp"] == "default");
  CHECK(s["cmd"].is_null());
  CHECK(s["cwd"] == "/");
  CHECK(s["uid"] == 0);
  CHECK(s["gid"] == 0);
  CHECK(s["hostname"] == "");
}

TEST_CASE("normalize_create takes the configured defaults for limits, ttl and seccomp") {
  Tree t;
  t.config.vcpus = 2.0;
  t.config.disk = 1ull << 30;
  t.config.memory.reset();
  t.config.pids.reset();
  t.config.ttl = 60;
  t.config.seccomp = "unconfined";
  json s = normalized(t, {{"rootfs", t.rootfs()}});
  CHECK(s["limits"] == json{{"vcpus", 2.0}, {"disk", 1ull << 30}});
  CHECK(s["ttl"] == 60);
  CHECK(s["seccomp"] == "unconfined");
}

TEST_CASE("normalize_create keeps what the request gives") {
  Tree t;
  json s = normalized(t, {{"rootfs", t.rootfs()},
                          {"labels", {{"app", "web"}, {"tier", ""}}},
                          {"env", {"A=b", "EMPTY="}},
                          {"ttl", 30},
                          {"cmd", {"sleep", "10"}},
                          {"cwd", "/tmp"},
                          {"user", "1000:1001"},
                          {"hostname", "web-1"},
                          {"seccomp", "default"},
                          {"limits", {{"vcpus", 0.5}, {"memory", "256M"}, {"pids", 32}, {"disk", "1G"}}}});
  CHECK(s["labels"] == json{{"app", "web"}, {"tier", ""}});
  CHECK(s["env"] == json{"A=b", "EMPTY="});
  CHECK(s["ttl"] == 30);
  CHECK(s["cmd"] == json{"sleep", "10"});
  CHECK(s["cwd"] == "/tmp");
  CHECK(s["uid"] == 1000);
  CHECK(s["gid"] == 1001);
  CHECK(s["hostname"] == "web-1");
  CHECK(s["limits"] == json{{"vcpus", 0.5}, {"memory", 256ull << 20}, {"pids", 32}, {"disk", 1ull << 30}});
}

// What the daemon passes for an image request: the snapshot of the stored image.
json snapshot(const json& config = json::object(), uint32_t uid = 0, uint32_t gid = 0) {
  return {{"name", "py"},
          {"id", "sha256:" + std::string(64, 'c')},
          {"layers", {"sha256:" + std::string(64, 'a'), "sha256:" + std::string(64, 'b')}},
          {"config", config},
          {"user", {{"uid", uid}, {"gid", gid}}}};
}

json normalized_image(const Tree& t, const json& params, const json& image,
                      const CreatePolicy& policy = kRoot) {
  auto r = normalize_create(wire(params), t.config, policy, image);
  REQUIRE_MESSAGE(r.ok(), params.dump() << ": " << r.error().message());
  return *r;
}

TEST_CASE("exactly one of rootfs and image") {
  Tree t;
  check_invalid(t, json::object(), "rootfs");
  auto r = normalize_create(wire({{"rootfs", t.rootfs()}, {"image", "py"}}), t.config, kRoot, snapshot());
  REQUIRE(!r.ok());
  CHECK(r.error().message().rfind("params.rootfs: ", 0) == 0);
}

TEST_CASE("an image's layers become the lower dirs, top layer first") {
  Tree t;
  json s = normalized_image(t, {{"image", "py"}}, snapshot(), kUser);  // a non-root caller may use images
  CHECK(s["rootfs"] == "");
  CHECK(s["image"]["id"] == "sha256:" + std::string(64, 'c'));
  // validate_plan wants the lower dirs to exist.
  CHECK(!build_plan("a1b2c3d4e5f6", s, t.config).ok());
  REQUIRE(make_dirs(t.dir + "/state/layers/" + std::string(64, 'a')).ok());
  REQUIRE(make_dirs(t.dir + "/state/layers/" + std::string(64, 'b')).ok());
  auto plan = build_plan("a1b2c3d4e5f6", s, t.config);
  REQUIRE_MESSAGE(plan.ok(), plan.error().message());
  CHECK(plan->root.lower_dirs == std::vector<std::string>{t.dir + "/state/layers/" + std::string(64, 'b'),
                                                          t.dir + "/state/layers/" + std::string(64, 'a')});
}

TEST_CASE("an image's config gives the defaults: env under the request's, workdir, user") {
  Tree t;
  json config = {{"Env", {"PATH=/opt/bin:/usr/bin", "LANG=de_DE.UTF-8", "=bad", "ALSO_BAD"}},
                 {"WorkingDir", "/srv"}};
  json s = normalized_image(t, {{"image", "py"}, {"env", {"LANG=C.UTF-8", "X=1"}}}, snapshot(config, 65534, 65533));
  CHECK(s["env"] == json{"PATH=/opt/bin:/usr/bin", "LANG=C.UTF-8", "X=1"});
  CHECK(s["cwd"] == "/srv");
  CHECK(s["uid"] == 65534);
  CHECK(s["gid"] == 65533);
  json own = normalized_image(t, {{"image", "py"}, {"cwd", "/tmp"}, {"user", "1000:1000"}}, snapshot(config, 65534));
  CHECK(own["cwd"] == "/tmp");
  CHECK(own["uid"] == 1000);
  // A relative WorkingDir is not a working directory.
  CHECK(normalized_image(t, {{"image", "py"}}, snapshot({{"WorkingDir", "srv"}}))["cwd"] == "/");
}

TEST_CASE("entrypoint and cmd follow docker's rules") {
  Tree t;
  json config = {{"Entrypoint", {"/entry", "-x"}}, {"Cmd", {"serve"}}};
  CHECK(normalized_image(t, {{"image", "py"}}, snapshot(config))["cmd"] == json{"/entry", "-x", "serve"});
  CHECK(normalized_image(t, {{"image", "py"}, {"cmd", {"run", "1"}}}, snapshot(config))["cmd"] ==
        json{"/entry", "-x", "run", "1"});
  // An entrypoint of the request's own drops the image's cmd; [] runs nothing: an idle sandbox.
  CHECK(normalized_image(t, {{"image", "py"}, {"entrypoint", {"/bin/sh"}}}, snapshot(config))["cmd"] ==
        json{"/bin/sh"});
  CHECK(normalized_image(t, {{"image", "py"}, {"entrypoint", json::array()}}, snapshot(config))["cmd"].is_null());
  CHECK(normalized_image(t, {{"image", "py"}}, snapshot())["cmd"].is_null());
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"entrypoint", {"/bin/sh", "-c"}}, {"cmd", {"true"}}})["cmd"] ==
        json{"/bin/sh", "-c", "true"});
}

TEST_CASE("the network defaults to none and is stored as an object; an unknown mode is refused") {
  Tree t;
  CHECK(normalized(t, {{"rootfs", t.rootfs()}})["network"] == json{{"mode", "none"}});
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"network", "bridge"}})["network"]["mode"] == "bridge");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"network", "host"}}, "network.mode");
}

TEST_CASE("rootfs must be an absolute path to a directory") {
  Tree t;
  check_invalid(t, {{"rootfs", "relative/rootfs"}}, "rootfs");
  check_invalid(t, {{"rootfs", ""}}, "rootfs");
  check_invalid(t, {{"rootfs", t.dir + "/missing"}}, "rootfs");
  check_invalid(t, {{"rootfs", t.dir + "/allowed/file"}}, "rootfs");
}

TEST_CASE("the rootfs is stored resolved (symlinks and dots)") {
  Tree t;
  CHECK(normalized(t, {{"rootfs", t.dir + "/allowed/escape"}})["rootfs"] == t.dir + "/outside/rootfs");
  CHECK(normalized(t, {{"rootfs", t.dir + "/allowed/./nested/../rootfs"}})["rootfs"] == t.rootfs());
}

TEST_CASE("a non-root caller's rootfs must lie under rootfs_dirs") {
  Tree t;
  CHECK(normalized(t, {{"rootfs", t.rootfs()}}, kUser)["rootfs"] == t.rootfs());
  CHECK(normalized(t, {{"rootfs", t.dir + "/allowed/nested/deeper"}}, kUser)["rootfs"] ==
        t.dir + "/allowed/nested/deeper");
  CHECK(normalized(t, {{"rootfs", t.dir + "/allowed"}}, kUser)["rootfs"] == t.dir + "/allowed");
  check_refused(t, {{"rootfs", t.dir + "/outside/rootfs"}}, kUser, api::kPermissionDenied);
  check_refused(t, {{"rootfs", "/"}}, kUser, api::kPermissionDenied);
  // A name that merely starts with an allowed dir's is not under it.
  check_refused(t, {{"rootfs", t.dir + "/allowed-evil/rootfs"}}, kUser, api::kPermissionDenied);
  // Neither a symlink out of the allowed dir nor ".." gets out.
  check_refused(t, {{"rootfs", t.dir + "/allowed/escape"}}, kUser, api::kPermissionDenied);
  check_refused(t, {{"rootfs", t.dir + "/allowed/../outside/rootfs"}}, kUser, api::kPermissionDenied);
  // Root may use any directory.
  CHECK(normalized(t, {{"rootfs", t.dir + "/outside/rootfs"}}, kRoot)["rootfs"] == t.dir + "/outside/rootfs");
}

TEST_CASE("a non-root caller's rootfs is refused when no rootfs_dirs are configured") {
  Tree t;
  t.config.rootfs_dirs.clear();
  check_refused(t, {{"rootfs", t.rootfs()}}, kUser, api::kPermissionDenied);
  t.config.rootfs_dirs = {t.dir + "/does-not-exist"};
  check_refused(t, {{"rootfs", t.rootfs()}}, kUser, api::kPermissionDenied);
}

TEST_CASE("host bind mounts are for root only; root's are normalized, read-only by default") {
  Tree t;
  auto mount = [](const std::string& src, const json& dst) { return json{{"source", src}, {"destination", dst}}; };
  auto with_mounts = [&](const json& mounts) { return json{{"rootfs", t.rootfs()}, {"mounts", mounts}}; };
  check_refused(t, with_mounts(json::array({mount(t.dir + "/outside", "/data")})), kUser, api::kPermissionDenied);
  CHECK(normalized(t, with_mounts(json::array()), kUser)["mounts"] == json::array());
  json rw = mount("/c", "/d");
  rw["read_only"] = false;
  json s = normalized(t, with_mounts(json::array({mount("/a", "/b"), rw})));
  json ro = mount("/a", "/b");
  ro["read_only"] = true;
  CHECK(s["mounts"] == json::array({ro, rw}));
  check_invalid(t, with_mounts(json::array({json{{"source", "/a"}}})), "mounts[0]");
  check_invalid(t, with_mounts(json::array({json("/a:/b")})), "mounts[0]");
  check_invalid(t, with_mounts(json::array({mount("/a", 1)})), "mounts[0]");
  json bad_ro = mount("/a", "/b");
  bad_ro["read_only"] = "no";
  check_invalid(t, with_mounts(json::array({mount("/a", "/b"), bad_ro})), "mounts[1].read_only");
}

TEST_CASE("the unconfined seccomp profile is for root only; profile names are checked") {
  Tree t;
  check_refused(t, {{"rootfs", t.rootfs()}, {"seccomp", "unconfined"}}, kUser, api::kPermissionDenied);
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"seccomp", "unconfined"}}, kRoot)["seccomp"] == "unconfined");
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"seccomp", "default"}}, kUser)["seccomp"] == "default");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"seccomp", "../../etc/passwd"}}, "seccomp");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"seccomp", ""}}, "seccomp");
  // A daemon whose default is unconfined does not hand it to a non-root caller either.
  t.config.seccomp = "unconfined";
  check_refused(t, {{"rootfs", t.rootfs()}}, kUser, api::kPermissionDenied);
}

TEST_CASE("limits are parsed and checked, each error naming the limit") {
  Tree t;
  auto limits = [&](const json& l) { return normalized(t, {{"rootfs", t.rootfs()}, {"limits", l}})["limits"]; };
  CHECK(limits({{"memory", "64M"}})["memory"] == 64ull << 20);
  CHECK(limits({{"memory", 1048576000}})["memory"] == 1048576000);
  CHECK(limits({{"disk", "2G"}})["disk"] == 2ull << 30);
  CHECK(limits({{"vcpus", 2}})["vcpus"] == 2.0);
  CHECK(limits({{"pids", 5}})["pids"] == 5);
  auto bad = [&](const json& l, std::string_view field) {
    check_invalid(t, {{"rootfs", t.rootfs()}, {"limits", l}}, field);
  };
  bad({{"memory", 0}}, "limits.memory");
  bad({{"memory", "lots"}}, "limits.memory");
  bad({{"memory", -5}}, "limits.memory");
  bad({{"disk", "0"}}, "limits.disk");
  bad({{"vcpus", 0}}, "limits.vcpus");
  bad({{"vcpus", -1}}, "limits.vcpus");
  bad({{"vcpus", "2"}}, "limits.vcpus");
  bad({{"vcpus", 2000}}, "limits.vcpus");
  bad({{"pids", 0}}, "limits.pids");
  bad({{"pids", -1}}, "limits.pids");
  bad({{"pids", "10"}}, "limits.pids");
  bad({{"pids", 1.5}}, "limits.pids");
  bad({{"cpu", 1}}, "limits.cpu");
}

TEST_CASE("env entries must be NAME=value") {
  Tree t;
  check_invalid(t, {{"rootfs", t.rootfs()}, {"env", {"A=b", "NOEQUALS"}}}, "env[1]");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"env", {"=value"}}}, "env[0]");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"env", {std::string("A=b\0c", 5)}}}, "env[0]");
}

TEST_CASE("ttl, cmd, cwd, hostname and labels are checked") {
  Tree t;
  check_invalid(t, {{"rootfs", t.rootfs()}, {"ttl", -1}}, "ttl");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"cmd", json::array()}}, "cmd");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"cwd", "tmp"}}, "cwd");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"cwd", ""}}, "cwd");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"hostname", "Web_1"}}, "hostname");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"hostname", "a/b"}}, "hostname");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"labels", {{"app", 1}}}}, "labels.app");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"labels", {{"", "x"}}}}, "labels.");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"labels", {{"app", std::string(2000, 'x')}}}}, "labels.app");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"user", "root"}}, "user");
}

TEST_CASE("parse_user reads uid and uid:gid, as a string or a number") {
  CHECK(user_of("1000").uid == 1000);
  CHECK(user_of("1000").gid == 1000);
  CHECK(user_of("1000:2000").uid == 1000);
  CHECK(user_of("1000:2000").gid == 2000);
  CHECK(user_of("0:0").uid == 0);
  CHECK(user_of(json(65534)).uid == 65534);
  CHECK(user_of(json(65534)).gid == 65534);
  CHECK(user_of("4294967294").uid == 4294967294u);
  for (const json& bad : {json("root"), json("-1"), json("1000:"), json(":1000"), json(""), json("1:2:3"),
                          json("4294967295"), json("99999999999"), json("1 "), json(-1), json(4294967295ull),
                          json(1.5), json(true)}) {
    auto r = parse_user(wire(bad), "user");
    CHECK_MESSAGE(!r.ok(), "accepted " << bad.dump());
    if (!r.ok()) {
      CHECK(r.error().code() == api::kInvalidParams);
      CHECK(r.error().message().rfind("params.user: ", 0) == 0);
    }
  }
}

TEST_CASE("parse_signal reads names with or without SIG, and numbers") {
  CHECK(signal_of("TERM") == SIGTERM);
  CHECK(signal_of("SIGTERM") == SIGTERM);
  CHECK(signal_of("KILL") == SIGKILL);
  CHECK(signal_of("SIGUSR1") == SIGUSR1);
  CHECK(signal_of("HUP") == SIGHUP);
  CHECK(signal_of("15") == SIGTERM);
  CHECK(signal_of(9) == SIGKILL);
  CHECK(signal_of(SIGRTMAX) == SIGRTMAX);
  for (const json& bad : {json("FOO"), json("SIG"), json(""), json("term"), json("0"), json(0), json(-1),
                          json(SIGRTMAX + 1), json("SIGKILLX")}) {
    auto r = parse_signal(wire(bad), "signal");
    CHECK_MESSAGE(!r.ok(), "accepted " << bad.dump());
    if (!r.ok()) {
      CHECK(r.error().code() == api::kInvalidParams);
      CHECK(r.error().message().rfind("params.signal: ", 0) == 0);
    }
  }
}

TEST_CASE("check_name allows [a-z0-9][a-z0-9_.-]{0,63}") {
  for (const char* good : {"a", "0", "web-1", "a.b_c-d", "0abc"}) {
    CHECK_MESSAGE(check_name(good, "name").ok(), good);
  }
  CHECK(check_name(std::string(64, 'a'), "name").ok());
  for (std::string bad : {std::string(""), std::string(65, 'a'), std::string("-a"), std::string(".a"),
                          std::string("_a"), std::string("A"), std::string("a/b"), std::string("a b"),
                          std::string("a\nb"), std::string("..")}) {
    auto r = check_name(bad, "name");
    CHECK_MESSAGE(!r.ok(), "accepted '" << bad << "'");
    if (!r.ok()) {
      CHECK(r.error().code() == api::kInvalidParams);
      CHECK(r.error().message().rfind("params.name: ", 0) == 0);
    }
  }
}

TEST_CASE("merge_env: later entries override earlier ones of the same name") {
  auto env = merge_env({"PATH=/bin", "HOME=/root", "A=1"}, {"A=2", "B=3", "HOME=/home/x"});
  CHECK(env == std::vector<std::string>{"PATH=/bin", "A=2", "B=3", "HOME=/home/x"});
  CHECK(merge_env({"A=1"}, {}) == std::vector<std::string>{"A=1"});
  CHECK(merge_env({}, {"A=1"}) == std::vector<std::string>{"A=1"});
  // Only whole names match: AB does not replace A.
  CHECK(merge_env({"A=1"}, {"AB=2"}) == std::vector<std::string>{"A=1", "AB=2"});
}

TEST_CASE("default_env gives PATH and a HOME for root and for others") {
  auto root = default_env(0);
  auto user = default_env(1000);
  auto has = [](const std::vector<std::string>& env, const std::string& kv) {
    return std::find(env.begin(), env.end(), kv) != env.end();
  };
  CHECK(has(root, "HOME=/root"));
  CHECK(has(user, "HOME=/"));
  bool path = false;
  for (const auto& kv : root) {
    path = path || kv.rfind("PATH=", 0) == 0;
  }
  CHECK(path);
}

TEST_CASE("build_plan turns a spec into the runtime's plan") {
  Tree t;
  t.config.capabilities = {"CAP_CHOWN", "CAP_KILL"};
  rt::Plan p = plan_of(t, {{"rootfs", t.rootfs()},
                           {"hostname", "web-1"},
                           {"limits", {{"vcpus", 1.5}, {"memory", "64M"}, {"pids", 50}, {"disk", "128M"}}},
                           {"mounts", json::array({json{{"source", t.dir + "/outside"}, {"destination", "/data"}}})},
                           {"env", {"A=b", "PATH=/custom"}},
                           {"cmd", {"sh", "-c", "echo hi"}},
                           {"cwd", "/tmp"},
                           {"user", "1000:1001"}});
  CHECK(p.id == "a1b2c3d4e5f6");
  CHECK(p.hostname == "web-1");
  CHECK(p.root.lower_dirs == std::vector<std::string>{t.rootfs()});
  CHECK(p.root.upper_tmpfs_size == std::optional<uint64_t>(128ull << 20));
  CHECK(p.limits.memory_max == std::optional<uint64_t>(64ull << 20));
  CHECK(p.limits.memory_swap_max == std::optional<uint64_t>(0));
  CHECK(p.limits.vcpus == std::optional<double>(1.5));
  CHECK(p.limits.pids_max == std::optional<uint64_t>(50));
  REQUIRE(p.mounts.size() == 1);
  CHECK(p.mounts[0].source == t.dir + "/outside");
  CHECK(p.mounts[0].destination == "/data");
  CHECK(p.mounts[0].read_only);
  CHECK(p.security.keep_caps == t.config.capabilities);
  CHECK(p.security.seccomp_profile == std::string(SBX_SOURCE_ROOT) + "/seccomp-profiles/default.json");
  REQUIRE(p.main.has_value());
  CHECK(p.main->argv == std::vector<std::string>{"sh", "-c", "echo hi"});
  CHECK(p.main->cwd == "/tmp");
  CHECK(p.main->uid == 1000);
  CHECK(p.main->gid == 1001);
  CHECK(std::find(p.main->env.begin(), p.main->env.end(), "A=b") != p.main->env.end());
  CHECK(std::find(p.main->env.begin(), p.main->env.end(), "PATH=/custom") != p.main->env.end());
  CHECK(std::find(p.main->env.begin(), p.main->env.end(), "HOME=/") != p.main->env.end());
  CHECK(std::count_if(p.main->env.begin(), p.main->env.end(),
                      [](const std::string& kv) { return kv.rfind("PATH=", 0) == 0; }) == 1);
}

TEST_CASE("build_plan without a command or limits leaves them unset") {
  Tree t;
  t.config.memory.reset();
  t.config.pids.reset();
  rt::Plan p = plan_of(t, {{"rootfs", t.rootfs()}});
  CHECK(!p.main.has_value());
  CHECK(!p.limits.memory_max);
  CHECK(!p.limits.pids_max);
  CHECK(!p.limits.vcpus);
  CHECK(!p.root.upper_tmpfs_size);
  CHECK(p.mounts.empty());
  CHECK(p.hostname == "a1b2c3d4e5f6");  // no hostname asked for: the id
}

TEST_CASE("build_plan refuses a seccomp profile that is not in the profile directory") {
  Tree t;
  json spec = normalized(t, {{"rootfs", t.rootfs()}, {"seccomp", "nosuchprofile"}});
  auto p = build_plan("a1b2c3d4e5f6", spec, t.config);
  REQUIRE(!p.ok());
  CHECK(p.error().code() == api::kInvalidParams);
  CHECK(p.error().message().rfind("params.seccomp: ", 0) == 0);
  CHECK(p.error().message().find("nosuchprofile") != std::string::npos);
}

TEST_CASE("build_plan reports an invalid plan as invalid params") {
  Tree t;
  json mounts = json::array({json{{"source", t.dir + "/outside"}, {"destination", "rel"}}});
  json spec = normalized(t, {{"rootfs", t.rootfs()}, {"mounts", mounts}});
  auto p = build_plan("a1b2c3d4e5f6", spec, t.config);
  REQUIRE(!p.ok());
  CHECK(p.error().code() == api::kInvalidParams);
  // A spec whose rootfs vanished since it was stored: refused, not crashed on.
  json gone = normalized(t, {{"rootfs", t.dir + "/allowed/nested/deeper"}});
  REQUIRE(remove_tree(t.dir + "/allowed/nested").ok());
  auto p2 = build_plan("a1b2c3d4e5f6", gone, t.config);
  CHECK(!p2.ok());
}

}  // TEST_SUITE

TEST_SUITE("daemon.plan_builder.security") {

TEST_CASE("a sandbox gets a user namespace unless sbxd.toml says otherwise") {
  Tree t;
  CHECK(normalized(t, {{"rootfs", t.rootfs()}})["userns"] == true);
  t.config.userns = false;
  CHECK(normalized(t, {{"rootfs", t.rootfs()}})["userns"] == false);
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"userns", true}}, kUser)["userns"] == true);
}

TEST_CASE("only root may ask for the host's user namespace") {
  Tree t;
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"userns", false}})["userns"] == false);
  t.config.rootfs_dirs = {t.dir + "/allowed"};
  check_refused(t, {{"rootfs", t.rootfs()}, {"userns", false}}, kUser, api::kPermissionDenied);
  check_invalid(t, {{"rootfs", t.rootfs()}, {"userns", "no"}}, "userns");
}

TEST_CASE("cap_drop takes names in any spelling, and ALL; cap_add is for root only") {
  Tree t;
  t.config.capabilities = {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  CHECK(normalized(t, {{"rootfs", t.rootfs()}})["capabilities"] == t.config.capabilities);
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"cap_drop", {"kill", "NET_BIND_SERVICE"}}}, kUser)["capabilities"] ==
        json{"CAP_CHOWN"});
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"cap_drop", {"ALL"}}}, kUser)["capabilities"] == json::array());
  CHECK(normalized(t, {{"rootfs", t.rootfs()}, {"cap_drop", {"ALL"}}, {"cap_add", {"cap_kill"}}})["capabilities"] ==
        json{"CAP_KILL"});
  check_refused(t, {{"rootfs", t.rootfs()}, {"cap_add", {"CAP_SYS_ADMIN"}}}, kUser, api::kPermissionDenied);
  check_invalid(t, {{"rootfs", t.rootfs()}, {"cap_drop", {"CAP_NOPE"}}}, "cap_drop[0]");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"cap_drop", "ALL"}}, "cap_drop");
}

TEST_CASE("the capabilities a spec keeps are the plan's; an older spec without them keeps sbxd's") {
  Tree t;
  t.config.capabilities = {"CAP_CHOWN", "CAP_KILL"};
  json spec = normalized(t, {{"rootfs", t.rootfs()}, {"cap_drop", {"CAP_KILL"}}});
  auto plan = build_plan("a1", spec, t.config);
  REQUIRE(plan.ok());
  CHECK(plan->security.keep_caps == std::vector<std::string>{"CAP_CHOWN"});
  spec.erase("capabilities");
  plan = build_plan("a1", spec, t.config);
  REQUIRE(plan.ok());
  CHECK(plan->security.keep_caps == t.config.capabilities);
}

TEST_CASE("read_only gives a read-only root, which takes no disk limit") {
  Tree t;
  t.config.disk = 64ull << 20;
  rt::Plan p = plan_of(t, {{"rootfs", t.rootfs()}, {"read_only", true}});
  CHECK(p.root.read_only);
  CHECK(!p.root.upper_tmpfs_size);
  CHECK(!plan_of(t, {{"rootfs", t.rootfs()}}).root.read_only);
  check_invalid(t, {{"rootfs", t.rootfs()}, {"read_only", true}, {"limits", {{"disk", "1G"}}}}, "read_only");
  check_invalid(t, {{"rootfs", t.rootfs()}, {"read_only", 1}}, "read_only");
}

}  // TEST_SUITE
