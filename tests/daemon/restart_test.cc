// Sandboxes outlive sbxd: after SIGKILL (a crash) or SIGTERM, they keep running, and the next sbxd on the same
// dirs re-adopts them; one whose main command ended meanwhile is reported exited with its exit code.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>

#include "api/protocol.h"
#include "base/file.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

// Brings the test daemon back if a test fails while it is down.
struct DaemonBack {
  ~DaemonBack() {
    DaemonProcess& d = TestEnv::get().daemon();
    if (!d.running()) {
      std::string error = d.launch();
      if (!error.empty()) {
        std::fprintf(stderr, "daemon_tests: restart sbxd: %s\n", error.c_str());
      }
    }
  }
};

bool logs_contain(const std::string& id, const std::string& text) {
  return logs_of(id).find(text) != std::string::npos;
}

// /go, on the overlay root: the test writes it through /proc/<pid>/root as the host's root, which a sandbox's own
// tmpfs (/tmp, mounted in its user namespace, mapping only its ids) would refuse.
const std::string kWaitForGo = "while [ ! -e /go ]; do sleep 1; done";

// An exec whose tree has three processes, one of them in a session of its own; the foreground one stays.
const std::string kTree = "sleep 1000 & setsid sleep 1000 & sleep 1000";

int count_sleeps(const std::string& id) {
  std::string ps = sh(id, "ps -o args");
  int n = 0;
  for (size_t pos = 0; (pos = ps.find("sleep 1000", pos)) != std::string::npos; pos += 10) {
    ++n;
  }
  return n;
}

// Adds an exec record straight to the database of a stopped sbxd, started `age_days` ago.
void insert_exec_record(const std::string& db_path, const std::string& exec_id, const std::string& sandbox_id,
                        int64_t age_days) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  const int64_t started = api::now_ms() - age_days * 24 * 3600 * 1000;
  std::string sql = fmt::format(
      "INSERT INTO execs (exec_id, sandbox_id, owner_uid, tenant, argv, caller_uid, started_at, duration_ms, "
      "exit_code, signal, timed_out, oom_killed, cpu_user_us, cpu_system_us, peak_rss_bytes, error) "
      "VALUES ('{}', '{}', 0, '', '[\"true\"]', 0, {}, 1, 0, NULL, 0, 0, 0, 0, 0, '')", exec_id, sandbox_id, started);
  char* msg = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
  CHECK_MESSAGE(rc == SQLITE_OK, (msg != nullptr ? msg : ""));
  sqlite3_free(msg);
  sqlite3_close(db);
}

}  // namespace

TEST_SUITE("daemon.restart") {

TEST_CASE("records older than history_days (90 by default) are pruned when sbxd starts; newer ones stay") {
  DaemonProcess& d = TestEnv::get().daemon();
  DaemonBack back;
  d.stop();
  insert_exec_record(d.state_dir() + "/sbxd.db", "ancientexec1", "gonesandbox1", 100);
  insert_exec_record(d.state_dir() + "/sbxd.db", "recentexec01", "gonesandbox1", 10);
  d.start();
  json execs = call_ok("execs.list", {{"id", "gonesandbox1"}})["execs"];
  std::vector<std::string> ids;
  for (const auto& e : execs) {
    ids.push_back(e.value("exec_id", ""));
  }
  CHECK(ids == std::vector<std::string>{"recentexec01"});
  CHECK(d.log().find("pruned 1 exec records") != std::string::npos);
}

TEST_CASE("after SIGKILL of sbxd the sandboxes run on, and the next sbxd re-adopts them") {
  DaemonProcess& d = TestEnv::get().daemon();
  Sandbox idle;
  Sandbox talker(json{{"cmd", {"sh", "-c", "echo before; " + kWaitForGo + "; echo after"}}});
  Sandbox ender(json{{"cmd", {"sh", "-c", "echo waiting; " + kWaitForGo + "; exit 5"}}});
  DaemonBack back;  // destroyed before the sandboxes, so their guards find a daemon
  REQUIRE(wait_until([&] { return logs_contain(talker.id(), "before\n"); }));
  REQUIRE(wait_until([&] { return logs_contain(ender.id(), "waiting\n"); }));
  const Proc idle_init = proc(run_state(idle.id())["init_pid"].get<int>());
  const Proc talker_init = proc(run_state(talker.id())["init_pid"].get<int>());
  const Proc ender_init = proc(run_state(ender.id())["init_pid"].get<int>());
  const Proc ender_monitor = proc(ender.inspect()["monitor_pid"].get<int>());
  const Proc talker_monitor = proc(talker.inspect()["monitor_pid"].get<int>());

  d.kill9();
  CHECK(idle_init.alive());
  CHECK(talker_init.alive());
  CHECK(ender_init.alive());
  CHECK(talker_monitor.alive());
  // End one main command while no daemon runs, through the sandbox's root as the host sees it from the main
  // command (init itself is not dumpable).
  const std::string children = host_file(fmt::format("/proc/{}/task/{}/children", ender_init.pid, ender_init.pid));
  const int ender_main = std::atoi(children.c_str());
  REQUIRE(ender_main > 0);
  REQUIRE(create_file(fmt::format("/proc/{}/root/go", ender_main), "").ok());
  REQUIRE(wait_until([&] { return !ender_init.alive() && !ender_monitor.alive(); }));
  CHECK(idle_init.alive());
  CHECK(talker_init.alive());

  d.start();
  CHECK(idle.state() == "running");
  CHECK(talker.state() == "running");
  json e = ender.inspect();
  CHECK(e["state"] == "exited");
  CHECK(e["exit_code"] == 5);
  CHECK(e["exit_signal"].is_null());
  CHECK(run_state(idle.id())["init_pid"] == idle_init.pid);  // the same sandbox, not a new one

  CHECK(sh(idle.id(), "echo still here") == "still here\n");
  CHECK(sh(talker.id(), "echo me too") == "me too\n");
  CHECK(logs_of(talker.id()) == "before\n");
  CHECK(logs_of(ender.id()) == "waiting\n");
  json events = call_ok("events.list", {{"id", ender.id()}})["events"];
  REQUIRE(!events.empty());
  CHECK(events.back()["type"] == "exited");
  CHECK(events.back()["details"]["exit_code"] == 5);

  // The re-adopted sandboxes behave as any other: their end is noticed, stop works.
  call_ok("file.write", {{"id", talker.id()}, {"path", "/go"}, {"data_b64", ""}});
  REQUIRE(wait_until([&] { return talker.state() == "exited"; }));
  CHECK(talker.inspect()["exit_code"] == 0);
  CHECK(logs_of(talker.id()) == "before\nafter\n");
  json stopped = call_ok("sandbox.stop", {{"id", idle.id()}, {"timeout", 5}});
  CHECK(stopped["state"] == "exited");
  CHECK(!idle_init.alive());
  CHECK(call_ok("sandbox.start", {{"id", idle.id()}})["state"] == "running");
}

TEST_CASE("a daemon stopped with SIGTERM leaves the sandboxes running; the next one takes them over") {
  DaemonProcess& d = TestEnv::get().daemon();
  Sandbox s(json{{"cmd", {"sh", "-c", "echo hello; sleep 1000"}}});
  DaemonBack back;
  REQUIRE(wait_until([&] { return logs_contain(s.id(), "hello\n"); }));
  const Proc init = proc(run_state(s.id())["init_pid"].get<int>());
  d.stop();
  CHECK(!std::filesystem::exists(d.socket()));
  CHECK(init.alive());
  d.start();
  CHECK(s.state() == "running");
  CHECK(sh(s.id(), "echo ok") == "ok\n");
  CHECK(call_ok("sandbox.remove", {{"id", s.id()}, {"force", true}}) == json::object());
  CHECK(!init.alive());
}

TEST_CASE("a created sandbox stays created across a daemon crash, and starts afterwards") {
  DaemonProcess& d = TestEnv::get().daemon();
  Sandbox created(json{{"start", false}});
  DaemonBack back;
  d.kill9();
  d.start();
  CHECK(created.state() == "created");
  CHECK(call_ok("sandbox.start", {{"id", created.id()}})["state"] == "running");
}

TEST_CASE("execs running when sbxd dies are killed, tree and all; their sandbox runs on") {
  DaemonProcess& d = TestEnv::get().daemon();
  Sandbox s;
  DaemonBack back;
  {
    RawConnection raw(d.socket());
    raw.send(api::encode_request(1, "sandbox.exec", {{"id", s.id()}, {"argv", {"sh", "-c", kTree}}}) + "\n");
    REQUIRE(wait_until([&] { return count_sleeps(s.id()) == 3; }));
    d.kill9();
  }
  const Proc init = proc(run_state(s.id())["init_pid"].get<int>());
  CHECK(init.alive());
  d.start();
  CHECK(wait_until([&] { return count_sleeps(s.id()) == 0; }));
  CHECK(s.state() == "running");
}

TEST_CASE("API keys survive a restart of sbxd: a key verifies again, a revoked one still does not") {
  DaemonProcess& d = TestEnv::get().daemon();
  DaemonBack back;
  api::Client c = connect();
  c.set_tenant("restart-tenant");
  json kept = call_ok(c, "apikey.create", {{"name", "kept"}});
  json revoked = call_ok(c, "apikey.create", {{"name", "revoked"}});
  call_ok("apikey.revoke", {{"id", revoked["id"]}});
  d.stop();
  // Only the hash is on disk: the database file does not hold the key text.
  auto db = read_file(d.state_dir() + "/sbxd.db", 64 << 20);
  REQUIRE(db.ok());
  CHECK(db->find(kept["key"].get<std::string>().substr(4)) == std::string::npos);
  d.start();
  json verified = call_ok("apikey.verify", {{"key", kept["key"]}});
  CHECK(verified == json{{"id", kept["id"]}, {"tenant", "restart-tenant"}, {"name", "kept"}});
  api::CallError gone = call_err("apikey.verify", {{"key", revoked["key"]}});
  CHECK(gone.code == api::kPermissionDenied);
  CHECK(gone.message == "invalid API key");
  api::Client again = connect();
  again.set_tenant("restart-tenant");
  json keys = call_ok(again, "apikey.list")["keys"];
  REQUIRE(keys.size() == 1);
  CHECK(keys[0]["id"] == kept["id"]);
  call_ok("apikey.revoke", {{"id", kept["id"]}});
}

}  // TEST_SUITE
