// sandbox.run: a sandbox whose main command is the command, its output relayed as exec.output, removed (record,
// state, run dir, cgroup) before the response; timeouts, stdin, buffered output, refused requests that create
// nothing, and a client that leaves mid-run.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

json with_rootfs(json params) {
  params["rootfs"] = TestEnv::rootfs();
  return params;
}

bool listed(const std::string& id) {
  const json list = call_ok("sandbox.list");  // kept: the loop must not range over a temporary's member
  for (const auto& s : list["sandboxes"]) {
    if (s["id"] == id) {
      return true;
    }
  }
  return false;
}

// Nothing of sandbox `id` is left: no record, no run dir, no state dir, no cgroup.
void check_gone(const std::string& id) {
  CHECK_FALSE(listed(id));
  DaemonProcess& d = TestEnv::get().daemon();
  CHECK_FALSE(std::filesystem::exists(d.run_dir() + "/" + id));
  CHECK_FALSE(std::filesystem::exists(d.state_dir() + "/sandboxes/" + id));
  for (const auto& cg : leftover_cgroups(d.parent_name())) {
    CHECK_MESSAGE(cg.find(id) == std::string::npos, cg);
  }
}

// How many sandboxes have a state dir.
size_t state_dirs() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator(TestEnv::get().daemon().state_dir() + "/sandboxes")) {
    ++n;
  }
  return n;
}

std::vector<std::string> event_types_of(const std::string& id) {
  std::vector<std::string> types;
  const json events = call_ok("events.list", {{"id", id}});
  for (const auto& e : events["events"]) {
    types.push_back(e["type"].get<std::string>());
  }
  return types;
}

}  // namespace

TEST_SUITE("daemon.run") {

TEST_CASE("run streams stdout and stderr, returns the exit code, and removes the sandbox first") {
  ExecOutput o = run_once(with_rootfs({{"name", TestEnv::get().unique_name("run")},
                                       {"env", {"GREETING=hi"}},
                                       {"argv", {"sh", "-c", "echo \"$GREETING $(hostname)\"; echo oops >&2; exit 7"}}}));
  REQUIRE_MESSAGE(o.ok, o.error.message);
  const std::string id = o.result["id"].get<std::string>();
  CHECK(o.out.find("hi ") == 0);
  CHECK(o.err == "oops\n");
  CHECK(o.notifications >= 2);
  CHECK(o.result["exit_code"] == 7);
  CHECK(o.result["signal"].is_null());
  CHECK(o.result["timed_out"] == false);
  CHECK(o.result["removed"] == true);
  CHECK(o.result["stdout_bytes"] == o.out.size());
  CHECK(o.result["stderr_bytes"] == 5);
  check_gone(id);
  std::vector<std::string> types = event_types_of(id);
  std::sort(types.begin(), types.end());
  const std::vector<std::string> want = {"created", "destroyed", "exited", "started"};
  CHECK_MESSAGE(types == want, json(types).dump());
  CHECK(call_ok("execs.list", {{"id", id}})["execs"].empty());
}

TEST_CASE("run takes stdin, and with stream false returns the output in the result") {
  auto c = connect();
  ExecOutput o = run_once(c, with_rootfs({{"argv", {"cat"}},
                                          {"stdin_b64", api::base64_encode("line one\nline two\n")},
                                          {"stream", false}}));
  REQUIRE_MESSAGE(o.ok, o.error.message);
  CHECK(o.notifications == 0);
  auto out = api::base64_decode(o.result["stdout_b64"].get<std::string>());
  REQUIRE(out.ok());
  CHECK(*out == "line one\nline two\n");
  CHECK(o.result["exit_code"] == 0);
  check_gone(o.result["id"].get<std::string>());
}

TEST_CASE("run reports what the command used") {
  ExecOutput o = run_once(with_rootfs({{"argv", {"sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"}}}));
  REQUIRE_MESSAGE(o.ok, o.error.message);
  CHECK(o.result["cpu_user_us"].get<int64_t>() + o.result["cpu_system_us"].get<int64_t>() > 0);
  CHECK(o.result["peak_rss_bytes"].get<int64_t>() > 0);
}

TEST_CASE("a run past its timeout is killed, reported as timed out, and removed") {
  ExecOutput o = run_once(with_rootfs({{"argv", {"sh", "-c", "echo started; sleep 60"}}, {"timeout", 0.5}}));
  REQUIRE_MESSAGE(o.ok, o.error.message);
  CHECK(o.out == "started\n");
  CHECK(o.result["timed_out"] == true);
  CHECK(o.result["signal"] == 9);
  CHECK(o.result["exit_code"].is_null());
  CHECK(o.result["duration_ms"].get<int64_t>() < 30000);
  check_gone(o.result["id"].get<std::string>());
}

TEST_CASE("a missing program is exit status 127 with the reason on stderr") {
  ExecOutput o = run_once(with_rootfs({{"argv", {"/no/such/program"}}}));
  REQUIRE_MESSAGE(o.ok, o.error.message);
  CHECK(o.result["exit_code"] == 127);
  CHECK(o.err.find("/no/such/program") != std::string::npos);
  check_gone(o.result["id"].get<std::string>());
}

TEST_CASE("a run without a command, or with argv and cmd, is refused and creates nothing") {
  const size_t before = call_ok("sandbox.list")["sandboxes"].size();
  const size_t dirs_before = state_dirs();
  auto none = run_once(with_rootfs(json::object()));
  CHECK_FALSE(none.ok);
  CHECK(none.error.code == api::kInvalidParams);
  CHECK(none.error.data.value("field", "") == "argv");
  auto both = run_once(with_rootfs({{"argv", {"true"}}, {"cmd", {"true"}}}));
  CHECK_FALSE(both.ok);
  CHECK(both.error.code == api::kInvalidParams);
  auto empty = run_once(with_rootfs({{"argv", json::array()}}));
  CHECK_FALSE(empty.ok);
  auto start = run_once(with_rootfs({{"argv", {"true"}}, {"start", false}}));
  CHECK_FALSE(start.ok);  // not a parameter of sandbox.run
  CHECK(start.error.code == api::kInvalidParams);
  CHECK(call_ok("sandbox.list")["sandboxes"].size() == before);
  CHECK(state_dirs() == dirs_before);
}

TEST_CASE("a run that cannot start fails as create does and leaves nothing") {
  const size_t before = call_ok("sandbox.list")["sandboxes"].size();
  const size_t dirs_before = state_dirs();
  auto o = run_once({{"rootfs", TestEnv::get().outside_rootfs() + "/missing"}, {"argv", {"true"}}});
  CHECK_FALSE(o.ok);
  CHECK(call_ok("sandbox.list")["sandboxes"].size() == before);
  CHECK(state_dirs() == dirs_before);
}

TEST_CASE("a run's name is taken while it runs") {
  Sandbox holder(json{{"name", "run-name-taken"}});
  auto o = run_once(with_rootfs({{"name", "run-name-taken"}, {"argv", {"true"}}}));
  CHECK_FALSE(o.ok);
  CHECK(o.error.code == api::kConflict);
}

TEST_CASE("a client that leaves during a run has its sandbox killed and removed") {
  std::string id;
  {
    RawConnection raw(TestEnv::get().daemon().socket());
    json req = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "sandbox.run"},
                {"params", with_rootfs({{"argv", {"sh", "-c", "echo up; sleep 60"}}})}};
    raw.send(req.dump() + "\n");
    auto note = raw.read_json();
    REQUIRE(note.has_value());
    REQUIRE((*note)["method"] == "exec.output");
    id = (*note)["params"]["exec_id"].get<std::string>();
    CHECK(listed(id));
  }  // the connection closes here
  CHECK(wait_until([&] { return !listed(id); }, 60));
  check_gone(id);
}

}  // TEST_SUITE
