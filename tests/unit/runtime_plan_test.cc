#include <doctest/doctest.h>
#include <algorithm>

#include "runtime/caps.h"
#include "runtime/mount.h"
#include "runtime/plan.h"
#include "runtime/rlimit.h"

using namespace sbx;
using namespace sbx::rt;

namespace {

Plan valid_plan() {
  Plan p = default_plan("box-1", {"/"});
  p.mounts.push_back({"/etc", "/host-etc", true});
  ProcessSpec main;
  main.argv = {"/bin/sh", "-c", "true"};
  main.env = {"PATH=/bin"};
  p.main = main;
  return p;
}

// The plan's validation fails and the message names `field`.
void check_rejected(const Plan& p, const std::string& field) {
  auto r = validate_plan(p);
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  CHECK(r.error().message().rfind(field, 0) == 0);
}

}  // namespace

TEST_SUITE("rt.plan") {

TEST_CASE("a default plan with a real root directory is valid and masks what runc masks") {
  Plan p = valid_plan();
  CHECK(validate_plan(p).ok());
  CHECK(p.hostname == "box-1");
  CHECK(std::find(p.masked_paths.begin(), p.masked_paths.end(), "/proc/kcore") != p.masked_paths.end());
  CHECK(std::find(p.readonly_paths.begin(), p.readonly_paths.end(), "/proc/sys") != p.readonly_paths.end());
}

TEST_CASE("ids are short, lowercase and safe as path components") {
  CHECK(validate_id("a").ok());
  CHECK(validate_id("job-42.x_y").ok());
  CHECK_FALSE(validate_id("").ok());
  CHECK_FALSE(validate_id("Upper").ok());
  CHECK_FALSE(validate_id("-lead").ok());
  CHECK_FALSE(validate_id("a/b").ok());
  CHECK_FALSE(validate_id("..").ok());
  CHECK_FALSE(validate_id(std::string(65, 'a')).ok());
}

TEST_CASE("a network must name its links and put its address and gateway in one subnet") {
  Plan p = valid_plan();
  p.network = NetworkPlan{"sbxv1", "sbx0", *parse_ipv4_net("10.66.0.5/16", false), *parse_ipv4("10.66.0.1"), 1500};
  CHECK(validate_plan(p).ok());
  auto bad = [&](auto change, const char* field) {
    Plan q = p;
    change(*q.network);
    check_rejected(q, field);
  };
  bad([](NetworkPlan& n) { n.host_ifname = "a-name-longer-than-15"; }, "network.host_ifname");
  bad([](NetworkPlan& n) { n.bridge = ""; }, "network.bridge");
  bad([](NetworkPlan& n) { n.bridge = "a/b"; }, "network.bridge");
  bad([](NetworkPlan& n) { n.address = *parse_ipv4_net("10.66.0.0/16", false); }, "network.address");
  bad([](NetworkPlan& n) { n.address = *parse_ipv4_net("10.66.255.255/16", false); }, "network.address");
  bad([](NetworkPlan& n) { n.address.prefix = 32; }, "network.address");
  bad([](NetworkPlan& n) { n.gateway = *parse_ipv4("10.67.0.1"); }, "network.gateway");
  bad([](NetworkPlan& n) { n.gateway = n.address.address; }, "network.gateway");
  bad([](NetworkPlan& n) { n.mtu = 100; }, "network.mtu");
}

TEST_CASE("each invalid field is named in the error") {
  Plan p = valid_plan();
  p.root.lower_dirs.clear();
  check_rejected(p, "root.lower_dirs");
  p = valid_plan();
  p.root.lower_dirs = {"/no/such/dir"};
  check_rejected(p, "root.lower_dirs[0]");
  p = valid_plan();
  p.root.lower_dirs = {"/etc/passwd"};
  check_rejected(p, "root.lower_dirs[0]");
  p = valid_plan();
  p.root.read_only = true;
  p.root.upper_tmpfs_size = 16 << 20;
  check_rejected(p, "root.upper_tmpfs_size");
  p = valid_plan();
  p.root.upper_tmpfs_size = 100;
  check_rejected(p, "root.upper_tmpfs_size");
  p = valid_plan();
  p.mounts[0].source = "/no/such/file";
  check_rejected(p, "mounts[0].source");
  p = valid_plan();
  p.mounts[0].destination = "/a/../etc";
  check_rejected(p, "mounts[0].destination");
  p = valid_plan();
  p.mounts[0].destination = "/";
  check_rejected(p, "mounts[0].destination");
  p = valid_plan();
  p.hostname = "bad host";
  check_rejected(p, "hostname");
  p = valid_plan();
  p.tmp_size = 0;
  check_rejected(p, "tmp_size");
  p = valid_plan();
  p.security.keep_caps = {"CAP_NOPE"};
  check_rejected(p, "security.keep_caps[0]");
  p = valid_plan();
  p.security.keep_caps = {"CAP_NET_BIND_SERVICE", "CAP_MKNOD"};
  check_rejected(p, "security.keep_caps[1]: CAP_MKNOD");
  p = valid_plan();
  p.security.rlimits.nofile = 1;
  check_rejected(p, "rlimits.nofile");
  p = valid_plan();
  p.limits.cpu_weight = 0;
  check_rejected(p, "limits.cpu_weight");
  p = valid_plan();
  p.main->argv.clear();
  check_rejected(p, "main.argv");
  p = valid_plan();
  p.main->env = {"NOEQUALS"};
  check_rejected(p, "main.env[0]");
  p = valid_plan();
  p.main->cwd = "relative";
  check_rejected(p, "main: cwd");
}

TEST_CASE("capability names parse with or without the CAP_ prefix, in any case") {
  auto caps = parse_capabilities({"CAP_NET_BIND_SERVICE", "chown", "CAP_CHOWN"}, "caps");
  REQUIRE(caps.ok());
  CHECK(*caps == std::vector<int>{10, 0});
  auto bad = parse_capabilities({"CAP_CHOWN", "CAP_FLY"}, "caps");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message() == "caps[1]: unknown capability 'CAP_FLY'");
}

TEST_CASE("overlay options list the lower dirs topmost first and refuse separators in paths") {
  SandboxPaths paths("/run/sbx/a");
  RootfsPlan root;
  root.lower_dirs = {"/img/top", "/img/base"};
  auto opts = overlay_options(root, paths);
  REQUIRE(opts.ok());
  CHECK(*opts == "lowerdir=/img/top:/img/base,upperdir=/run/sbx/a/rw/upper,workdir=/run/sbx/a/rw/work");
  root.lower_dirs = {"/img/a:b"};
  CHECK_FALSE(overlay_options(root, paths).ok());
  root.lower_dirs = {"/img/a,b"};
  CHECK_FALSE(overlay_options(root, paths).ok());
  root.lower_dirs.assign(400, "/img/some/long/layer/path");
  CHECK_FALSE(overlay_options(root, paths).ok());
}

}  // TEST_SUITE
