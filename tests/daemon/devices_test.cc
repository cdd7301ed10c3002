// Devices through the Container Device Interface: a spec of the test's own (a fresh tun node it makes, 0666, so
// nothing of the host's /dev is touched) passed in by name, with its env and mount; unknown devices and specs sbx
// cannot apply are refused with nothing created.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "api/protocol.h"
#include "base/file.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

// Writes the spec "sbx.test/tun" (device t0: a tun node at /dev/net/tun, env, and a read-only file mount) into the
// test daemon's CDI dir, once.
void write_test_spec() {
  const DaemonProcess& d = TestEnv::get().daemon();
  std::string nodes = TestEnv::get().root() + "/cdi-nodes";
  std::string node = nodes + "/tun";
  std::string note = nodes + "/note";
  struct stat st {};
  if (::stat((d.cdi_dir() + "/sbx-test.json").c_str(), &st) == 0) {
    return;
  }
  REQUIRE(make_dirs(nodes, 0755).ok());
  REQUIRE(::mknod(node.c_str(), S_IFCHR | 0666, makedev(10, 200)) == 0);
  REQUIRE(::chmod(node.c_str(), 0666) == 0);
  REQUIRE(create_file(note, "from the CDI spec\n", 0644).ok());
  json spec = json::parse(R"({
    "cdiVersion": "0.6.0", "kind": "sbx.test/tun",
    "devices": [{"name": "t0", "containerEdits": {
      "deviceNodes": [{"path": "/dev/net/tun", "hostPath": "NODE", "permissions": "rw"}],
      "env": ["SBX_TEST_DEVICE=t0"]}}],
    "containerEdits": {"mounts": [{"hostPath": "NOTE", "containerPath": "/etc/sbx-test-note", "options": ["ro", "bind"]}]}
  })");
  spec["devices"][0]["containerEdits"]["deviceNodes"][0]["hostPath"] = node;
  spec["containerEdits"]["mounts"][0]["hostPath"] = note;
  REQUIRE(create_file(d.cdi_dir() + "/sbx-test.json", spec.dump(2), 0644).ok());
  json hooked = json::parse(R"({
    "cdiVersion": "0.6.0", "kind": "sbx.test/hooked",
    "devices": [{"name": "h0", "containerEdits": {"hooks": [{"hookName": "createContainer", "path": "/bin/true"}]}}]
  })");
  REQUIRE(create_file(d.cdi_dir() + "/hooked.json", hooked.dump(2), 0644).ok());
}

size_t sandbox_count() { return call_ok("sandbox.list")["sandboxes"].size(); }

}  // namespace

TEST_SUITE("devices") {

TEST_CASE("a CDI device is bound in, opens, and brings its spec's env and mounts") {
  write_test_spec();
  Sandbox s(json{{"devices", {"sbx.test/tun=t0"}}});
  CHECK(sh(s.id(), "stat -c '%F %t:%T' /dev/net/tun") == "character special file a:c8\n");
  CHECK(sh(s.id(), "exec 3<>/dev/net/tun && echo opened") == "opened\n");
  CHECK(sh(s.id(), "echo $SBX_TEST_DEVICE") == "t0\n");
  CHECK(sh(s.id(), "cat /etc/sbx-test-note") == "from the CDI spec\n");
  CHECK(s.inspect()["state"] == "running");
}

TEST_CASE("a sandbox without the device has no such node") {
  write_test_spec();
  Sandbox s;
  CHECK(sh(s.id(), "test -e /dev/net/tun && echo there || echo absent") == "absent\n");
}

TEST_CASE("an unknown device, a malformed name or a spec with hooks is refused and creates nothing") {
  write_test_spec();
  size_t before = sandbox_count();
  for (const char* name : {"sbx.test/tun=nope", "no-such.vendor/x=y", "not a name", "sbx.test/hooked=h0"}) {
    CAPTURE(name);
    auto err = call_err("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"devices", {name}}});
    CHECK(err.code == api::kInvalidParams);
    CHECK(err.message.find("devices") != std::string::npos);
  }
  auto hooks = call_err("sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"devices", {"sbx.test/hooked=h0"}}});
  CHECK(hooks.message.find("hooks") != std::string::npos);
  CHECK(sandbox_count() == before);
}

}  // TEST_SUITE
