// Lifecycle: refused plans, rollback of failed creates, idempotent destroy, many execs, the v2 back end.
#include <doctest/doctest.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/file.h"
#include "base/scope.h"
#include "tests/priv/fixture.h"

using namespace sbx;
using namespace sbx::test;

namespace {

// Nothing of sandbox `id` exists: no run dir, no cgroup directory.
void check_gone(rt::Runtime& runtime, const std::string& id) {
  CHECK_FALSE(path_exists(runtime.sandbox_dir(id)));
  for (const auto& p : runtime.cgroups().attach(id)->paths()) {
    INFO(p);
    CHECK_FALSE(path_exists(p));
  }
}

void check_refused(rt::Runtime& runtime, const rt::Plan& plan, const std::string& field) {
  auto r = runtime.create(plan);
  REQUIRE_FALSE(r.ok());
  INFO(r.error().message());
  CHECK(r.error().message().find(field) != std::string::npos);
  check_gone(runtime, plan.id);
}

}  // namespace

TEST_SUITE("lifecycle") {

TEST_CASE("an invalid plan is refused, naming the field, before anything is created") {
  auto& env = TestEnv::get();
  auto& rt = env.runtime();
  auto p = env.plan(env.unique_id("bad"));
  p.root.lower_dirs = {"/nonexistent/rootfs"};
  check_refused(rt, p, "root.lower_dirs[0]");

  p = env.plan(env.unique_id("bad"));
  p.security.seccomp_profile = "/nonexistent/profile.json";
  check_refused(rt, p, "/nonexistent/profile.json");

  std::string dir = make_temp_dir("sbx-profile");
  REQUIRE_OK(create_file(dir + "/bad.json", "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["));
  p.security.seccomp_profile = dir + "/bad.json";
  check_refused(rt, p, "bad.json");
  REQUIRE_OK(create_file(dir + "/unknown.json",
                         R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mountx"], "action": "SCMP_ACT_ERRNO"}]})"));
  p.security.seccomp_profile = dir + "/unknown.json";
  check_refused(rt, p, "mountx");
  REQUIRE_OK(remove_tree(dir));

  p = env.plan(env.unique_id("bad"));
  p.limits.memory_max = 1024;
  check_refused(rt, p, "limits.memory");
  p = env.plan(env.unique_id("bad"));
  p.limits.pids_max = 0;
  check_refused(rt, p, "limits.pids");
  p = env.plan(env.unique_id("bad"));
  p.security.keep_caps = {"CAP_WHATEVER"};
  check_refused(rt, p, "security.keep_caps[0]");
  p = env.plan(env.unique_id("bad"));
  p.mounts.push_back({"/etc", "relative/path", true});
  check_refused(rt, p, "mounts[1].destination");
  p = env.plan("Bad_Id");
  check_refused(rt, p, "id");
}

TEST_CASE("a create that fails inside the child is rolled back completely") {
  auto& env = TestEnv::get();
  auto p = env.plan(env.unique_id("rollback"));
  p.main = shell("true");
  p.main->cwd = "/no/such/dir";
  auto r = env.runtime().create(p);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("chdir to '/no/such/dir'") != std::string::npos);
  CHECK(r.error().sys_errno() == ENOENT);
  check_gone(env.runtime(), p.id);
}

TEST_CASE("a sandbox id that exists already is refused and the existing one is untouched") {
  auto& env = TestEnv::get();
  auto p = env.plan(env.unique_id("dup"));
  SandboxGuard g(env.runtime(), p);
  auto r = env.runtime().create(p);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().sys_errno() == EEXIST);
  CHECK(exec_capture(env.runtime(), g.id(), shell("true")).status.code == 0);
}

TEST_CASE("destroy kills everything, removes everything and is idempotent") {
  auto& env = TestEnv::get();
  auto p = env.plan(env.unique_id("destroy"));
  auto sandbox = env.runtime().create(p);
  REQUIRE_OK(sandbox);
  auto bg = env.runtime().exec(p.id, shell("sleep 1000"));
  REQUIRE_OK(bg);
  REQUIRE_OK(env.runtime().destroy(p.id));
  auto st = bg->wait();
  REQUIRE_OK(st);
  CHECK(st->signaled);
  auto init = sandbox->wait();
  REQUIRE_OK(init);
  CHECK(init->signaled);
  check_gone(env.runtime(), p.id);
  REQUIRE_OK(env.runtime().destroy(p.id));
  REQUIRE_OK(env.runtime().destroy("never-existed"));
  auto r = env.runtime().exec(p.id, shell("true"));
  CHECK_FALSE(r.ok());
}

TEST_CASE("a multi-threaded caller is refused: clone3 would copy only one of its threads") {
  auto& env = TestEnv::get();
  std::thread t;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  t = std::thread([&] {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done; });
  });
  auto p = env.plan(env.unique_id("threads"));
  auto r = env.runtime().create(p);
  {
    std::lock_guard lock(m);
    done = true;
  }
  cv.notify_one();
  t.join();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("single-threaded") != std::string::npos);
  check_gone(env.runtime(), p.id);
}

TEST_CASE("rlimits apply: nofile, core 0 and fsize, which stops a large write") {
  auto& env = TestEnv::get();
  auto p = env.plan(env.unique_id("rlimit"));
  p.security.rlimits.nofile = 512;
  p.security.rlimits.fsize = 1 << 20;
  SandboxGuard g(env.runtime(), p);
  auto out = exec_capture(env.runtime(), g.id(), shell("ulimit -n; ulimit -c; ulimit -f"));
  CHECK(out.out == "512\n0\n2048\n");  // busybox counts fsize in 512-byte blocks
  auto big = exec_capture(env.runtime(), g.id(), rt::ProcessSpec{{"/bin/dd", "if=/dev/zero", "of=/tmp/f", "bs=1M",
                                                                   "count=2"}, {}, "/", 0, 0, {}, -1, -1, -1});
  CHECK(big.status.signaled);
  CHECK(big.status.signal == SIGXFSZ);
}

TEST_CASE("a directory tree built deeper than any fd limit does not stop destroy") {
  auto& env = TestEnv::get();
  auto p = env.plan(env.unique_id("deep"));
  {
    SandboxGuard g(env.runtime(), p);
    auto proc = probe({"deeptree", "5000"});
    proc.cwd = "/home";
    CHECK(exec_capture(env.runtime(), g.id(), proc).kv()["deeptree"] == "ok");
  }
  check_gone(env.runtime(), p.id);
}

TEST_CASE("a sandbox that stops every new process cannot hang an exec: it times out and is cleaned up") {
  rt::RuntimeConfig config = TestEnv::get().runtime().config();
  config.cgroup.parent_name += "-stop";
  config.setup_timeout_ms = 1000;
  auto opened = rt::Runtime::open(config);
  REQUIRE_OK(opened);
  auto& rt = **opened;
  // Its own parent cgroup goes however the test ends (a failed REQUIRE included).
  ScopeGuard remove_parent([&rt] { (void)rt.cgroups().remove_parent(); });
  auto p = TestEnv::get().plan(TestEnv::get().unique_id("stop"));
  {
    SandboxGuard g(rt, p);
    auto stopper_spec = probe({"stopper", "30"});
    auto stopper = rt.exec(g.id(), stopper_spec);
    REQUIRE_OK(stopper);
    ::usleep(100000);
    auto r = rt.exec(g.id(), shell("true"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sys_errno() == ETIMEDOUT);
    REQUIRE_OK(stopper->signal(SIGKILL));
    auto st = stopper->wait();
    REQUIRE_OK(st);
    CHECK(st->signaled);
  }
  check_gone(rt, p.id);
  remove_parent.dismiss();
  REQUIRE_OK(rt.cgroups().remove_parent());
}

TEST_CASE("waiting for a sandbox never hangs on an exec'd process the caller has not reaped") {
  auto& env = TestEnv::get();
  auto p = env.plan(env.unique_id("zap"));
  p.main = shell("sleep 0.2");
  SandboxGuard g(env.runtime(), p);
  auto bg = env.runtime().exec(g.id(), shell("sleep 1000"));
  REQUIRE_OK(bg);
  auto st = g.sandbox().wait();
  REQUIRE_OK(st);
  CHECK(st->code == 0);
  auto bg_st = bg->wait();
  REQUIRE_OK(bg_st);
  CHECK(bg_st->signaled);
  CHECK(bg_st->signal == SIGKILL);
}

TEST_CASE("twenty execs in a row each get a fresh, correctly confined process") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("many")));
  for (int i = 0; i < 20; ++i) {
    auto out = exec_capture(env.runtime(), g.id(), shell("echo $$; grep Seccomp: /proc/self/status"));
    CHECK(out.status.code == 0);
    CHECK(out.out.find("Seccomp:\t2") != std::string::npos);
  }
}

TEST_CASE("one prepared exec serves many execs, and fails cleanly once the sandbox is gone") {
  auto& env = TestEnv::get();
  auto& rt = env.runtime();
  auto p = env.plan(env.unique_id("prep"));
  auto sandbox = rt.create(p);
  REQUIRE_OK(sandbox);
  auto prepared = rt.prepare_exec(p.id);
  REQUIRE_OK(prepared);
  CHECK(prepared->id() == p.id);
  for (int i = 0; i < 3; ++i) {
    auto proc = rt.exec(*prepared, shell("exit 3"));
    REQUIRE_OK(proc);
    // The supervisor's report is there before (and without) reaping it; wait() agrees with it afterwards.
    auto reported = proc->reported_end();
    REQUIRE(reported.has_value());
    CHECK(reported->code == 3);
    CHECK(reported->usage.has_value());
    auto st = proc->wait();
    REQUIRE_OK(st);
    CHECK(st->code == 3);
    CHECK(*proc->release_cgroup());
  }
  auto unknown = rt.prepare_exec("no-such-sandbox");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error().message().find("no-such-sandbox") != std::string::npos);
  REQUIRE_OK(rt.destroy(p.id));
  auto late = rt.exec(*prepared, shell("true"));
  REQUIRE_FALSE(late.ok());
  INFO(late.error().message());
  CHECK(late.error().message().find(p.id) != std::string::npos);
  check_gone(rt, p.id);
}

TEST_CASE("the v2 back end runs sandboxes on the unified hierarchy: clone into cgroup, kill, remove") {
  // On this hybrid host the cgroup2 mount has no controllers but all of the v2 mechanics.
  std::string root = "/sys/fs/cgroup/unified";
  struct statfs sfs {};
  if (::statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC) {
    root = "/sys/fs/cgroup";
  } else if (::statfs(root.c_str(), &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC) {
    MESSAGE("skipped: no cgroup2 mount on this host");
    return;
  }
  rt::RuntimeConfig config;
  config.run_root = fmt::format("/run/sbx-test-v2-{}", ::getpid());
  config.cgroup.mode = rt::CgroupMode::kV2;
  config.cgroup.root = root;
  config.cgroup.parent_name = fmt::format("sbx-test-{}", ::getpid());
  auto opened = rt::Runtime::open(config);
  REQUIRE_OK(opened);
  auto& rt = **opened;
  auto p = TestEnv::get().plan("v2-sandbox");
  {
    SandboxGuard g(rt, p);
    auto out = exec_capture(rt, g.id(), shell("cat /proc/self/cgroup"));
    // The cgroup namespace hides the host's path; the exec sits in a child cgroup of its own.
    CHECK(out.out.find("0::/exec-") != std::string::npos);
    std::string dir = rt.cgroups().attach(g.id())->paths().at(0);
    auto procs = read_file(dir + "/cgroup.procs");
    REQUIRE_OK(procs);
    CHECK(trim(*procs) == std::to_string(g.sandbox().init_pid()));
  }
  check_gone(rt, p.id);
  REQUIRE_OK(rt.cgroups().remove_parent());
  ::rmdir(config.run_root.c_str());
}

}  // TEST_SUITE

TEST_SUITE("init") {

TEST_CASE("sbx-init refuses to run unless it is pid 1") {
  // Run as pid 2 of a throw-away pid namespace: even if the guard regressed, its kill(-1) could not leave it.
  pid_t outer = ::fork();
  REQUIRE(outer >= 0);
  if (outer == 0) {
    if (::unshare(CLONE_NEWPID) < 0) {
      ::_exit(90);
    }
    pid_t ns_init = ::fork();
    if (ns_init == 0) {
      pid_t second = ::fork();
      if (second == 0) {
        ::execl(SBX_INIT_PATH, "sbx-init", "--", "/bin/true", static_cast<char*>(nullptr));
        ::_exit(91);
      }
      int st = 0;
      ::waitpid(second, &st, 0);
      ::_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 92);
    }
    int st = 0;
    ::waitpid(ns_init, &st, 0);
    ::_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 93);
  }
  int st = 0;
  REQUIRE(::waitpid(outer, &st, 0) == outer);
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 125);
}

}  // TEST_SUITE
