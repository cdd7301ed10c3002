// API keys through the real daemon: root creates, lists and revokes them for a tenant; root and trusted uids verify
// them; a plain uid does none of it. The key text is returned once and appears nowhere afterwards.
#include <doctest/doctest.h>
#include <sys/socket.h>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

// Calls made in a child as another uid: {"ok": result} or {"code": N, "message": "..."} for each.
json calls_as(uid_t uid, const std::string& tenant, const std::vector<std::pair<std::string, json>>& calls) {
  const std::string socket = TestEnv::get().daemon().socket();
  return run_as(uid, kSocketGid, {kSocketGid}, [&] {
    auto c = api::Client::connect(socket);
    if (!c.ok()) {
      return json{{"connect_error", c.error().message()}};
    }
    timeval tv{kCallTimeoutS, 0};
    (void)::setsockopt(c->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c->set_tenant(tenant);
    json out = json::array();
    for (const auto& [method, params] : calls) {
      auto r = c->call(method, params);
      out.push_back(r.ok() ? json{{"ok", *r}}
                           : json{{"code", c->last_error().code}, {"message", r.error().message()}});
    }
    return out;
  });
}

api::Client tenant_client(const std::string& tenant) {
  api::Client c = connect();
  c.set_tenant(tenant);
  return c;
}

// apikey.create as root for `tenant`.
json create_key(const std::string& tenant, const std::string& name = "") {
  api::Client c = tenant_client(tenant);
  return call_ok(c, "apikey.create", name.empty() ? json::object() : json{{"name", name}});
}

const json* listed(const json& list, const std::string& id) {
  for (const auto& k : list["keys"]) {
    if (k.value("id", "") == id) {
      return &k;
    }
  }
  return nullptr;
}

void check_invalid(const api::CallError& e) {
  CHECK(e.code == api::kPermissionDenied);
  CHECK(e.message == "invalid API key");
}

}  // namespace

TEST_SUITE("daemon.apikey") {

TEST_CASE("a created key is sbx_ and 43 base64url characters, shown once, and verifies as its tenant") {
  json created = create_key("acme", "ci runner");
  const std::string key = created["key"].get<std::string>();
  const std::string id = created["id"].get<std::string>();
  CHECK(key.size() == 47);
  CHECK(key.starts_with("sbx_"));
  CHECK(key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 4) ==
        std::string::npos);
  CHECK(id.size() == 12);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(created["tenant"] == "acme");
  CHECK(created["name"] == "ci runner");
  CHECK(created["created"].get<std::string>().ends_with("Z"));
  CHECK(created.size() == 5);

  json verified = call_ok("apikey.verify", {{"key", key}});
  CHECK(verified == json{{"id", id}, {"tenant", "acme"}, {"name", "ci runner"}});

  // Another key of the same tenant is another key.
  json second = create_key("acme");
  CHECK(second["id"] != id);
  CHECK(second["key"] != key);
  CHECK(second["name"] == "");
  CHECK(call_ok("apikey.verify", {{"key", second["key"]}})["id"] == second["id"]);
  CHECK(call_ok("apikey.revoke", {{"id", id}})["revoked"] == true);
  CHECK(call_ok("apikey.revoke", {{"id", second["id"]}})["revoked"] == true);
}

TEST_CASE("apikey.list shows ids, tenants, names and times, never a key or a hash; a tenant sees only its own") {
  json a = create_key("list-a", "first");
  json b = create_key("list-b");
  const std::string a_key = a["key"].get<std::string>();
  call_ok("apikey.verify", {{"key", a_key}});

  json all = call_ok("apikey.list");
  CAPTURE(all.dump());
  const json* la = listed(all, a["id"]);
  REQUIRE(la != nullptr);
  REQUIRE(listed(all, b["id"]) != nullptr);
  CHECK(*la == json{{"id", a["id"]}, {"tenant", "list-a"}, {"name", "first"}, {"created", a["created"]},
                    {"last_used", (*la)["last_used"]}});
  CHECK((*la)["last_used"].is_string());  // just verified
  CHECK((*listed(all, b["id"]))["last_used"].is_null());
  const std::string dump = all.dump();
  CHECK(dump.find(a_key) == std::string::npos);
  CHECK(dump.find(a_key.substr(4)) == std::string::npos);
  CHECK(dump.find("hash") == std::string::npos);
  CHECK(dump.find("\"key\"") == std::string::npos);

  api::Client ca = tenant_client("list-a");
  json only_a = call_ok(ca, "apikey.list");
  REQUIRE(only_a["keys"].size() == 1);
  CHECK(only_a["keys"][0]["id"] == a["id"]);
  api::Client none = tenant_client("list-nobody");
  CHECK(call_ok(none, "apikey.list")["keys"].empty());

  call_ok("apikey.revoke", {{"id", a["id"]}});
  call_ok("apikey.revoke", {{"id", b["id"]}});
}

TEST_CASE("a revoked key no longer verifies nor is listed; revoking it again or an unknown id is not found") {
  json k = create_key("revoked-tenant");
  const std::string id = k["id"].get<std::string>();
  call_ok("apikey.verify", {{"key", k["key"]}});
  CHECK(call_ok("apikey.revoke", {{"id", id}}) == json{{"id", id}, {"revoked", true}});
  check_invalid(call_err("apikey.verify", {{"key", k["key"]}}));
  CHECK(listed(call_ok("apikey.list"), id) == nullptr);
  api::CallError again = call_err("apikey.revoke", {{"id", id}});
  CHECK(again.code == api::kNotFound);
  CHECK(again.message.find(id) != std::string::npos);
  CHECK(call_err("apikey.revoke", {{"id", "000000000000"}}).code == api::kNotFound);
  CHECK(call_err("apikey.revoke", {{"id", ""}}).code == api::kNotFound);
  CHECK(call_err("apikey.revoke").code == api::kInvalidParams);
}

TEST_CASE("revoking with a tenant reaches only that tenant's keys") {
  json k = create_key("owner-tenant");
  api::Client other = tenant_client("someone-else");
  CHECK(call_err(other, "apikey.revoke", {{"id", k["id"]}}).code == api::kNotFound);
  call_ok("apikey.verify", {{"key", k["key"]}});
  api::Client owner = tenant_client("owner-tenant");
  CHECK(call_ok(owner, "apikey.revoke", {{"id", k["id"]}})["revoked"] == true);
}

TEST_CASE("a wrong, empty, malformed or altered key is 'invalid API key', the same for every failure") {
  json k = create_key("wrong-keys");
  std::string key = k["key"].get<std::string>();
  std::string altered = key;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad : {std::string(""), std::string("sbx_"), std::string("not a key"), altered,
                                 key.substr(4), key + "A", key.substr(0, key.size() - 1),
                                 "Bearer " + key, std::string("sbx_") + std::string(41, 'A') + "\u00e9",
                                 std::string(100000, 'x')}) {
    CAPTURE(bad.substr(0, 60));
    check_invalid(call_err("apikey.verify", {{"key", bad}}));
  }
  // Not a string at all is a parameter error, as for every method.
  CHECK(call_err("apikey.verify", {{"key", 42}}).code == api::kInvalidParams);
  CHECK(call_err("apikey.verify").code == api::kInvalidParams);
  call_ok("apikey.verify", {{"key", key}});
  call_ok("apikey.revoke", {{"id", k["id"]}});
}

TEST_CASE("apikey.create needs a tenant and takes only a printable label of up to 64 characters") {
  api::CallError e = call_err("apikey.create");
  CHECK(e.code == api::kInvalidParams);
  CHECK(e.message.starts_with("params.tenant: "));
  CHECK(e.data.value("field", "") == "tenant");
  api::CallError empty_tenant = call_err("apikey.create", {{"tenant", ""}});
  CHECK(empty_tenant.code == api::kInvalidParams);
  api::Client c = tenant_client("labels");
  CHECK(call_err(c, "apikey.create", {{"name", std::string(65, 'x')}}).code == api::kInvalidParams);
  CHECK(call_err(c, "apikey.create", {{"name", "two\nlines"}}).code == api::kInvalidParams);
  CHECK(call_err(c, "apikey.create", {{"name", 7}}).code == api::kInvalidParams);
  CHECK(call_err(c, "apikey.create", {{"secret", "x"}}).code == api::kInvalidParams);
  CHECK(call_ok(c, "apikey.list")["keys"].empty());  // nothing was made by the refused calls
  json ok = call_ok(c, "apikey.create", {{"name", std::string(64, 'x')}});
  call_ok("apikey.revoke", {{"id", ok["id"]}});
}

TEST_CASE("create and revoke are in the audit trail with the key's id and tenant, never the key") {
  json k = create_key("audited", "audit me");
  const std::string id = k["id"].get<std::string>();
  call_ok("apikey.revoke", {{"id", id}});
  json events = call_ok("events.list", {{"id", id}})["events"];
  CAPTURE(events.dump());
  REQUIRE(events.size() == 2);
  CHECK(events[0]["type"] == "apikey.created");
  CHECK(events[1]["type"] == "apikey.revoked");
  for (const auto& ev : events) {
    CHECK(ev["id"] == id);
    CHECK(ev["name"] == "audit me");
    CHECK(ev["details"]["key_id"] == id);
    CHECK(ev["details"]["tenant"] == "audited");
  }
  const std::string all = call_ok("events.list", {{"limit", 10000}}).dump();
  CHECK(all.find(k["key"].get<std::string>()) == std::string::npos);
  CHECK(all.find(k["key"].get<std::string>().substr(4)) == std::string::npos);
}

TEST_CASE("a plain uid may call none of the apikey methods") {
  json k = create_key("user-tries");
  const std::string key = k["key"].get<std::string>();
  json seen = calls_as(kUserUid, "", {{"apikey.create", json::object()},
                                      {"apikey.create", {{"name", "x"}}},
                                      {"apikey.list", json::object()},
                                      {"apikey.revoke", {{"id", k["id"]}}},
                                      {"apikey.verify", {{"key", key}}},
                                      {"apikey.verify", {{"key", "sbx_nope"}}}});
  json with_tenant = calls_as(kUserUid, "user-tries", {{"apikey.create", json::object()},
                                                       {"apikey.verify", {{"key", key}}}});
  CAPTURE(seen.dump());
  CAPTURE(with_tenant.dump());
  REQUIRE(seen.is_array());
  REQUIRE(with_tenant.is_array());
  for (const auto& r : seen) {
    CHECK(r.value("code", 0) == api::kPermissionDenied);
  }
  for (const auto& r : with_tenant) {
    CHECK(r.value("code", 0) == api::kPermissionDenied);
  }
  // The user's verify did not count as a use, and the key is still there.
  json still = *listed(call_ok("apikey.list"), k["id"]);
  CHECK(still["last_used"].is_null());
  CHECK(seen.dump().find(k["tenant"].get<std::string>()) == std::string::npos);
  call_ok("apikey.revoke", {{"id", k["id"]}});
}

TEST_CASE("a trusted uid verifies keys but may not create, list or revoke them") {
  json k = create_key("shim-tenant", "from shim");
  const std::string key = k["key"].get<std::string>();
  json seen = calls_as(kTrustedUid, "", {{"apikey.verify", {{"key", key}}},
                                         {"apikey.verify", {{"key", "sbx_wrong"}}},
                                         {"apikey.list", json::object()},
                                         {"apikey.revoke", {{"id", k["id"]}}},
                                         {"apikey.create", json::object()}});
  json as_tenant = calls_as(kTrustedUid, "shim-tenant", {{"apikey.create", {{"name", "self-made"}}},
                                                         {"apikey.list", json::object()},
                                                         {"apikey.revoke", {{"id", k["id"]}}},
                                                         {"apikey.verify", {{"key", key}}}});
  CAPTURE(seen.dump());
  CAPTURE(as_tenant.dump());
  REQUIRE(seen.size() == 5);
  REQUIRE(as_tenant.size() == 4);
  REQUIRE(seen[0].contains("ok"));
  CHECK(seen[0]["ok"] == json{{"id", k["id"]}, {"tenant", "shim-tenant"}, {"name", "from shim"}});
  CHECK(seen[1].value("code", 0) == api::kPermissionDenied);
  CHECK(seen[1].value("message", "") == "invalid API key");
  for (int i : {2, 3, 4}) {
    CHECK(seen[i].value("code", 0) == api::kPermissionDenied);
  }
  for (int i : {0, 1, 2}) {
    CHECK(as_tenant[i].value("code", 0) == api::kPermissionDenied);
  }
  CHECK(as_tenant[3].contains("ok"));
  // Nothing was created or revoked.
  api::Client c = tenant_client("shim-tenant");
  json keys = call_ok(c, "apikey.list")["keys"];
  REQUIRE(keys.size() == 1);
  CHECK(keys[0]["id"] == k["id"]);
  CHECK(keys[0]["last_used"].is_string());
  call_ok("apikey.revoke", {{"id", k["id"]}});
}

}  // TEST_SUITE
