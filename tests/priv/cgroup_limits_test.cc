// Resource limits enforced for real: memory (OOM kill reported), pids (fork bomb stopped), CPU (throttling).
// These need resource controllers: the v1 hierarchies on a hybrid host, or a pure cgroup v2 host (the cg2vm VM).
#include <doctest/doctest.h>
#include <signal.h>

#include "tests/priv/fixture.h"

using namespace sbx;
using namespace sbx::test;

TEST_SUITE("limits") {

TEST_CASE("the memory limit OOM-kills the sandbox's process and the kill is counted") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("oom"));
  plan.limits.memory_max = 32ull << 20;
  plan.limits.memory_swap_max = 0;
  if (!env.runtime().cgroups().check_supported(plan.limits).ok()) {
    plan.limits.memory_swap_max.reset();  // a host without swap accounting: no swap to limit
  }
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(), probe({"alloc", "256"}));
  CHECK(out.status.signaled);
  CHECK(out.status.signal == SIGKILL);
  auto st = env.runtime().stats(g.id());
  REQUIRE_OK(st);
  CHECK(st->oom_kills >= 1);
  auto kills = env.runtime().oom_kills(g.id());  // the one-file read execs use, before and after each
  REQUIRE_OK(kills);
  CHECK(*kills == st->oom_kills);
  CHECK(st->memory_peak <= (32ull << 20) + (1 << 20));
  // The sandbox survives its process's OOM kill.
  CHECK(exec_capture(env.runtime(), g.id(), shell("true")).status.code == 0);
}

TEST_CASE("the pids limit stops a fork bomb") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("pids"));
  plan.limits.pids_max = 16;
  SandboxGuard g(env.runtime(), plan);
  auto kv = exec_capture(env.runtime(), g.id(), probe({"forkbomb", "200"})).kv();
  CHECK(std::stoi(kv["forked"]) < 16);
  CHECK(kv["fork_error"] == "EAGAIN");
  auto st = env.runtime().stats(g.id());
  REQUIRE_OK(st);
  CHECK(st->pids_current >= 1);
}

TEST_CASE("the CPU limit throttles a busy process") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("cpu"));
  plan.limits.vcpus = 0.2;
  plan.limits.cpu_weight = 50;
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(), probe({"spin", "1"}));
  CHECK(out.status.code == 0);
  auto st = env.runtime().stats(g.id());
  REQUIRE_OK(st);
  CHECK(st->cpu_nr_throttled > 0);
  CHECK(st->cpu_throttled_usec > 0);
  // 0.2 of a CPU for about a second of wall time: far less than a second of CPU.
  CHECK(st->cpu_usage_usec < 600000);
  CHECK(st->cpu_usage_usec > 50000);
}

}  // TEST_SUITE
