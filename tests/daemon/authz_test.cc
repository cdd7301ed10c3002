// Authorization by SO_PEERCRED: clients run as other uids (forked, setuid) reach the socket through its group.
// A plain uid sees and touches only its own sandboxes and gets no host paths; a trusted uid acts for tenants.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

// In the forked child: a client of the test daemon, or null json with the error.
struct ChildClient {
  explicit ChildClient(const std::string& tenant = "") {
    auto c = api::Client::connect(socket);
    if (c.ok()) {
      timeval tv{kCallTimeoutS, 0};
      (void)::setsockopt(c->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      c->set_tenant(tenant);
      client.emplace(std::move(*c));
    } else {
      connect_error = c.error().message();
    }
  }
  // {"ok": result} or {"code": N, "message": "..."}.
  json call(const std::string& method, json params = json::object()) {
    if (!client) {
      return {{"code", -1}, {"message", connect_error}};
    }
    auto r = client->call(method, std::move(params));
    if (r.ok()) {
      return {{"ok", *r}};
    }
    return {{"code", client->last_error().code}, {"message", r.error().message()}};
  }

  static inline std::string socket;
  std::optional<api::Client> client;
  std::string connect_error;
};

json as_user(const std::function<json()>& body) { return run_as(kUserUid, kSocketGid, {kSocketGid}, body); }
json as_trusted(const std::function<json()>& body) {
  return run_as(kTrustedUid, kSocketGid, {kSocketGid}, body);
}

std::vector<std::string> ids_in(const json& list_result) {
  std::vector<std::string> ids;
  if (list_result.contains("ok")) {
    for (const auto& s : list_result["ok"]["sandboxes"]) {
      ids.push_back(s["id"].get<std::string>());
    }
  }
  return ids;
}

bool mentions(const json& records, const std::string& key, const std::string& id) {
  if (!records.contains("ok")) {
    return false;
  }
  for (const auto& r : records["ok"][key]) {
    if (r.value("id", "") == id) {
      return true;
    }
  }
  return false;
}

// Removes a sandbox by id as root at scope exit (whoever created it).
struct RemoveLater {
  ~RemoveLater() {
    if (!id.empty()) {
      auto c = api::Client::connect(TestEnv::get().daemon().socket());
      if (c.ok()) {
        (void)c->call("sandbox.remove", {{"id", id}, {"force", true}});
      }
    }
  }
  std::string id;
};

void init_child_socket() { ChildClient::socket = TestEnv::get().daemon().socket(); }

}  // namespace

TEST_SUITE("daemon.authz") {

TEST_CASE("a plain uid can neither see nor touch root's sandbox") {
  init_child_socket();
  Sandbox s(json{{"cmd", {"sh", "-c", "echo secret; sleep 1000"}}});
  sh(s.id(), "echo x > /tmp/f");
  json seen = as_user([&] {
    ChildClient c;
    return json{{"info", c.call("daemon.info")},
                {"list", c.call("sandbox.list")},
                {"list_all_states", c.call("sandbox.list", {{"state", "running"}})},
                {"inspect_id", c.call("sandbox.inspect", {{"id", s.id()}})},
                {"inspect_name", c.call("sandbox.inspect", {{"id", s.name()}})},
                {"exec", c.call("sandbox.exec", {{"id", s.id()}, {"argv", {"true"}}})},
                {"stop", c.call("sandbox.stop", {{"id", s.id()}, {"timeout", 1}})},
                {"kill", c.call("sandbox.kill", {{"id", s.id()}})},
                {"remove", c.call("sandbox.remove", {{"id", s.id()}, {"force", true}})},
                {"stats", c.call("sandbox.stats", {{"id", s.id()}})},
                {"logs", c.call("sandbox.logs", {{"id", s.id()}})},
                {"read", c.call("file.read", {{"id", s.id()}, {"path", "/tmp/f"}})},
                {"write", c.call("file.write", {{"id", s.id()}, {"path", "/tmp/g"}, {"data_b64", ""}})},
                {"subscribe", c.call("events.subscribe", {{"id", s.id()}})},
                {"events", c.call("events.list", {{"limit", 10000}})},
                {"events_id", c.call("events.list", {{"id", s.id()}})},
                {"execs", c.call("execs.list", {{"limit", 10000}})},
                {"execs_id", c.call("execs.list", {{"id", s.id()}})}};
  });
  CAPTURE(seen.dump());
  REQUIRE(seen["info"].contains("ok"));
  CHECK(seen["info"]["ok"]["caller"]["uid"] == kUserUid);
  CHECK(seen["info"]["ok"]["caller"]["role"] == "user");
  CHECK(ids_in(seen["list"]).empty());
  CHECK(ids_in(seen["list_all_states"]).empty());
  for (const char* op : {"inspect_id", "inspect_name", "exec", "stop", "kill", "remove", "stats", "logs", "read",
                         "write", "subscribe"}) {
    CHECK_MESSAGE(seen[op].value("code", 0) == api::kNotFound, op << ": " << seen[op].dump());
  }
  CHECK(!mentions(seen["events"], "events", s.id()));
  CHECK(!mentions(seen["events_id"], "events", s.id()));
  CHECK(!mentions(seen["execs"], "execs", s.id()));
  CHECK(!mentions(seen["execs_id"], "execs", s.id()));
  // Untouched.
  CHECK(s.state() == "running");
  CHECK(sh(s.id(), "cat /tmp/f; ls /tmp") == "x\nf\n");
}

TEST_CASE("daemon.info counts for a plain uid only the sandboxes it may see") {
  init_child_socket();
  Sandbox s;
  json info = as_user([&] { return ChildClient().call("daemon.info"); });
  REQUIRE(info.contains("ok"));
  CHECK_MESSAGE(info["ok"]["sandboxes"]["running"] == 0, info.dump());
  CHECK_MESSAGE(info["ok"]["sandboxes"]["total"] == 0, info.dump());
}

TEST_CASE("daemon.metrics counts every sandbox for root and trusted callers and refuses a plain uid") {
  init_child_socket();
  Sandbox running;
  Sandbox created(json{{"start", false}});
  json all = call_ok("daemon.metrics");
  CAPTURE(all.dump());
  // Other tests' sandboxes may exist; these two at least are counted, each in its state.
  CHECK(all["sandboxes"]["running"].get<int>() >= 1);
  CHECK(all["sandboxes"]["created"].get<int>() >= 1);
  CHECK(all["oom_kills"].is_number_unsigned());
  CHECK(all["execs_running"].is_number_unsigned());
  json t = as_trusted([&] {
    return json{{"self", ChildClient().call("daemon.metrics")}, {"tenant", ChildClient("acme").call("daemon.metrics")}};
  });
  CAPTURE(t.dump());
  REQUIRE(t["self"].contains("ok"));
  // A trusted caller sees root's sandboxes in the counts, though sandbox.list would not show them to it.
  CHECK(t["self"]["ok"]["sandboxes"]["running"] == all["sandboxes"]["running"]);
  CHECK(t["tenant"]["ok"]["sandboxes"]["created"] == all["sandboxes"]["created"]);
  json u = as_user([&] { return ChildClient().call("daemon.metrics"); });
  CHECK_MESSAGE(u.value("code", 0) == api::kPermissionDenied, u.dump());
}

TEST_CASE("a plain uid creates and uses its own sandbox from a rootfs under --rootfs-dir") {
  init_child_socket();
  RemoveLater cleanup;
  json mine = as_user([&] {
    ChildClient c;
    json created = c.call("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"name", "users-own"}});
    return json{{"created", created},
                {"exec", c.call("sandbox.exec", {{"id", "users-own"}, {"argv", {"echo", "hi"}}})},
                {"write", c.call("file.write", {{"id", "users-own"}, {"path", "/tmp/u"},
                                                {"data_b64", api::base64_encode("mine")}})},
                {"read", c.call("file.read", {{"id", "users-own"}, {"path", "/tmp/u"}})},
                {"list", c.call("sandbox.list")},
                {"execs", c.call("execs.list", {{"id", "users-own"}})}};
  });
  CAPTURE(mine.dump());
  REQUIRE(mine["created"].contains("ok"));
  const json& created = mine["created"]["ok"];
  cleanup.id = created["id"].get<std::string>();
  CHECK(created["owner_uid"] == kUserUid);
  CHECK(created["state"] == "running");
  REQUIRE(mine["exec"].contains("ok"));
  CHECK(mine["exec"]["ok"]["exit_code"] == 0);
  CHECK(mine["write"].contains("ok"));
  REQUIRE(mine["read"].contains("ok"));
  CHECK(*api::base64_decode(mine["read"]["ok"]["data_b64"].get<std::string>()) == "mine");
  CHECK(ids_in(mine["list"]) == std::vector<std::string>{cleanup.id});
  REQUIRE(mine["execs"].contains("ok"));
  CHECK(mine["execs"]["ok"]["execs"].size() == 1);
  // Root sees it, with its owner.
  CHECK(call_ok("sandbox.inspect", {{"id", cleanup.id}})["owner_uid"] == kUserUid);
  // The owner removes it.
  json removed = as_user([&] { return ChildClient().call("sandbox.remove", {{"id", "users-own"}, {"force", true}}); });
  CHECK_MESSAGE(removed.contains("ok"), removed.dump());
  CHECK(call_err("sandbox.inspect", {{"id", cleanup.id}}).code == api::kNotFound);
}

TEST_CASE("a plain uid gets no host mounts, no unconfined seccomp, no rootfs outside --rootfs-dir, no tenant") {
  init_child_socket();
  const std::string outside = TestEnv::get().outside_rootfs();
  json refused = as_user([&] {
    ChildClient c;
    const std::string rootfs = TestEnv::rootfs();
    json mount = {{"source", "/etc"}, {"destination", "/hostetc"}};
    return json{
        {"mounts", c.call("sandbox.create", {{"rootfs", rootfs}, {"mounts", json::array({mount})}})},
        {"unconfined", c.call("sandbox.create", {{"rootfs", rootfs}, {"seccomp", "unconfined"}})},
        {"outside", c.call("sandbox.create", {{"rootfs", outside}})},
        {"host_root", c.call("sandbox.create", {{"rootfs", "/"}})},
        {"dotdot", c.call("sandbox.create", {{"rootfs", rootfs + "/../../.."}})},
        {"tenant", c.call("sandbox.create", {{"rootfs", rootfs}, {"tenant", "acme"}})},
        {"tenant_list", c.call("sandbox.list", {{"tenant", "acme"}})},
        {"list", c.call("sandbox.list")}};
  });
  CAPTURE(refused.dump());
  for (const char* op : {"mounts", "unconfined", "outside", "host_root", "dotdot", "tenant", "tenant_list"}) {
    CHECK_MESSAGE(refused[op].value("code", 0) == api::kPermissionDenied, op << ": " << refused[op].dump());
  }
  CHECK(ids_in(refused["list"]).empty());
}

TEST_CASE("a trusted uid acts for a tenant and sees only that tenant's sandboxes") {
  init_child_socket();
  RemoveLater cleanup;
  Sandbox roots;
  json t = as_trusted([&] {
    ChildClient acme("acme");
    ChildClient other("other");
    ChildClient self;
    json created = acme.call("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"name", "acme-box"}});
    std::string id = created.contains("ok") ? created["ok"]["id"].get<std::string>() : "";
    return json{{"created", created},
                {"info", acme.call("daemon.info")},
                {"acme_list", acme.call("sandbox.list")},
                {"acme_exec", acme.call("sandbox.exec", {{"id", "acme-box"}, {"argv", {"echo", "t"}}})},
                {"other_list", other.call("sandbox.list")},
                {"other_inspect", other.call("sandbox.inspect", {{"id", id}})},
                {"other_remove", other.call("sandbox.remove", {{"id", id}, {"force", true}})},
                {"self_list", self.call("sandbox.list")},
                {"self_inspect", self.call("sandbox.inspect", {{"id", id}})},
                {"roots", acme.call("sandbox.inspect", {{"id", roots.id()}})},
                {"unconfined", acme.call("sandbox.create", {{"rootfs", TestEnv::rootfs()},
                                                             {"seccomp", "unconfined"}})},
                {"acme_events", acme.call("events.list", {{"limit", 10000}})},
                {"other_events", other.call("events.list", {{"limit", 10000}})}};
  });
  CAPTURE(t.dump());
  REQUIRE(t["created"].contains("ok"));
  const json& created = t["created"]["ok"];
  cleanup.id = created["id"].get<std::string>();
  CHECK(created["tenant"] == "acme");
  CHECK(created["owner_uid"] == kTrustedUid);
  CHECK(t["info"]["ok"]["caller"]["role"] == "trusted");
  CHECK(ids_in(t["acme_list"]) == std::vector<std::string>{cleanup.id});
  REQUIRE(t["acme_exec"].contains("ok"));
  CHECK(t["acme_exec"]["ok"]["exit_code"] == 0);
  CHECK(ids_in(t["other_list"]).empty());
  CHECK(t["other_inspect"].value("code", 0) == api::kNotFound);
  CHECK(t["other_remove"].value("code", 0) == api::kNotFound);
  CHECK(ids_in(t["self_list"]).empty());
  CHECK(t["self_inspect"].value("code", 0) == api::kNotFound);
  CHECK(t["roots"].value("code", 0) == api::kNotFound);
  CHECK(t["unconfined"].value("code", 0) == api::kPermissionDenied);
  CHECK(mentions(t["acme_events"], "events", cleanup.id));
  CHECK(!mentions(t["acme_events"], "events", roots.id()));
  CHECK(!mentions(t["other_events"], "events", cleanup.id));
  // Root sees the tenant's sandbox and filters by tenant.
  CHECK(call_ok("sandbox.inspect", {{"id", cleanup.id}})["tenant"] == "acme");
  json by_tenant = call_ok("sandbox.list", {{"tenant", "acme"}});
  REQUIRE(by_tenant["sandboxes"].size() == 1);
  CHECK(by_tenant["sandboxes"][0]["id"] == cleanup.id);
  json removed = as_trusted([&] {
    return ChildClient("acme").call("sandbox.remove", {{"id", "acme-box"}, {"force", true}});
  });
  CHECK_MESSAGE(removed.contains("ok"), removed.dump());
}

TEST_CASE("two owners may use the same name; each name resolves within its owner's scope") {
  init_child_socket();
  RemoveLater cleanup;
  Sandbox roots(json{{"name", "shared-name"}});
  json u = as_user([&] {
    ChildClient c;
    json created = c.call("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"name", "shared-name"}});
    return json{{"created", created}, {"inspect", c.call("sandbox.inspect", {{"id", "shared-name"}})}};
  });
  CAPTURE(u.dump());
  REQUIRE(u["created"].contains("ok"));
  cleanup.id = u["created"]["ok"]["id"].get<std::string>();
  REQUIRE(u["inspect"].contains("ok"));
  CHECK(u["inspect"]["ok"]["id"] == cleanup.id);
  // Root sees both: the name is ambiguous to it, the ids are not.
  CHECK(call_err("sandbox.inspect", {{"id", "shared-name"}}).code == api::kConflict);
  CHECK(call_ok("sandbox.inspect", {{"id", roots.id()}})["owner_uid"] == 0);
}

}  // TEST_SUITE
