// CDI: qualified device names, spec files, and devices resolved against spec directories into nodes, mounts and env.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <string>
#include <vector>

#include "base/file.h"
#include "runtime/cdi.h"
#include "temp_dir.h"

using namespace sbx;
using namespace sbx::rt;
using sbx::test::TempDir;

namespace {

// The error of parsing `text` as the spec file /etc/cdi/acme.json.
std::string spec_error(const std::string& text) {
  auto r = parse_cdi_spec(text, "/etc/cdi/acme.json");
  REQUIRE_FALSE(r.ok());
  return r.error().message();
}

// A spec of kind acme.com/gpu with `version`, one device `name` whose containerEdits are `edits`.
std::string device_spec(const std::string& edits, const std::string& version = "0.6.0",
                        const std::string& name = "0") {
  return R"({"cdiVersion": ")" + version + R"(", "kind": "acme.com/gpu", "devices": [{"name": ")" + name +
         R"(", "containerEdits": )" + edits + "}]}";
}

std::string name_error(std::string_view name) {
  auto r = parse_cdi_device_name(name);
  REQUIRE_FALSE(r.ok());
  return r.error().message();
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

void write(const std::string& path, const std::string& text) { REQUIRE(create_file(path, text).ok()); }

// The error of resolving `names` against `dirs`.
std::string resolve_error(const std::vector<std::string>& names, const std::vector<std::string>& dirs) {
  auto r = resolve_cdi_devices(names, dirs);
  REQUIRE_FALSE(r.ok());
  return r.error().message();
}

// A spec file with spec-level and device-level edits; host nodes are /dev/null and /dev/zero (real char devices).
constexpr const char* kAcmeSpec = R"({
  "cdiVersion": "0.7.0",
  "kind": "acme.com/gpu",
  "annotations": {"vendor": "acme"},
  "containerEdits": {
    "env": ["ACME_DRIVER=1.2", "ACME_MODE=shared"],
    "deviceNodes": [{"path": "/dev/acmectl", "hostPath": "/dev/null", "permissions": "rw"}],
    "mounts": [{"hostPath": "/usr/lib/acme", "containerPath": "/usr/lib/acme/lib64",
                "options": ["ro", "nosuid", "nodev", "bind"]},
               {"hostPath": "/usr/lib/acme-base", "containerPath": "/usr/lib/acme", "options": ["rbind"]}]
  },
  "devices": [
    {"name": "0", "containerEdits": {
      "env": ["ACME_VISIBLE=0", "ACME_MODE=exclusive"],
      "deviceNodes": [{"path": "/dev/acme0", "hostPath": "/dev/zero", "type": "c"}]}},
    {"name": "1", "containerEdits": {
      "env": ["ACME_VISIBLE=1"],
      "deviceNodes": [{"path": "/dev/acme1", "hostPath": "/dev/null", "type": "c", "major": 1, "minor": 3,
                       "permissions": "mwr"}],
      "additionalGids": [0, 44, 44]}}
  ]
})";

// The device numbers of a host node.
std::pair<uint32_t, uint32_t> numbers_of(const char* path) {
  struct stat st {};
  REQUIRE(::stat(path, &st) == 0);
  return {::major(st.st_rdev), ::minor(st.st_rdev)};
}

}  // namespace

TEST_SUITE("rt.cdi") {

TEST_CASE("a qualified name splits into vendor, class and device name") {
  auto n = parse_cdi_device_name("nvidia.com/gpu=0");
  REQUIRE_MESSAGE(n.ok(), n.error().message());
  CHECK(n->vendor == "nvidia.com");
  CHECK(n->device_class == "gpu");
  CHECK(n->name == "0");
  CHECK(n->kind() == "nvidia.com/gpu");
  CHECK(n->qualified() == "nvidia.com/gpu=0");

  for (const char* good : {"vendor.com/foo=bar", "foo.bar.baz/foo-bar123.B_az=dev:0.1", "a/b=c",
                           "acme.com/gpu=GPU-3c1f_x", "nvidia.com/gpu=all", "nvidia.com/mig.class=0:1"}) {
    CHECK_MESSAGE(parse_cdi_device_name(good).ok(), good);
  }
}

TEST_CASE("a malformed qualified name is refused with the part that is wrong") {
  CHECK(contains(name_error("nvidia.com/gpu"), "not a qualified CDI device name"));
  CHECK(contains(name_error("/dev/nvidia0"), "not a qualified CDI device name"));
  CHECK(contains(name_error("gpu=0"), "not vendor/class"));
  CHECK(contains(name_error("vendor.com/foo/bar=0"), "class 'foo/bar'"));
  CHECK(contains(name_error("=0"), "not vendor/class"));
  CHECK(contains(name_error("/gpu=0"), "vendor is empty"));
  CHECK(contains(name_error("acme.com/=0"), "class is empty"));
  CHECK(contains(name_error("acme.com/gpu="), "device name is empty"));
  CHECK(contains(name_error("1acme.com/gpu=0"), "vendor '1acme.com' must start with a letter"));
  CHECK(contains(name_error("acme.com/gpu-=0"), "class 'gpu-'"));
  CHECK(contains(name_error("acme.com/gpu=-0"), "device name '-0' must start and end with a letter or digit"));
  CHECK(contains(name_error("acme.com/gpu=a b"), "device name 'a b' may contain only"));
  CHECK(contains(name_error("acme.com/g$u=0"), "class 'g$u' may contain only"));
  CHECK(contains(name_error(std::string(64, 'g').insert(0, "acme.com/") + "=0"), "longer than 63 bytes"));
  CHECK(name_error("acme.com/gpu=0=1").starts_with("CDI device name 'acme.com/gpu=0=1':"));
}

TEST_CASE("a spec file reads into its version, kind, spec-level edits and devices") {
  auto spec = parse_cdi_spec(kAcmeSpec, "/etc/cdi/acme.json");
  REQUIRE_MESSAGE(spec.ok(), spec.error().message());
  CHECK(spec->path == "/etc/cdi/acme.json");
  CHECK(spec->version == "0.7.0");
  CHECK(spec->kind() == "acme.com/gpu");
  CHECK(spec->edits.field == "containerEdits");
  CHECK(spec->edits.env == std::vector<std::string>{"ACME_DRIVER=1.2", "ACME_MODE=shared"});
  REQUIRE(spec->edits.device_nodes.size() == 1);
  CHECK(spec->edits.device_nodes[0].host_path == "/dev/null");
  CHECK(spec->edits.device_nodes[0].type == 0);
  CHECK(spec->edits.device_nodes[0].access == "rw");
  REQUIRE(spec->edits.mounts.size() == 2);
  CHECK(spec->edits.mounts[0].read_only);
  CHECK_FALSE(spec->edits.mounts[1].read_only);
  REQUIRE(spec->devices.size() == 2);
  CHECK(spec->devices[0].name == "0");
  CHECK(spec->devices[0].edits.field == "devices[0].containerEdits");
  CHECK(spec->devices[0].edits.device_nodes[0].access == "rwm");  // the default
  CHECK(spec->devices[0].edits.device_nodes[0].type == 'c');
  CHECK_FALSE(spec->devices[0].edits.device_nodes[0].major.has_value());
  CHECK(spec->devices[1].edits.device_nodes[0].major == 1u);
  CHECK(spec->devices[1].edits.device_nodes[0].minor == 3u);
  CHECK(spec->devices[1].edits.device_nodes[0].access == "rwm");  // "mwr" in canonical order
  CHECK(spec->devices[1].edits.additional_gids == std::vector<uint32_t>{0, 44, 44});
  CHECK(spec->devices[1].edits.unsupported.empty());
}

TEST_CASE("a node without hostPath is its own host node, and a zero major counts as not given") {
  auto spec = parse_cdi_spec(
      device_spec(R"({"deviceNodes": [{"path": "/dev/null", "type": "u", "major": 0, "minor": 7}]})"), "a.json");
  REQUIRE_MESSAGE(spec.ok(), spec.error().message());
  const CdiDeviceNode& node = spec->devices[0].edits.device_nodes[0];
  CHECK(node.host_path == "/dev/null");
  CHECK(node.type == 'c');  // "u", unbuffered, is a character device
  CHECK_FALSE(node.major.has_value());
  CHECK_FALSE(node.minor.has_value());
}

TEST_CASE("every spec version from 0.3.0 to 1.1.0 is read, others are refused") {
  for (const char* version : {"0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0", "v0.5.0"}) {
    auto spec = parse_cdi_spec(device_spec(R"({"env": ["A=1"]})", version, "a"), "a.json");
    CHECK_MESSAGE(spec.ok(), version, ": ", spec.error().message());
  }
  for (const char* version : {"0.1.0", "0.2.0", "0.5.1", "1.2.0", "2.0.0", "latest", ""}) {
    std::string error = spec_error(device_spec(R"({"env": ["A=1"]})", version, "a"));
    CHECK_MESSAGE(error.starts_with("/etc/cdi/acme.json: cdiVersion: '"), error);
    CHECK(contains(error, "is not a supported CDI version"));
  }
}

TEST_CASE("a field newer than the spec's declared version is refused, naming both") {
  CHECK(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/a", "hostPath": "/dev/b"}]})", "0.4.0", "a")) ==
        "/etc/cdi/acme.json: devices[0].containerEdits.deviceNodes[0].hostPath: needs cdiVersion 0.5.0 or later, "
        "the spec declares 0.4.0");
  CHECK(contains(spec_error(device_spec(R"({"mounts": [{"hostPath": "/a", "containerPath": "/b", "type": "bind"}]})",
                                        "0.3.0", "a")),
                 "devices[0].containerEdits.mounts[0].type: needs cdiVersion 0.4.0"));
  CHECK(contains(spec_error(device_spec(R"({"additionalGids": [5]})", "0.6.0")),
                 "devices[0].containerEdits.additionalGids: needs cdiVersion 0.7.0"));
  CHECK(contains(spec_error(device_spec(R"({"netDevices": []})", "1.0.0")),
                 "devices[0].containerEdits.netDevices: needs cdiVersion 1.1.0"));
  CHECK(contains(spec_error(device_spec(R"({"env": ["A=1"]})", "0.4.0")),
                 "devices[0].name: needs cdiVersion 0.5.0"));  // a name starting with a digit
  CHECK(contains(spec_error(R"({"cdiVersion": "0.5.0", "kind": "acme.com/gpu.x", "devices": [{"name": "a"}]})"),
                 "kind: needs cdiVersion 0.6.0"));
  CHECK(contains(spec_error(R"({"cdiVersion": "0.5.0", "kind": "a.com/b", "annotations": {"x": "y"},
                                "devices": [{"name": "a"}]})"),
                 "annotations: needs cdiVersion 0.6.0"));
}

TEST_CASE("a malformed spec is refused with the file and the field") {
  CHECK(spec_error("{\"cdiVersion\": ") == "/etc/cdi/acme.json: not valid JSON");
  CHECK(spec_error("[]") == "/etc/cdi/acme.json: expected an object, got array");
  CHECK(spec_error(R"({"kind": "a.com/b", "devices": [{"name": "a"}]})") == "/etc/cdi/acme.json: cdiVersion: required");
  CHECK(spec_error(R"({"cdiVersion": "0.6.0", "devices": [{"name": "a"}]})") == "/etc/cdi/acme.json: kind: required");
  CHECK(contains(spec_error(R"({"cdiVersion": "0.6.0", "kind": "acme", "devices": [{"name": "a"}]})"),
                 "kind: 'acme' is not vendor/class"));
  CHECK(spec_error(R"({"cdiVersion": "0.6.0", "kind": "a.com/b"})") ==
        "/etc/cdi/acme.json: devices: a spec must define at least one device");
  CHECK(contains(spec_error(R"({"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": []})"),
                 "devices: a spec must define at least one device"));
  CHECK(contains(
      spec_error(R"({"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "a"}, {"name": "a"}]})"),
      "devices[1].name: device 'a' is defined twice"));
  CHECK(contains(spec_error(R"({"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{"name": "a b"}]})"),
                 "devices[0].name: device name 'a b' may contain only"));
  CHECK(contains(spec_error(R"({"cdiVersion": "0.6.0", "kind": "a.com/b", "devices": [{}]})"),
                 "devices[0].name: required"));
  CHECK(spec_error(R"({"cdiVersion": "0.6.0", "kind": "a.com/b", "device": [{"name": "a"}]})") ==
        "/etc/cdi/acme.json: unknown field 'device'");
  CHECK(spec_error(device_spec(R"({"env": ["A=1"], "mount": []})")) ==
        "/etc/cdi/acme.json: devices[0].containerEdits: unknown field 'mount'");
  CHECK(spec_error(device_spec(R"({"env": "A=1"})")) ==
        "/etc/cdi/acme.json: devices[0].containerEdits.env: expected an array, got string 'A=1'");
  CHECK(spec_error(device_spec(R"({"env": ["A=1", "=2"]})")) ==
        "/etc/cdi/acme.json: devices[0].containerEdits.env[1]: '=2' is not NAME=value");
  CHECK(contains(spec_error(device_spec(R"({"env": ["NOVALUE"]})")), "env[0]: 'NOVALUE' is not NAME=value"));
  CHECK(spec_error(device_spec(R"([])")) ==
        "/etc/cdi/acme.json: devices[0].containerEdits: expected an object, got array");
}

TEST_CASE("malformed device nodes and mounts are refused with their field") {
  CHECK(spec_error(device_spec(R"({"deviceNodes": [{"path": "dev/acme0"}]})")) ==
        "/etc/cdi/acme.json: devices[0].containerEdits.deviceNodes[0].path: 'dev/acme0' must be an absolute path");
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/../etc/passwd"}]})")),
                 "deviceNodes[0].path: '/dev/../etc/passwd' must not contain '.' or '..' components"));
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/a", "hostPath": "a"}]})")),
                 "deviceNodes[0].hostPath: 'a' must be an absolute path"));
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"hostPath": "/dev/a"}]})")),
                 "deviceNodes[0].path: required"));
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/a", "type": "x"}]})")),
                 "deviceNodes[0].type: 'x' is not one of b, c, u, p"));
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/a", "major": -1}]})")),
                 "deviceNodes[0].major: expected an integer in 0..4294967295, got number -1"));
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/a", "minor": "3"}]})")),
                 "deviceNodes[0].minor: expected an integer"));
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/a", "permissions": "rwx"}]})")),
                 "deviceNodes[0].permissions: 'rwx' may contain only r, w and m"));
  CHECK(contains(spec_error(device_spec(R"({"deviceNodes": [{"path": "/dev/a", "mode": 438}]})")),
                 "deviceNodes[0]: unknown field 'mode'"));
  CHECK(spec_error(device_spec(R"({"mounts": [{"hostPath": "/usr/lib/acme", "containerPath": "lib"}]})")) ==
        "/etc/cdi/acme.json: devices[0].containerEdits.mounts[0].containerPath: 'lib' must be an absolute path");
  CHECK(contains(spec_error(device_spec(R"({"mounts": [{"hostPath": "lib", "containerPath": "/lib"}]})")),
                 "mounts[0].hostPath: 'lib' must be an absolute path"));
  CHECK(contains(spec_error(device_spec(R"({"mounts": [{"containerPath": "/lib"}]})")),
                 "mounts[0].hostPath: required"));
  CHECK(contains(spec_error(device_spec(R"({"mounts": [{"hostPath": "/a", "containerPath": "/b", "options": "ro"}]})")),
                 "mounts[0].options: expected an array"));
  CHECK(contains(spec_error(device_spec(R"({"additionalGids": [-5]})", "0.7.0")), "additionalGids[0]: expected"));
  CHECK(contains(spec_error(device_spec(R"({"hooks": {}})")), "containerEdits.hooks: expected an array"));
}

TEST_CASE("spec-level and device-level edits resolve into env, nodes and mounts in spec order") {
  TempDir dir;
  write(dir.path + "/acme.json", kAcmeSpec);
  auto edits = resolve_cdi_devices({"acme.com/gpu=0", "acme.com/gpu=1"}, {dir.path});
  REQUIRE_MESSAGE(edits.ok(), edits.error().message());

  // Spec-level first (once), then each device's; a later value for a name replaces the earlier one in place.
  CHECK(edits->env ==
        std::vector<std::string>{"ACME_DRIVER=1.2", "ACME_MODE=exclusive", "ACME_VISIBLE=1"});

  auto [null_major, null_minor] = numbers_of("/dev/null");
  auto [zero_major, zero_minor] = numbers_of("/dev/zero");
  REQUIRE(edits->device_nodes.size() == 3);
  const DeviceNodePlan& ctl = edits->device_nodes[0];
  CHECK(ctl.path == "/dev/acmectl");
  CHECK(ctl.host_path == "/dev/null");
  CHECK(ctl.type == 'c');
  CHECK(ctl.major == null_major);
  CHECK(ctl.minor == null_minor);
  CHECK(ctl.access == "rw");
  const DeviceNodePlan& gpu0 = edits->device_nodes[1];
  CHECK(gpu0.path == "/dev/acme0");
  CHECK(gpu0.host_path == "/dev/zero");
  CHECK(gpu0.major == zero_major);
  CHECK(gpu0.minor == zero_minor);
  CHECK(gpu0.access == "rwm");
  CHECK(edits->device_nodes[2].path == "/dev/acme1");
  CHECK(edits->device_nodes[2].minor == 3u);

  // Parents first: /usr/lib/acme before /usr/lib/acme/lib64, whatever the spec's order.
  REQUIRE(edits->mounts.size() == 2);
  CHECK(edits->mounts[0].source == "/usr/lib/acme-base");
  CHECK(edits->mounts[0].destination == "/usr/lib/acme");
  CHECK_FALSE(edits->mounts[0].read_only);
  CHECK(edits->mounts[1].source == "/usr/lib/acme");
  CHECK(edits->mounts[1].destination == "/usr/lib/acme/lib64");
  CHECK(edits->mounts[1].read_only);

  CHECK(edits->additional_gids == std::vector<uint32_t>{44});  // 0 and repeats dropped
}

TEST_CASE("a device requested twice is resolved once, and no request reads nothing") {
  TempDir dir;
  write(dir.path + "/acme.json", kAcmeSpec);
  auto edits = resolve_cdi_devices({"acme.com/gpu=0", "acme.com/gpu=0"}, {dir.path});
  REQUIRE_MESSAGE(edits.ok(), edits.error().message());
  CHECK(edits->device_nodes.size() == 2);
  CHECK(edits->env == std::vector<std::string>{"ACME_DRIVER=1.2", "ACME_MODE=exclusive", "ACME_VISIBLE=0"});

  auto none = resolve_cdi_devices({}, {"/nonexistent/cdi"});
  REQUIRE(none.ok());
  CHECK(none->device_nodes.empty());
  CHECK(none->env.empty());
}

TEST_CASE("type, major and minor come from lstat of the host node when the spec omits them") {
  TempDir dir;
  write(dir.path + "/null.json",
        R"({"cdiVersion": "0.5.0", "kind": "example.org/null", "devices": [
             {"name": "n", "containerEdits": {"deviceNodes": [{"path": "/dev/null"}]}}]})");
  auto edits = resolve_cdi_devices({"example.org/null=n"}, {dir.path});
  REQUIRE_MESSAGE(edits.ok(), edits.error().message());
  REQUIRE(edits->device_nodes.size() == 1);
  const DeviceNodePlan& node = edits->device_nodes[0];
  auto [major, minor] = numbers_of("/dev/null");
  CHECK(node.path == "/dev/null");
  CHECK(node.host_path == "/dev/null");
  CHECK(node.type == 'c');
  CHECK(node.major == major);
  CHECK(node.minor == minor);
  CHECK(node.access == "rwm");
}

TEST_CASE("a host node that is missing, not a device, or not what the spec says is refused") {
  TempDir dir;
  const std::string file = dir.path + "/plain";
  write(file, "x");
  auto spec_with = [&](const std::string& node) {
    write(dir.path + "/acme.json", device_spec(R"({"deviceNodes": [)" + node + "]}"));
  };
  spec_with(R"({"path": "/dev/acme0", "hostPath": ")" + dir.path + R"(/missing"})");
  std::string error = resolve_error({"acme.com/gpu=0"}, {dir.path});
  CHECK_MESSAGE(error.starts_with("CDI device 'acme.com/gpu=0': " + dir.path +
                                  "/acme.json: devices[0].containerEdits.deviceNodes[0]: host node '"),
                error);
  CHECK(contains(error, "No such file or directory"));

  spec_with(R"({"path": "/dev/acme0", "hostPath": ")" + file + R"("})");
  CHECK(contains(resolve_error({"acme.com/gpu=0"}, {dir.path}),
                 "deviceNodes[0]: host node '" + file + "' is not a character or block device"));

  spec_with(R"({"path": "/dev/acme0", "hostPath": "/dev/null", "type": "b"})");
  CHECK(contains(resolve_error({"acme.com/gpu=0"}, {dir.path}),
                 "deviceNodes[0].type: 'b' but host node '/dev/null' is of type 'c'"));

  spec_with(R"({"path": "/dev/acme0", "hostPath": "/dev/null", "major": 4000, "minor": 1})");
  CHECK(contains(resolve_error({"acme.com/gpu=0"}, {dir.path}),
                 "deviceNodes[0].major: 4000:1 but host node '/dev/null' is"));
}

TEST_CASE("hooks are refused naming the device, the file and the field") {
  TempDir dir;
  write(dir.path + "/acme.json",
        device_spec(R"({"env": ["A=1"], "hooks": [{"hookName": "createContainer", "path": "/usr/bin/acme-hook"}]})"));
  auto r = resolve_cdi_devices({"acme.com/gpu=0"}, {dir.path});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "CDI device 'acme.com/gpu=0': " + dir.path +
                                   "/acme.json: devices[0].containerEdits.hooks: CDI hooks are not supported");
  CHECK(r.error().sys_errno() == EOPNOTSUPP);

  // Spec-level hooks are refused for every device of the spec.
  write(dir.path + "/acme.json", R"({"cdiVersion": "0.6.0", "kind": "acme.com/gpu",
      "containerEdits": {"hooks": [{"hookName": "poststop", "path": "/bin/true"}]},
      "devices": [{"name": "0", "containerEdits": {"env": ["A=1"]}}]})");
  CHECK(resolve_error({"acme.com/gpu=0"}, {dir.path}) ==
        "CDI device 'acme.com/gpu=0': " + dir.path + "/acme.json: containerEdits.hooks: CDI hooks are not supported");
}

TEST_CASE("edits sbx cannot apply are refused only for the devices that need them") {
  TempDir dir;
  write(dir.path + "/acme.json", R"({"cdiVersion": "1.1.0", "kind": "acme.com/gpu", "devices": [
      {"name": "plain", "containerEdits": {"env": ["A=1"]}},
      {"name": "rdt", "containerEdits": {"intelRdt": {"closID": "x"}}},
      {"name": "net", "containerEdits": {"netDevices": [{"hostInterfaceName": "eth1", "name": "eth1"}]}},
      {"name": "fifo", "containerEdits": {"deviceNodes": [{"path": "/dev/f", "type": "p"}]}},
      {"name": "owned", "containerEdits": {"deviceNodes": [{"path": "/dev/null", "uid": 1000}]}},
      {"name": "mode", "containerEdits": {"deviceNodes": [{"path": "/dev/null", "fileMode": 438}]}},
      {"name": "tmpfs", "containerEdits": {"mounts": [{"hostPath": "/x", "containerPath": "/y", "type": "tmpfs"}]}},
      {"name": "noexec", "containerEdits": {"mounts": [{"hostPath": "/x", "containerPath": "/y",
                                                        "options": ["bind", "noexec"]}]}}]})");
  CHECK(resolve_cdi_devices({"acme.com/gpu=plain"}, {dir.path}).ok());
  CHECK(contains(resolve_error({"acme.com/gpu=rdt"}, {dir.path}),
                 "devices[1].containerEdits.intelRdt: Intel RDT (resctrl) settings are not supported"));
  CHECK(contains(resolve_error({"acme.com/gpu=net"}, {dir.path}),
                 "devices[2].containerEdits.netDevices: moving network devices into a sandbox is not supported"));
  CHECK(contains(resolve_error({"acme.com/gpu=fifo"}, {dir.path}),
                 "devices[3].containerEdits.deviceNodes[0].type: FIFO nodes are not supported"));
  CHECK(contains(resolve_error({"acme.com/gpu=owned"}, {dir.path}), "deviceNodes[0].uid: not supported"));
  CHECK(contains(resolve_error({"acme.com/gpu=mode"}, {dir.path}), "deviceNodes[0].fileMode: not supported"));
  CHECK(contains(resolve_error({"acme.com/gpu=tmpfs"}, {dir.path}),
                 "devices[6].containerEdits.mounts[0].type: 'tmpfs' mounts are not supported, only bind mounts"));
  CHECK(contains(resolve_error({"acme.com/gpu=noexec"}, {dir.path}),
                 "devices[7].containerEdits.mounts[0].options[1]: mount option 'noexec' is not supported"));
}

TEST_CASE("an unknown device or kind is refused with what the specs do define") {
  TempDir dir;
  write(dir.path + "/acme.json", kAcmeSpec);
  std::string error = resolve_error({"acme.com/gpu=7"}, {dir.path});
  CHECK(error == "CDI device 'acme.com/gpu=7': unknown device: the specs of kind 'acme.com/gpu' define 0, 1");
  error = resolve_error({"acme.com/gpu=0", "other.com/fpga=0"}, {"/nonexistent/cdi", dir.path});
  CHECK(error == "CDI device 'other.com/fpga=0': unknown device: no spec in /nonexistent/cdi, " + dir.path +
                     " is of kind 'other.com/fpga'");
  CHECK(contains(resolve_error({"acme.com/gpu"}, {dir.path}), "not a qualified CDI device name"));
}

TEST_CASE("a YAML spec is read when it is JSON, and named when a device is not found otherwise") {
  TempDir dir;
  write(dir.path + "/acme.yaml", kAcmeSpec);  // JSON is YAML too
  write(dir.path + "/nvidia.yaml", "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: \"0\"\n");
  write(dir.path + "/notes.txt", "not a spec");
  auto edits = resolve_cdi_devices({"acme.com/gpu=1"}, {dir.path});
  REQUIRE_MESSAGE(edits.ok(), edits.error().message());
  CHECK(edits->env.back() == "ACME_VISIBLE=1");
  CHECK(resolve_error({"nvidia.com/gpu=0"}, {dir.path}) ==
        "CDI device 'nvidia.com/gpu=0': unknown device: no spec in " + dir.path +
            " is of kind 'nvidia.com/gpu'; only JSON specs are read, not " + dir.path + "/nvidia.yaml");
}

TEST_CASE("a broken spec file fails requests for its kind only, or for any kind when its kind is unreadable") {
  TempDir dir;
  write(dir.path + "/acme.json", kAcmeSpec);
  write(dir.path + "/other.json", R"({"cdiVersion": "0.6.0", "kind": "other.com/fpga", "devices": [{"name": "-x"}]})");
  CHECK(resolve_cdi_devices({"acme.com/gpu=0"}, {dir.path}).ok());
  CHECK(resolve_error({"other.com/fpga=x"}, {dir.path}) ==
        "CDI device 'other.com/fpga=x': " + dir.path +
            "/other.json: devices[0].name: device name '-x' must start and end with a letter or digit");

  write(dir.path + "/zz.json", "{ not json");
  CHECK(resolve_error({"acme.com/gpu=0"}, {dir.path}) ==
        "CDI device 'acme.com/gpu=0': " + dir.path + "/zz.json: not valid JSON");
}

TEST_CASE("a later directory overrides an earlier one, and two files of one directory conflict") {
  TempDir low;
  TempDir high;
  write(low.path + "/acme.json", device_spec(R"({"env": ["FROM=low"]})"));
  write(high.path + "/acme.json", device_spec(R"({"env": ["FROM=high"]})"));
  auto edits = resolve_cdi_devices({"acme.com/gpu=0"}, {low.path, high.path});
  REQUIRE_MESSAGE(edits.ok(), edits.error().message());
  CHECK(edits->env == std::vector<std::string>{"FROM=high"});

  write(high.path + "/acme-copy.json", device_spec(R"({"env": ["FROM=copy"]})"));
  CHECK(resolve_error({"acme.com/gpu=0"}, {low.path, high.path}) ==
        "CDI device 'acme.com/gpu=0': defined by both " + high.path + "/acme-copy.json and " + high.path +
            "/acme.json");
}

TEST_CASE("the default spec directories are /etc/cdi, then /var/run/cdi") {
  CHECK(default_cdi_spec_dirs() == std::vector<std::string>{"/etc/cdi", "/var/run/cdi"});
}

}  // TEST_SUITE
