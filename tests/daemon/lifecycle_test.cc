// The sandbox lifecycle through the client: create, inspect, list, start, stop, restart, kill, remove, stats, the
// TTL, and the events and records the daemon keeps of it all.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <thread>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

std::set<std::string> listed(const json& params) {
  std::set<std::string> ids;
  json list = call_ok("sandbox.list", params);
  for (const auto& s : list["sandboxes"]) {
    ids.insert(s["id"].get<std::string>());
  }
  return ids;
}

bool logs_contain(const std::string& id, const std::string& text) {
  return logs_of(id).find(text) != std::string::npos;
}

// Waits for the next event about sandbox `id` on a subscribed client; null when none came in time.
json next_event(api::Client& sub, const std::string& id) {
  for (;;) {
    auto n = sub.next_notification();
    if (!n.ok()) {
      return json();
    }
    if (n->method == "event" && n->params.value("id", "") == id) {
      return n->params;
    }
  }
}

std::vector<std::string> event_types(const json& events) {
  std::vector<std::string> types;
  for (const auto& e : events) {
    types.push_back(e["type"].get<std::string>());
  }
  return types;
}

double seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

TEST_SUITE("daemon.lifecycle") {

TEST_CASE("a sandbox created without start is listed as created and starts on request") {
  Sandbox s(json{{"start", false}, {"labels", {{"suite", "lifecycle"}, {"case", "nostart"}}}});
  const json& c = s.created();
  CHECK(c["state"] == "created");
  CHECK(c["name"] == s.name());
  CHECK(c["id"].get<std::string>().size() == 12);
  CHECK(c["owner_uid"] == 0);
  CHECK(c["tenant"] == "");
  CHECK(c["labels"] == json{{"suite", "lifecycle"}, {"case", "nostart"}});
  CHECK(c["rootfs"] == TestEnv::rootfs());
  CHECK(c["created_at"].is_string());
  CHECK(c["started_at"].is_null());
  CHECK(c["exit_code"].is_null());
  CHECK(listed({{"state", "created"}}).count(s.id()) == 1);
  CHECK(listed({{"state", "running"}}).count(s.id()) == 0);
  CHECK(listed({{"label", "case=nostart"}}).count(s.id()) == 1);
  CHECK(listed({{"label", "case"}}).count(s.id()) == 1);
  CHECK(listed({{"label", "case=other"}}).count(s.id()) == 0);
  CHECK(listed({{"label", "nosuchlabel"}}).count(s.id()) == 0);
  CHECK(listed({{"owner", 0}}).count(s.id()) == 1);
  CHECK(listed({{"owner", 1234}}).count(s.id()) == 0);
  // Not running yet: what needs a running sandbox says so.
  CHECK(call_err("sandbox.exec", {{"id", s.id()}, {"argv", {"true"}}}).code == api::kInvalidState);
  CHECK(call_err("sandbox.stats", {{"id", s.id()}}).code == api::kInvalidState);

  json started = call_ok("sandbox.start", {{"id", s.name()}});
  CHECK(started["state"] == "running");
  CHECK(started["started_at"].is_string());
  CHECK(listed({{"state", "running"}}).count(s.id()) == 1);
  CHECK(listed({{"state", "created"}}).count(s.id()) == 0);
  CHECK(sh(s.id(), "echo up") == "up\n");
  CHECK(call_err("sandbox.start", {{"id", s.id()}}).code == api::kInvalidState);
}

TEST_CASE("list filters by several labels given as an array, all of which must match") {
  Sandbox both(json{{"labels", {{"app", "web"}, {"tier", "front"}}}});
  Sandbox one(json{{"labels", {{"app", "web"}, {"tier", "back"}}}});
  auto c = connect();
  auto r = c.call("sandbox.list", {{"label", {"app=web", "tier=front"}}});
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  std::set<std::string> ids;
  for (const auto& s : (*r)["sandboxes"]) {
    ids.insert(s["id"].get<std::string>());
  }
  CHECK(ids == std::set<std::string>{both.id()});
}

TEST_CASE("a sandbox that never ran is removed without force") {
  Sandbox s(json{{"start", false}});
  CHECK(call_ok("sandbox.remove", {{"id", s.id()}}) == json::object());
  CHECK(call_err("sandbox.inspect", {{"id", s.id()}}).code == api::kNotFound);
}

TEST_CASE("inspect finds a sandbox by id and by name; an unknown one is not found") {
  Sandbox s(json{{"cmd", {"sleep", "1000"}}, {"env", {"A=b"}}, {"hostname", "box-1"}});
  json by_id = call_ok("sandbox.inspect", {{"id", s.id()}});
  json by_name = call_ok("sandbox.inspect", {{"id", s.name()}});
  CHECK(by_id["id"] == s.id());
  CHECK(by_name["id"] == s.id());
  CHECK(by_id["state"] == "running");
  CHECK(by_id["cmd"] == json{"sleep", "1000"});
  CHECK(by_id["env"] == json{"A=b"});
  CHECK(by_id["hostname"] == "box-1");
  CHECK(call_err("sandbox.inspect", {{"id", "nosuchsandbox"}}).code == api::kNotFound);
  CHECK(call_err("sandbox.inspect", {{"id", "000000000000"}}).code == api::kNotFound);
}

TEST_CASE("the sandbox object carries every field the protocol documents") {
  Sandbox s;
  json obj = s.inspect();
  for (const char* key : {"id", "name", "state", "owner_uid", "tenant", "labels", "rootfs", "image", "limits", "ttl",
                          "expires_at", "created_at", "started_at", "finished_at", "exit_code", "exit_signal",
                          "oom_killed", "init_pid", "cmd", "env", "hostname"}) {
    CHECK_MESSAGE(obj.contains(key), "the sandbox object has no '" << std::string(key) << "': " << obj.dump());
  }
  if (obj.contains("init_pid")) {
    CHECK(obj["init_pid"] == run_state(s.id())["init_pid"]);
  }
}

TEST_CASE("the hostname defaults to the sandbox's name, inside as in inspect") {
  Sandbox s;
  CHECK(s.inspect()["hostname"] == s.name());
  CHECK(sh(s.id(), "hostname") == s.name() + "\n");
}

TEST_CASE("a create that cannot succeed creates nothing") {
  Sandbox s;
  CHECK(call_err("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"name", s.name()}}).code == api::kConflict);
  CHECK(call_err("sandbox.create", {{"rootfs", "/nonexistent-rootfs"}}).code == api::kInvalidParams);
  CHECK(call_err("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"name", "Bad Name"}}).code ==
        api::kInvalidParams);
  CHECK(call_err("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"seccomp", "nosuchprofile"}}).code ==
        api::kInvalidParams);
  CHECK(call_err("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"cmd", json::array()}}).code ==
        api::kInvalidParams);
  // A main command that cannot run: either the create fails and leaves nothing, or the sandbox ends at once
  // with exit code 127 (as a shell reports a command it cannot find).
  auto before = listed(json::object());
  auto c = connect();
  auto r = c.call("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"cmd", {"/no/such/program"}}});
  if (!r.ok()) {
    CHECK(listed(json::object()) == before);
  } else {
    std::string id = (*r)["id"].get<std::string>();
    CHECK(wait_until([&] { return call_ok("sandbox.inspect", {{"id", id}})["state"] == "exited"; }));
    CHECK(call_ok("sandbox.inspect", {{"id", id}})["exit_code"] == 127);
    call_ok("sandbox.remove", {{"id", id}, {"force", true}});
  }
}

TEST_CASE("stop sends SIGTERM; a main command that ignores it is killed after the grace period") {
  Sandbox stubborn(json{{"cmd", {"sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"}}});
  Sandbox polite(json{{"cmd", {"sleep", "1000"}}});
  REQUIRE(wait_until([&] { return logs_contain(stubborn.id(), "ready"); }));

  auto t0 = std::chrono::steady_clock::now();
  json stopped = call_ok("sandbox.stop", {{"id", stubborn.id()}, {"timeout", 2}});
  CHECK(seconds(t0) >= 1.9);  // not before the grace period is over
  CHECK(stopped["state"] == "exited");
  CHECK(stopped["exit_signal"] == SIGKILL);
  CHECK(stopped["finished_at"].is_string());

  // During the grace period the sandbox shows as stopping, and takes no execs.
  Sandbox slow(json{{"cmd", {"sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"}}});
  REQUIRE(wait_until([&] { return logs_contain(slow.id(), "ready"); }));
  const std::string socket = TestEnv::get().daemon().socket();
  bool stop_ok = false;
  std::thread stopper([&] {
    auto c = api::Client::connect(socket);
    stop_ok = c.ok() && c->call("sandbox.stop", {{"id", slow.id()}, {"timeout", 10}}).ok();
  });
  bool seen_stopping = wait_until([&] { return slow.state() == "stopping"; }, 20, 0.05);
  CHECK(seen_stopping);
  if (seen_stopping) {
    CHECK(call_err("sandbox.exec", {{"id", slow.id()}, {"argv", {"true"}}}).code == api::kInvalidState);
  }
  stopper.join();
  CHECK(stop_ok);
  CHECK(slow.state() == "exited");

  json gentle = call_ok("sandbox.stop", {{"id", polite.id()}, {"timeout", 60}});
  CHECK(gentle["state"] == "exited");
  CHECK(gentle["exit_signal"] == SIGTERM);  // SIGTERM was enough: no SIGKILL came
  CHECK(gentle["exit_code"].is_null());
  // Stopping a stopped sandbox is harmless.
  CHECK(call_ok("sandbox.stop", {{"id", polite.id()}})["state"] == "exited");
}

TEST_CASE("restart brings a running sandbox back with a new init, and starts an exited one") {
  Sandbox s(json{{"cmd", {"sleep", "1000"}}});
  const Proc first = proc(run_state(s.id())["init_pid"].get<int>());
  json r = call_ok("sandbox.restart", {{"id", s.id()}, {"timeout", 5}});
  CHECK(r["state"] == "running");
  const Proc second = proc(run_state(s.id())["init_pid"].get<int>());
  CHECK(second.alive());
  CHECK(!first.alive());
  CHECK(sh(s.id(), "echo again") == "again\n");

  call_ok("sandbox.stop", {{"id", s.id()}, {"timeout", 5}});
  CHECK(s.state() == "exited");
  CHECK(call_ok("sandbox.restart", {{"id", s.id()}})["state"] == "running");
  CHECK(call_err("sandbox.start", {{"id", s.id()}}).code == api::kInvalidState);
}

TEST_CASE("kill sends a signal to the main command") {
  Sandbox trapper(json{{"cmd", {"sh", "-c", "trap 'exit 42' USR1; echo ready; while true; do sleep 1; done"}}});
  Sandbox idle;
  REQUIRE(wait_until([&] { return logs_contain(trapper.id(), "ready"); }));
  CHECK(call_ok("sandbox.kill", {{"id", trapper.id()}, {"signal", "USR1"}}) == json::object());
  REQUIRE(wait_until([&] { return trapper.state() == "exited"; }));
  json t = trapper.inspect();
  CHECK(t["exit_code"] == 42);
  CHECK(t["exit_signal"].is_null());

  CHECK(call_err("sandbox.kill", {{"id", idle.id()}, {"signal", "NOSUCHSIGNAL"}}).code == api::kInvalidParams);
  CHECK(call_ok("sandbox.kill", {{"id", idle.id()}}) == json::object());  // default: KILL
  REQUIRE(wait_until([&] { return idle.state() == "exited"; }));
  CHECK(idle.inspect()["exit_signal"] == SIGKILL);
  CHECK(call_err("sandbox.kill", {{"id", idle.id()}, {"signal", 15}}).code == api::kInvalidState);
}

TEST_CASE("a main command that outgrows the memory limit ends the sandbox OOM-killed, with an oom event") {
  Sandbox s(json{{"limits", {{"memory", "32M"}}},
                 {"cmd", {"sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a)"}}});
  REQUIRE(wait_until([&] { return s.state() == "exited"; }));
  json obj = s.inspect();
  CHECK(obj["oom_killed"] == true);
  CHECK(obj["exit_signal"] == SIGKILL);
  json events = call_ok("events.list", {{"id", s.id()}})["events"];
  CHECK(event_types(events) == std::vector<std::string>{"created", "started", "oom", "exited"});
}

TEST_CASE("daemon.info and daemon.health describe the daemon and the caller") {
  json info = call_ok("daemon.info");
  CHECK(info["api_version"] == 1);
  CHECK(info["version"].is_string());
  CHECK((info["cgroup_mode"] == "v1" || info["cgroup_mode"] == "v2"));
  CHECK(info["pid"] == TestEnv::get().daemon().pid());
  CHECK(info["uptime_s"].get<int64_t>() >= 0);
  CHECK(info["caller"]["uid"] == 0);
  CHECK(info["caller"]["role"] == "root");
  for (const char* key : {"total", "created", "running", "exited"}) {
    CHECK(info["sandboxes"].contains(key));
  }
  json health = call_ok("daemon.health");
  CHECK_MESSAGE(health["status"] == "ok", health.dump());
  for (const char* key : {"database", "run_dir", "cgroups", "monitor"}) {
    CHECK(health["checks"][key] == "ok");
  }
}

TEST_CASE("a spare sandbox monitor waits; the next create takes it and another is started after it") {
  DaemonProcess& d = TestEnv::get().daemon();
  std::vector<pid_t> spares;
  REQUIRE_MESSAGE(wait_until([&] { return (spares = spare_monitors(d.pid())).size() == 1; }, 30),
                  "spares: " << json(spare_monitors(d.pid())).dump());
  const pid_t spare = spares[0];
  Sandbox s;
  CHECK(s.inspect()["monitor_pid"] == spare);
  CHECK(sh(s.id(), "echo in-spare") == "in-spare\n");
  CHECK_MESSAGE(wait_until([&] {
                  auto now = spare_monitors(d.pid());
                  return now.size() == 1 && now[0] != spare;
                }, 30),
                "spares: " << json(spare_monitors(d.pid())).dump());
}

TEST_CASE("a spare monitor that died does not fail the next create") {
  DaemonProcess& d = TestEnv::get().daemon();
  std::vector<pid_t> spares;
  REQUIRE(wait_until([&] { return (spares = spare_monitors(d.pid())).size() == 1; }, 30));
  REQUIRE(::kill(spares[0], SIGKILL) == 0);  // a child of the test's own sbxd
  // Reaped by sbxd, and not replaced until a create needs it.
  CHECK(wait_until([&] { return children_of(d.pid()).count(spares[0]) == 0; }, 30));
  CHECK(spare_monitors(d.pid()).empty());
  Sandbox s;
  CHECK(s.state() == "running");
  CHECK(s.inspect()["monitor_pid"] != spares[0]);
  CHECK(wait_until([&] { return spare_monitors(d.pid()).size() == 1; }, 30));
  CHECK(d.log().find("spare sbx-monitor " + std::to_string(spares[0]) + " exited before it was used") !=
        std::string::npos);
}

TEST_CASE("an enormous ttl does not remove the sandbox at once (or is refused as invalid params)") {
  auto c = connect();
  auto r = c.call("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"ttl", INT64_MAX}});
  if (!r.ok()) {
    CHECK_MESSAGE(c.last_error().code == api::kInvalidParams, c.last_error().message);
    return;
  }
  const std::string id = (*r)["id"].get<std::string>();
  // The TTL timer runs every second: a few of its turns must leave the sandbox alone.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto again = c.call("sandbox.inspect", {{"id", id}});
  CHECK_MESSAGE(again.ok(), "a sandbox with ttl " << INT64_MAX << " was removed: " << again.error().message());
  if (again.ok()) {
    CHECK((*again)["state"] == "running");
    call_ok("sandbox.remove", {{"id", id}, {"force", true}});
  }
}

TEST_CASE("a sandbox whose main command ends is exited, with its exit code") {
  Sandbox s(json{{"cmd", {"sh", "-c", "echo bye; exit 3"}}});
  REQUIRE(wait_until([&] { return s.state() == "exited"; }));
  json obj = s.inspect();
  CHECK(obj["exit_code"] == 3);
  CHECK(obj["exit_signal"].is_null());
  CHECK(obj["oom_killed"] == false);
  CHECK(logs_of(s.id()) == "bye\n");
}

TEST_CASE("remove is refused while the sandbox runs; with force it stops and removes it, leaving nothing") {
  Sandbox s(json{{"cmd", {"sleep", "1000"}}});
  const Proc init = proc(run_state(s.id())["init_pid"].get<int>());
  auto err = call_err("sandbox.remove", {{"id", s.id()}});
  CHECK(err.code == api::kInvalidState);
  CHECK(s.state() == "running");
  CHECK(call_ok("sandbox.remove", {{"id", s.id()}, {"force", true}}) == json::object());
  CHECK(call_err("sandbox.inspect", {{"id", s.id()}}).code == api::kNotFound);
  CHECK(listed(json::object()).count(s.id()) == 0);
  CHECK(!init.alive());
  const auto& d = TestEnv::get().daemon();
  CHECK(!std::filesystem::exists(d.run_dir() + "/" + s.id()));
  CHECK(!std::filesystem::exists(d.state_dir() + "/sandboxes/" + s.id()));
  for (const auto& left : leftover_cgroups(d.parent_name())) {
    CHECK_MESSAGE(left.find(s.id()) == std::string::npos, left);
  }
  CHECK(call_err("sandbox.remove", {{"id", s.id()}}).code == api::kNotFound);
}

TEST_CASE("an exited sandbox is removed without force") {
  Sandbox s(json{{"cmd", {"true"}}});
  REQUIRE(wait_until([&] { return s.state() == "exited"; }));
  CHECK(call_ok("sandbox.remove", {{"id", s.id()}}) == json::object());
  CHECK(call_err("sandbox.inspect", {{"id", s.id()}}).code == api::kNotFound);
}

TEST_CASE("stats of a running sandbox come from its cgroup") {
  Sandbox s(json{{"limits", {{"memory", "128M"}, {"pids", 64}}}});
  sh(s.id(), "head -c 4000000 /dev/zero > /tmp/fill; echo");
  json st = call_ok("sandbox.stats", {{"id", s.id()}});
  for (const char* key : {"cpu_usage_usec", "memory_current", "memory_peak", "oom_kills", "pids_current",
                          "cpu_nr_throttled", "cpu_throttled_usec"}) {
    CHECK_MESSAGE(st.contains(key), "stats have no " << key << ": " << st.dump());
  }
  CHECK(st["pids_current"].get<uint64_t>() >= 1);
  CHECK(st["memory_current"].get<uint64_t>() > 0);
  CHECK(st["oom_kills"] == 0);
  CHECK(s.inspect()["limits"]["memory"] == 128ull << 20);
  CHECK(s.inspect()["limits"]["pids"] == 64);
}

TEST_CASE("events.subscribe sees created, started, exited and destroyed; events.list and execs.list keep them") {
  api::Client all = connect();
  CHECK(call_ok(all, "events.subscribe") == json::object());
  api::Client only_destroyed = connect();
  call_ok(only_destroyed, "events.subscribe", {{"types", {"destroyed"}}});
  CHECK(call_err("events.subscribe", {{"types", {"nosuchtype"}}}).code == api::kInvalidParams);

  std::string id;
  {
    Sandbox s;
    id = s.id();
    CHECK(sh(id, "echo hi") == "hi\n");
    call_ok("sandbox.stop", {{"id", id}, {"timeout", 5}});
  }  // removed here

  std::vector<std::string> seen;
  for (int i = 0; i < 4; ++i) {
    json ev = next_event(all, id);
    REQUIRE_MESSAGE(ev.is_object(), "only these events came: " << json(seen).dump());
    seen.push_back(ev["type"].get<std::string>());
    CHECK(ev["seq"].get<int64_t>() > 0);
    CHECK(ev["time"].is_string());
    CHECK(ev["name"].is_string());
  }
  CHECK(seen == std::vector<std::string>{"created", "started", "exited", "destroyed"});
  json d = next_event(only_destroyed, id);
  REQUIRE(d.is_object());
  CHECK(d["type"] == "destroyed");

  json events = call_ok("events.list", {{"id", id}})["events"];
  CHECK(event_types(events) == std::vector<std::string>{"created", "started", "exited", "destroyed"});
  CHECK(events[2]["details"].contains("exit_code"));
  CHECK(call_ok("events.list", {{"id", id}, {"limit", 1}})["events"].size() == 1);
  CHECK(event_types(call_ok("events.list", {{"id", id}, {"limit", 1}})["events"]) ==
        std::vector<std::string>{"destroyed"});

  json execs = call_ok("execs.list", {{"id", id}})["execs"];
  REQUIRE(execs.size() == 1);
  CHECK(execs[0]["id"] == id);
  CHECK(execs[0]["argv"] == json{"sh", "-c", "echo hi"});
  CHECK(execs[0]["exit_code"] == 0);
  CHECK(execs[0]["caller_uid"] == 0);
  CHECK(execs[0]["exec_id"].is_string());
  CHECK(execs[0]["started_at"].is_string());
}

TEST_CASE("a subscription for one sandbox sees only its events") {
  Sandbox a;
  Sandbox b;
  api::Client sub = connect();
  call_ok(sub, "events.subscribe", {{"id", a.name()}});
  call_ok("sandbox.stop", {{"id", b.id()}, {"timeout", 5}});
  call_ok("sandbox.stop", {{"id", a.id()}, {"timeout", 5}});
  auto n = sub.next_notification();
  REQUIRE(n.ok());
  CHECK(n->params["id"] == a.id());
  CHECK(n->params["type"] == "exited");
  CHECK(call_err("events.subscribe", {{"id", "nosuchsandbox"}}).code == api::kNotFound);
}

TEST_CASE("a sandbox whose TTL has passed is stopped and removed") {
  api::Client sub = connect();
  call_ok(sub, "events.subscribe", {{"types", {"destroyed"}}});
  std::string id;
  {
    Sandbox s(json{{"ttl", 2}, {"cmd", {"sleep", "1000"}}});
    id = s.id();
    CHECK(s.created()["ttl"] == 2);
    CHECK(s.created()["expires_at"].is_string());
    json ev = next_event(sub, id);
    REQUIRE_MESSAGE(ev.is_object(), "no destroyed event for the sandbox with a TTL");
    CHECK(ev["type"] == "destroyed");
    CHECK(ev["details"]["reason"] == "ttl");
    CHECK(call_err("sandbox.inspect", {{"id", id}}).code == api::kNotFound);
  }
  CHECK(!std::filesystem::exists(TestEnv::get().daemon().run_dir() + "/" + id));
}

}  // TEST_SUITE
