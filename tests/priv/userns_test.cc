// Sandboxes with a user namespace of their own: root inside is an unprivileged host uid, image layers are shared
// through idmapped mounts (never chowned), what the sandbox writes lands on the host under its mapped ids, execs
// join the namespace, and capabilities follow the kernel's rules for root and for other uids.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/file.h"
#include "runtime/userns.h"
#include "tests/priv/fixture.h"

using namespace sbx;
using namespace sbx::test;

namespace {

constexpr uint32_t kHostRoot = 1500000000;  // far from any host user; each test takes its own slice

rt::Plan userns_plan(const std::string& prefix, uint32_t slot) {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id(prefix));
  plan.userns = rt::contiguous_userns(kHostRoot + slot * 65536, 65536);
  return plan;
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st;
}

}  // namespace

TEST_SUITE("userns") {

TEST_CASE("root inside is the mapped host uid, and the sandbox's files are root's inside") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), userns_plan("uns-map", 0));
  auto out = exec_capture(env.runtime(), g.id(), shell("cat /proc/self/uid_map /proc/self/gid_map; id -u; "
                                                       "stat -c '%u:%g' / /bin/busybox /etc/passwd"));
  CHECK(out.status.code == 0);
  CHECK(out.out == fmt::format("         0 {} {:>10}\n         0 {} {:>10}\n0\n0:0\n0:0\n0:0\n", kHostRoot, 65536,
                               kHostRoot, 65536));
  // The layer itself was not touched: still the host's root's.
  CHECK(stat_of(TestEnv::busybox_rootfs() + "/bin/busybox").st_uid == 0);
}

TEST_CASE("what the sandbox writes lands on the host owned by its mapped ids") {
  auto& env = TestEnv::get();
  auto plan = userns_plan("uns-write", 1);
  plan.security.keep_caps = {"CAP_CHOWN"};
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(), shell("touch /etc/by-root && mkdir /home/u && "
                                                       "chown 1000:1001 /home/u && echo ok"));
  CHECK(out.out == "ok\n");
  std::string upper = env.runtime().sandbox_dir(g.id()) + "/rw/upper";
  CHECK(stat_of(upper).st_uid == kHostRoot + 65536);
  CHECK(stat_of(upper + "/etc/by-root").st_uid == kHostRoot + 65536);
  CHECK(stat_of(upper + "/home/u").st_uid == kHostRoot + 65536 + 1000);
  CHECK(stat_of(upper + "/home/u").st_gid == kHostRoot + 65536 + 1001);
}

TEST_CASE("root inside keeps its capabilities only over the sandbox; another uid has none") {
  auto& env = TestEnv::get();
  auto plan = userns_plan("uns-caps", 2);
  plan.security.keep_caps = {"CAP_CHOWN", "CAP_NET_BIND_SERVICE"};
  SandboxGuard g(env.runtime(), plan);
  // (The probe refuses to run with capabilities: root's are read by the shell.)
  auto root = exec_capture(env.runtime(), g.id(), shell("grep -E '^Cap(Eff|Amb)' /proc/self/status"));
  CHECK(root.out == "CapEff:\t0000000000000401\nCapAmb:\t0000000000000000\n");
  auto proc = probe({"status"});
  proc.uid = 1000;
  proc.gid = 1000;
  auto user = exec_capture(env.runtime(), g.id(), proc).kv();
  CHECK(user["uid"] == "1000");
  CHECK(user["CapEff"] == "0000000000000000");
  CHECK(user["CapPrm"] == "0000000000000000");
  CHECK(user["CapAmb"] == "0000000000000000");
  CHECK(user["CapInh"] == "0000000000000000");
  // Even with CAP_CHOWN, root inside cannot hand a file to an id outside its namespace.
  auto chown = exec_capture(env.runtime(), g.id(), shell("touch /tmp/f && chown 70000 /tmp/f"));
  CHECK(chown.status.code != 0);
}

TEST_CASE("the standard device nodes work, bound from the host; mknod makes none") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), userns_plan("uns-dev", 3));
  auto out = exec_capture(env.runtime(), g.id(),
                          shell("echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c"));
  CHECK(out.status.code == 0);
  CHECK(out.out == "4\n4\n");
  auto kv = exec_capture(env.runtime(), g.id(), probe({"syscalls"})).kv();
  CHECK(kv["mount"] == "EPERM");
  CHECK(kv["unshare_user"] == "EPERM");
}

TEST_CASE("bind mounts are idmapped: a host file keeps its owner's id inside, and writes keep the host's ids") {
  auto& env = TestEnv::get();
  std::string dir = make_idmappable_temp_dir("uns-bind");
  REQUIRE_OK(create_file(dir + "/mine", "host\n"));
  REQUIRE(::chown((dir + "/mine").c_str(), 1000, 1000) == 0);
  auto plan = userns_plan("uns-bind", 4);
  plan.mounts.push_back({dir, "/data", false});
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(), shell("stat -c '%u:%g' /data/mine && cat /data/mine && "
                                                       "echo new > /data/new && echo ok"));
  CHECK(out.out == "1000:1000\nhost\nok\n");
  CHECK(stat_of(dir + "/new").st_uid == 0);  // root inside writes as the host's root through the idmapped bind
  (void)remove_tree(dir);
}

TEST_CASE("a read-only root of several layers is an overlay without an upper layer") {
  auto& env = TestEnv::get();
  std::string top = make_idmappable_temp_dir("uns-top");
  REQUIRE_OK(make_dirs(top + "/etc", 0755));
  REQUIRE_OK(create_file(top + "/etc/top", "top\n"));
  auto plan = userns_plan("uns-ro", 5);
  plan.root.lower_dirs.insert(plan.root.lower_dirs.begin(), top);
  plan.root.read_only = true;
  plan.mounts[0].destination = "/tmp/sbx-probe";  // a read-only root gets no new mount point
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(), shell("cat /etc/top; touch /etc/x 2>/dev/null || echo refused"));
  CHECK(out.out == "top\nrefused\n");
  (void)remove_tree(top);
}

TEST_CASE("a map the kernel cannot take, or a layer that cannot be idmapped, fails the create and leaves nothing") {
  auto& env = TestEnv::get();
  auto plan = userns_plan("uns-bad", 6);
  plan.userns->uid_map = {{0, 0, 65536}};
  auto refused = env.runtime().create(plan);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message().find("maps the host's id 0") != std::string::npos);
  CHECK_FALSE(path_exists(env.runtime().sandbox_dir(plan.id)));

  // /proc cannot be idmapped: the bind fails with a message naming the requirement, and nothing stays.
  auto bad_bind = userns_plan("uns-bad", 7);
  bad_bind.mounts.push_back({"/proc/self", "/hostproc", true});
  auto failed = env.runtime().create(bad_bind);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().message().find("needs idmapped mounts") != std::string::npos);
  CHECK_FALSE(path_exists(env.runtime().sandbox_dir(bad_bind.id)));
  auto ids = env.runtime().list();
  REQUIRE_OK(ids);
  CHECK(std::find(ids->begin(), ids->end(), bad_bind.id) == ids->end());
}

}  // TEST_SUITE
