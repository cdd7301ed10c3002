// What a sandbox gets with no options at all holds under abuse: sbxd's default pids and memory limits contain a fork
// bomb and a memory bomb; a read-only root through the API refuses writes where /tmp takes them.
#include <doctest/doctest.h>
#include <signal.h>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

// The probe (tests/probe/sbx_probe.cc) bound into a sandbox with sbxd's defaults; it runs as uid 1000 (it refuses
// to run with capabilities, which root holds).
json probe_sandbox_params(json extra = json::object()) {
  json mount = {{"source", SBX_PROBE}, {"destination", "/sbx-probe"}};
  json params = {{"mounts", json::array({mount})}};
  params.update(extra);
  return params;
}

ExecOutput probe_as_user(const std::string& id, std::vector<std::string> args) {
  args.insert(args.begin(), "/sbx-probe");
  return run_exec(id, {{"argv", args}, {"user", "1000:1000"}, {"stream", false}});
}

std::string stdout_of(const ExecOutput& o) {
  auto text = api::base64_decode(o.result.value("stdout_b64", ""));
  return text.ok() ? *text : std::string();
}

}  // namespace

TEST_SUITE("defaults") {

TEST_CASE("a fork bomb stops at the default pids limit and the sandbox answers on") {
  Sandbox s(probe_sandbox_params());
  CHECK(s.inspect()["limits"]["pids"] == 1024);
  ExecOutput o = probe_as_user(s.id(), {"forkbomb", "5000"});
  REQUIRE(o.ok);
  std::string out = stdout_of(o);
  INFO(out);
  CHECK(out.find("fork_error=EAGAIN") != std::string::npos);
  int forked = std::atoi(out.substr(out.find("forked=") + 7).c_str());
  CHECK(forked > 100);
  CHECK(forked < 1024);
  CHECK(sh(s.id(), "echo alive") == "alive\n");
}

TEST_CASE("a memory bomb is OOM-killed at the default memory limit and the sandbox lives on") {
  Sandbox s(probe_sandbox_params());
  CHECK(s.inspect()["limits"]["memory"] == 1ull << 30);
  ExecOutput o = probe_as_user(s.id(), {"alloc", "3072"});
  REQUIRE(o.ok);
  CHECK(o.result["oom_killed"] == true);
  CHECK(o.result["signal"] == SIGKILL);
  CHECK(sh(s.id(), "echo alive") == "alive\n");
}

TEST_CASE("read_only gives a root that refuses writes, while /tmp takes them") {
  Sandbox s(json{{"read_only", true}});
  CHECK(sh(s.id(), "touch /etc/x 2>&1; echo rc=$?").find("Read-only file system") != std::string::npos);
  CHECK(sh(s.id(), "echo ok > /tmp/x && cat /tmp/x") == "ok\n");
}

}  // TEST_SUITE
