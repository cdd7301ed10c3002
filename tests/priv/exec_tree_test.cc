// Execs as whole trees: each exec's processes live in a child cgroup of the sandbox's, which can be killed (daemonized
// descendants included) while background processes of an exec that ended normally keep running. Also: the resource
// usage an exec reports, and the seccomp filter stored at create that every exec installs.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/file.h"
#include "tests/priv/fixture.h"

using namespace sbx;
using namespace sbx::test;

namespace {

using namespace std::chrono_literals;

std::vector<pid_t> exec_members(rt::Runtime& runtime, const std::string& id, const std::string& exec_cgroup) {
  auto members = runtime.cgroups().attach(id)->attach_child(exec_cgroup)->members();
  REQUIRE_OK(members);
  return *members;
}

// How many members of the exec's cgroup are `sleep` processes (by their comm, read on the host).
size_t sleeping_members(rt::Runtime& runtime, const std::string& id, const std::string& exec_cgroup) {
  size_t n = 0;
  for (pid_t pid : exec_members(runtime, id, exec_cgroup)) {
    auto comm = read_file(fmt::format("/proc/{}/comm", pid));
    n += comm.ok() && trim(*comm) == "sleep";
  }
  return n;
}

// Waits until the exec's cgroup holds `count` sleeps. Counting members alone would race: the subshells that start
// the background sleeps are members too, for a moment. The bound only stops a hang.
void wait_for_members(rt::Runtime& runtime, const std::string& id, const std::string& exec_cgroup, size_t count) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (sleeping_members(runtime, id, exec_cgroup) < count && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(sleeping_members(runtime, id, exec_cgroup) == count);
  REQUIRE(exec_members(runtime, id, exec_cgroup).size() == count);
}

// The pids (inside the sandbox) of every `sleep` running there.
std::string sleeps_in(rt::Runtime& runtime, const std::string& id) {
  return trim(exec_capture(runtime, id, shell("pidof sleep || true")).out);
}

// A command that leaves a daemon behind: a double fork (the subshell exits, so the sleep is orphaned to the sandbox's
// init) into a session of its own; another orphan that keeps the session; then the shell becomes a sleep itself.
rt::ProcessSpec daemonizing() { return shell("(setsid sleep 1000 &); (sleep 1000 &); exec sleep 1000"); }
constexpr size_t kDaemonizingProcesses = 3;

}  // namespace

TEST_SUITE("exec.tree") {

TEST_CASE("an exec's cgroup left frozen (its killer died between freeze and thaw) does not stop destroy") {
  auto& env = TestEnv::get();
  auto& rt = env.runtime();
  if (rt.cgroups().mode() != rt::CgroupMode::kV1) {
    return;  // v2 kills through cgroup.kill, which frozen tasks obey
  }
  const auto plan = env.plan(env.unique_id("frozen"));
  auto sandbox = rt.create(plan);
  REQUIRE_OK(sandbox);
  auto process = rt.exec(plan.id, shell("sleep 1000"));
  REQUIRE_OK(process);
  std::string freezer;
  for (const std::string& p : rt.cgroups().attach(plan.id)->attach_child(process->cgroup_name())->paths()) {
    if (p.find("/freezer/") != std::string::npos) {
      freezer = p;
    }
  }
  REQUIRE(!freezer.empty());
  REQUIRE_OK(write_file(freezer + "/freezer.state", "FROZEN"));
  auto state = [&freezer] {
    auto text = read_file(freezer + "/freezer.state");
    return text.ok() ? trim(*text) : std::string();
  };
  for (int i = 0; i < 500 && state() != "FROZEN"; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(state() == "FROZEN");
  REQUIRE_OK(rt.destroy(plan.id));
  auto st = process->wait();
  REQUIRE_OK(st);
  CHECK(st->signaled);
  CHECK_FALSE(path_exists(freezer));
  CHECK_FALSE(path_exists(rt.sandbox_dir(plan.id)));
}

TEST_CASE("killing an exec's tree kills its daemonized descendants, and the supervisor still reports") {
  auto& env = TestEnv::get();
  auto& rt = env.runtime();
  SandboxGuard g(rt, env.plan(env.unique_id("tree")));
  auto process = rt.exec(g.id(), daemonizing());
  REQUIRE_OK(process);
  const std::string name = process->cgroup_name();
  CHECK(name.starts_with("exec-"));
  wait_for_members(rt, g.id(), name, kDaemonizingProcesses);
  CHECK(sleeps_in(rt, g.id()) != "");
  REQUIRE_OK(process->kill_tree());
  auto st = process->wait();
  REQUIRE_OK(st);
  CHECK(st->signaled);
  CHECK(st->signal == SIGKILL);
  CHECK(st->usage.has_value());  // the supervisor lives outside the tree: it reaped the process and reported
  CHECK(exec_members(rt, g.id(), name).empty());
  CHECK(sleeps_in(rt, g.id()) == "");
  // Only init is left in the sandbox's cgroup.
  auto members = rt.cgroups().attach(g.id())->members();
  REQUIRE_OK(members);
  CHECK(*members == std::vector<pid_t>{g.sandbox().init_pid()});
  auto released = process->release_cgroup();
  REQUIRE_OK(released);
  CHECK(*released);
  REQUIRE_OK(rt.cgroups().attach(g.id())->children());
  CHECK(rt.cgroups().attach(g.id())->children()->empty());
}

TEST_CASE("kill_exec_tree kills an exec by its cgroup's name and refuses names that are not an exec's") {
  auto& env = TestEnv::get();
  auto& rt = env.runtime();
  SandboxGuard g(rt, env.plan(env.unique_id("killname")));
  auto process = rt.exec(g.id(), daemonizing());
  REQUIRE_OK(process);
  wait_for_members(rt, g.id(), process->cgroup_name(), kDaemonizingProcesses);
  REQUIRE_OK(rt.kill_exec_tree(g.id(), process->cgroup_name()));
  auto st = process->wait();
  REQUIRE_OK(st);
  CHECK(st->signal == SIGKILL);
  CHECK(sleeps_in(rt, g.id()) == "");
  CHECK(rt.cgroups().attach(g.id())->children()->empty());
  REQUIRE_OK(rt.kill_exec_tree(g.id(), process->cgroup_name()));  // gone already: success
  for (const char* bad : {"../x", "foo", "exec-a/b"}) {
    auto r = rt.kill_exec_tree(g.id(), bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().sys_errno() == EINVAL);
  }
}

TEST_CASE("a background process outlives a normal exec end; the sweep and destroy remove its cgroup") {
  auto& env = TestEnv::get();
  auto& rt = env.runtime();
  auto plan = env.plan(env.unique_id("bg"));
  std::string exec_dir;
  {
    SandboxGuard g(rt, plan);
    auto process = rt.exec(g.id(), shell("sleep 1000 </dev/null >/dev/null 2>&1 &"));
    REQUIRE_OK(process);
    auto st = process->wait();
    REQUIRE_OK(st);
    CHECK(st->code == 0);
    const std::string name = process->cgroup_name();
    exec_dir = rt.cgroups().attach(g.id())->attach_child(name)->paths().at(0);
    CHECK(exec_members(rt, g.id(), name).size() == 1);
    CHECK(sleeps_in(rt, g.id()) != "");
    auto released = process->release_cgroup();
    REQUIRE_OK(released);
    CHECK_FALSE(*released);  // busy: the background sleep runs there
    auto swept = rt.sweep_exec_cgroups(g.id(), 0ms);
    REQUIRE_OK(swept);
    CHECK(*swept == 0);
    CHECK(path_exists(exec_dir));

    // Once the background process ends, the sweep removes the cgroup.
    CHECK(exec_capture(rt, g.id(), shell("killall sleep")).status.code == 0);
    for (int i = 0; i < 500 && !exec_members(rt, g.id(), name).empty(); ++i) {
      std::this_thread::sleep_for(10ms);
    }
    swept = rt.sweep_exec_cgroups(g.id(), 0ms);
    REQUIRE_OK(swept);
    CHECK(*swept == 1);
    CHECK_FALSE(path_exists(exec_dir));

    // A busy one is removed by destroy, its process killed.
    auto again = rt.exec(g.id(), shell("sleep 1000 </dev/null >/dev/null 2>&1 &"));
    REQUIRE_OK(again);
    REQUIRE_OK(again->wait());
    exec_dir = rt.cgroups().attach(g.id())->attach_child(again->cgroup_name())->paths().at(0);
  }
  CHECK_FALSE(path_exists(exec_dir));
  for (const auto& p : rt.cgroups().attach(plan.id)->paths()) {
    CHECK_FALSE(path_exists(p));
  }
}

TEST_CASE("an exec reports its CPU time and peak RSS, also when its tree was killed") {
  auto& env = TestEnv::get();
  auto& rt = env.runtime();
  SandboxGuard g(rt, env.plan(env.unique_id("usage")));
  auto out = exec_capture(rt, g.id(), probe({"spin", "0.3"}));
  CHECK(out.status.code == 0);
  REQUIRE(out.status.usage.has_value());
  CHECK(out.status.usage->user_us > 50000);
  CHECK(out.status.usage->max_rss_bytes > 0);

  auto spinner = rt.exec(g.id(), probe({"spin", "100"}));
  REQUIRE_OK(spinner);
  std::this_thread::sleep_for(300ms);
  REQUIRE_OK(spinner->kill_tree());
  auto st = spinner->wait();
  REQUIRE_OK(st);
  CHECK(st->signal == SIGKILL);
  REQUIRE(st->usage.has_value());
  CHECK(st->usage->user_us > 0);
}

TEST_CASE("the main command's usage is reported by init") {
  auto& env = TestEnv::get();
  auto out = run_main(env.runtime(), env.plan(env.unique_id("mainusage")), probe({"spin", "0.2"}));
  CHECK(out.status.code == 0);
  REQUIRE(out.status.usage.has_value());
  CHECK(out.status.usage->user_us > 0);
}

TEST_CASE("execs install the filter stored at create, without compiling the profile again") {
  auto& env = TestEnv::get();
  std::string dir = make_temp_dir("sbx-profile");
  const std::string profile = dir + "/copy.json";
  auto text = read_file(TestEnv::default_profile(), 4 << 20);
  REQUIRE_OK(text);
  REQUIRE_OK(create_file(profile, *text));
  auto plan = env.plan(env.unique_id("bpf"));
  plan.security.seccomp_profile = profile;
  SandboxGuard g(env.runtime(), plan);
  const std::string stored = env.runtime().sandbox_dir(g.id()) + "/seccomp.bpf";
  struct stat st {};
  REQUIRE(::stat(stored.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // A fresh runtime, as a monitor process doing one exec has: the profile is gone, the filter is still installed.
  REQUIRE(::unlink(profile.c_str()) == 0);
  auto fresh = rt::Runtime::open(env.runtime().config());
  REQUIRE_OK(fresh);
  auto kv = exec_capture(**fresh, g.id(), probe({"syscalls"})).kv();
  CHECK(kv["keyctl"] == "EPERM");
  CHECK(kv["socket_vsock"] == "EPERM");
  CHECK(exec_capture(**fresh, g.id(), probe({"status"})).kv()["Seccomp"] == "2");
  CHECK((*fresh)->seccomp().compiled_count() == 0);

  // A run dir without a stored filter (an older runtime's) falls back to compiling the profile.
  REQUIRE_OK(create_file(profile, *text));
  REQUIRE(::unlink(stored.c_str()) == 0);
  CHECK(exec_capture(**fresh, g.id(), probe({"syscalls"})).kv()["keyctl"] == "EPERM");
  CHECK((*fresh)->seccomp().compiled_count() == 1);
  REQUIRE_OK(remove_tree(dir));
}

}  // TEST_SUITE
