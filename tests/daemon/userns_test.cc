// Every sandbox gets a user namespace of its own from the daemon's pool: disjoint ranges, kept across restarts,
// files written through the API owned by the sandbox's root, an opt-out for root only, and a clear error with
// nothing left behind when the pool is used up.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <set>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

// The host uid that uid 0 inside maps to, from the sandbox's own /proc/self/uid_map.
uint64_t host_root_of(const std::string& id) {
  std::string map = sh(id, "cat /proc/self/uid_map");
  unsigned long long inside = 0, host = 0, count = 0;
  REQUIRE(std::sscanf(map.c_str(), "%llu %llu %llu", &inside, &host, &count) == 3);
  CHECK(inside == 0);
  CHECK(count == 65536);
  return host;
}

}  // namespace

TEST_SUITE("userns") {

TEST_CASE("a default sandbox's root is an unprivileged host uid from the pool, shown by inspect") {
  Sandbox s;
  uint64_t host = host_root_of(s.id());
  CHECK(host >= DaemonProcess::kUsernsFirst);
  CHECK((host - DaemonProcess::kUsernsFirst) % 65536 == 0);
  json userns = s.inspect()["userns"];
  CHECK(userns["uid"] == host);
  CHECK(userns["size"] == 65536);
  // A non-root uid inside has no capabilities at all; root has only the namespaced default set.
  CHECK(sh(s.id(), "grep CapEff /proc/self/status") == "CapEff:\t00000000a00405fb\n");
  auto out = run_exec(s.id(), {{"argv", {"sh", "-c", "grep -E 'Cap(Eff|Prm|Amb)' /proc/self/status"}},
                               {"user", "1000:1000"}, {"stream", false}});
  REQUIRE(out.ok);
  auto text = api::base64_decode(out.result["stdout_b64"].get<std::string>());
  REQUIRE(text.ok());
  CHECK(*text == "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n");
}

TEST_CASE("the escape probe finds no way out of a sandbox made with sbxd's defaults, as root or as uid 1000") {
  json mount = {{"source", SBX_ESCAPE_PROBE}, {"destination", "/sbx-escape-probe"}};
  Sandbox s(json{{"mounts", json::array({mount})}});
  for (std::string uid : {"0", "1000"}) {
    CAPTURE(uid);
    json argv = {"/sbx-escape-probe", "--expect-uid", uid, "--host-secret", TestEnv::get().daemon().config_path()};
    auto out = run_exec(s.id(), {{"argv", argv}, {"user", uid + ":" + uid}, {"stream", false}});
    REQUIRE(out.ok);
    auto text = api::base64_decode(out.result["stdout_b64"].get<std::string>());
    REQUIRE(text.ok());
    INFO(*text);
    CHECK(out.result["exit_code"] == 0);
    CHECK(text->find("FAIL") == std::string::npos);
    CHECK(text->find(" 0 failed\n") != std::string::npos);
  }
}

TEST_CASE("no two live sandboxes share a range") {
  Sandbox a;
  Sandbox b;
  Sandbox c;
  std::set<uint64_t> roots = {host_root_of(a.id()), host_root_of(b.id()), host_root_of(c.id())};
  CHECK(roots.size() == 3);
}

TEST_CASE("file.write creates files and directories owned by the sandbox's root, or the uid asked for") {
  Sandbox s;
  json w = {{"id", s.id()}, {"path", "/srv/a/b/file"}, {"data_b64", api::base64_encode("x")}, {"mkdirs", true}};
  call_ok("file.write", w);
  CHECK(sh(s.id(), "stat -c '%u:%g' /srv/a /srv/a/b /srv/a/b/file") == "0:0\n0:0\n0:0\n");
  w["path"] = "/srv/owned";
  w["uid"] = 1000;
  w["gid"] = 1000;
  call_ok("file.write", w);
  CHECK(sh(s.id(), "stat -c '%u:%g' /srv/owned") == "1000:1000\n");
  w["uid"] = 70000;
  auto err = call_err("file.write", w);
  CHECK(err.code == api::kInvalidParams);
  CHECK(err.message.find("not mapped") != std::string::npos);
}

TEST_CASE("a sandbox keeps its range across a restart of sbxd") {
  Sandbox s;
  uint64_t before = host_root_of(s.id());
  TestEnv::get().daemon().stop();
  TestEnv::get().daemon().start();
  CHECK(s.inspect()["userns"]["uid"] == before);
  CHECK(host_root_of(s.id()) == before);
}

TEST_CASE("only root may run a sandbox in the host's user namespace") {
  Sandbox host(json{{"userns", false}});
  CHECK(sh(host.id(), "cat /proc/self/uid_map").find("         0          0 4294967295") == 0);
  CHECK(host.inspect()["userns"].is_null());
  json as_user = run_as(1000, 1000, {kSocketGid}, [] {
    auto c = connect();
    auto r = c.call("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"userns", false}});
    return json{{"ok", r.ok()}, {"code", c.last_error().code}};
  });
  CHECK(as_user["ok"] == false);
  CHECK(as_user["code"] == api::kPermissionDenied);
}

}  // TEST_SUITE
