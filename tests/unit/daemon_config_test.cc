// sbxd's configuration file: defaults, every section and key, and errors that name the key at fault.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <string>

#include "base/file.h"
#include "daemon/config.h"

using namespace sbx;
using namespace sbx::daemon;

namespace {

DaemonConfig parsed(std::string_view text) {
  auto c = parse_config(text, "test.toml");
  REQUIRE_MESSAGE(c.ok(), c.error().message());
  return std::move(*c);
}

// The error parsing `text` gives; the test fails if it parses.
std::string parse_error(std::string_view text) {
  auto c = parse_config(text, "test.toml");
  REQUIRE_MESSAGE(!c.ok(), "parsed: " << std::string(text));
  return c.error().message();
}

void check_error_names(std::string_view text, std::string_view expected) {
  std::string msg = parse_error(text);
  CHECK_MESSAGE(msg.find(expected) != std::string::npos, "'" << msg << "' does not name '" << expected << "'");
  CHECK_MESSAGE(msg.find("test.toml") != std::string::npos, "'" << msg << "' does not name the file");
}

}  // namespace

TEST_SUITE("daemon.config") {

TEST_CASE("an empty file gives the documented defaults") {
  DaemonConfig c = parsed("");
  DaemonConfig d;
  CHECK(c.socket == "/run/sbx/sbxd.sock");
  CHECK(c.socket_group.empty());
  CHECK(c.socket_mode == 0660);
  CHECK(c.state_dir == "/var/lib/sbx");
  CHECK(c.run_dir == "/run/sbx");
  CHECK(c.monitor.empty());
  CHECK(c.spare_monitor);
  CHECK(c.seccomp_dir.empty());
  CHECK(c.trusted_uids.empty());
  CHECK(c.rootfs_dirs == std::vector<std::string>{"/var/lib/sbx/rootfs"});
  CHECK(c.log_level == "info");
  CHECK(c.cgroup_mode == "auto");
  CHECK(c.cgroup_root == "/sys/fs/cgroup");
  CHECK(c.cgroup_parent.empty());
  CHECK(c.cgroup_parent_name == "sbx");
  CHECK(c.memory == std::optional<uint64_t>(1ull << 30));
  CHECK(c.pids == std::optional<uint64_t>(1024));
  CHECK(!c.vcpus);
  CHECK(!c.disk);
  CHECK(c.ttl == 0);
  CHECK(c.seccomp == "default");
  CHECK(c.capabilities == d.capabilities);
  CHECK(c.max_request_bytes == 16ull << 20);
  CHECK(c.max_file_bytes == 64ull << 20);
  CHECK(c.exec_output_limit == d.exec_output_limit);
  CHECK(c.max_exec_output_limit == d.max_exec_output_limit);
  CHECK(c.log_max_bytes == d.log_max_bytes);
  CHECK(c.max_sandboxes == d.max_sandboxes);
  CHECK(c.max_sandboxes_per_owner == d.max_sandboxes_per_owner);
  CHECK(c.max_concurrent_execs == d.max_concurrent_execs);
  CHECK(parsed("# only a comment\n\n").socket == d.socket);
}

TEST_CASE("every key of [daemon] is read") {
  DaemonConfig c = parsed(R"(
[daemon]
socket = "/run/x/sock"
socket_group = "sbx"
socket_mode = "0600"
state_dir = "/var/lib/x"
run_dir = "/run/x"
monitor = "/usr/libexec/x/sbx-monitor"
spare_monitor = false
seccomp_dir = "/usr/share/x"
trusted_uids = [998, 999]
rootfs_dirs = ["/srv/a", "/srv/b"]
log_level = "debug"
)");
  CHECK(c.socket == "/run/x/sock");
  CHECK(c.socket_group == "sbx");
  CHECK(c.socket_mode == 0600);
  CHECK(c.state_dir == "/var/lib/x");
  CHECK(c.run_dir == "/run/x");
  CHECK(c.monitor == "/usr/libexec/x/sbx-monitor");
  CHECK(!c.spare_monitor);
  CHECK(c.seccomp_dir == "/usr/share/x");
  CHECK(c.trusted_uids == std::vector<uint32_t>{998, 999});
  CHECK(c.rootfs_dirs == std::vector<std::string>{"/srv/a", "/srv/b"});
  CHECK(c.log_level == "debug");
  CHECK(parsed("[daemon]\nrootfs_dirs = []\n").rootfs_dirs.empty());
}

TEST_CASE("every key of [cgroup] is read") {
  DaemonConfig c = parsed(R"(
[cgroup]
mode = "v1"
root = "/mnt/cg"
parent = "/system.slice/x"
parent_name = "sbx-x"
)");
  CHECK(c.cgroup_mode == "v1");
  CHECK(c.cgroup_root == "/mnt/cg");
  CHECK(c.cgroup_parent == "/system.slice/x");
  CHECK(c.cgroup_parent_name == "sbx-x");
  CHECK(parsed("[cgroup]\nmode = \"v2\"\n").cgroup_mode == "v2");
}

TEST_CASE("every key of [defaults] is read, sizes as numbers or strings") {
  DaemonConfig c = parsed(R"(
[defaults]
memory = "512M"
pids = 64
vcpus = 1.5
disk = 1073741824
ttl = 3600
seccomp = "strict"
capabilities = ["CAP_CHOWN"]
)");
  CHECK(c.memory == std::optional<uint64_t>(512ull << 20));
  CHECK(c.pids == std::optional<uint64_t>(64));
  CHECK(c.vcpus == std::optional<double>(1.5));
  CHECK(c.disk == std::optional<uint64_t>(1ull << 30));
  CHECK(c.ttl == 3600);
  CHECK(c.seccomp == "strict");
  CHECK(c.capabilities == std::vector<std::string>{"CAP_CHOWN"});
}

TEST_CASE("in [defaults], 0 or \"none\" means no limit") {
  DaemonConfig c = parsed("[defaults]\nmemory = \"none\"\npids = 0\nvcpus = 0\ndisk = 0\n");
  CHECK(!c.memory);
  CHECK(!c.pids);
  CHECK(!c.vcpus);
  CHECK(!c.disk);
  CHECK(!parsed("[defaults]\nmemory = 0\n").memory);
  CHECK(!parsed("[defaults]\ndisk = \"none\"\n").disk);
  CHECK(parsed("[defaults]\ncapabilities = []\n").capabilities.empty());
}

TEST_CASE("an integer vcpus is a number of CPUs") {
  auto c = parse_config("[defaults]\nvcpus = 2\n", "test.toml");
  REQUIRE_MESSAGE(c.ok(), c.error().message());
  CHECK(c->vcpus == std::optional<double>(2.0));
}

TEST_CASE("every key of [limits] is read") {
  DaemonConfig c = parsed(R"(
[limits]
max_request_bytes = "1M"
max_file_bytes = 1000000
exec_output_limit = "2M"
max_exec_output_limit = "1G"
log_max_bytes = "64K"
max_sandboxes = 10
max_sandboxes_per_owner = 2
max_concurrent_execs = 3
history_days = 7
)");
  CHECK(c.max_request_bytes == 1ull << 20);
  CHECK(c.max_file_bytes == 1000000);
  CHECK(c.exec_output_limit == 2ull << 20);
  CHECK(c.max_exec_output_limit == 1ull << 30);
  CHECK(c.log_max_bytes == 64ull << 10);
  CHECK(c.max_sandboxes == 10);
  CHECK(c.max_sandboxes_per_owner == 2);
  CHECK(c.max_concurrent_execs == 3);
  CHECK(c.history_days == 7);
}

TEST_CASE("an unknown key in any section is an error naming section and key") {
  check_error_names("[daemon]\nsokcet = \"/x\"\n", "[daemon] sokcet: unknown key");
  check_error_names("[cgroup]\nparent_nam = \"x\"\n", "[cgroup] parent_nam: unknown key");
  check_error_names("[defaults]\nmemroy = \"1G\"\n", "[defaults] memroy: unknown key");
  check_error_names("[limits]\nmax_sandbox = 1\n", "[limits] max_sandbox: unknown key");
}

TEST_CASE("an unknown section or a top-level key is an error naming it") {
  check_error_names("[netwrok]\nbridge = \"x\"\n", "'netwrok'");
  check_error_names("socket = \"/x\"\n", "'socket'");
  check_error_names("daemon = 1\n", "'daemon'");
}

TEST_CASE("the network section is read and checked") {
  auto c = parsed("[network]\ndefault = \"bridge\"\nbridge = \"br-sbx\"\nsubnet = \"10.77.0.0/24\"\nmtu = 1400\n"
                  "dns_servers = [\"192.0.2.53\"]\nnft_table = \"sbx_test\"\nenable_ip_forward = false\n");
  CHECK(c.network_default == "bridge");
  CHECK(c.bridge == "br-sbx");
  CHECK(c.subnet == "10.77.0.0/24");
  CHECK(c.mtu == 1400);
  CHECK(c.dns_servers == std::vector<std::string>{"192.0.2.53"});
  CHECK(c.nft_table == "sbx_test");
  CHECK_FALSE(c.enable_ip_forward);
  check_error_names("[network]\ndefault = \"host\"\n", "[network] default");
  check_error_names("[network]\nsubnet = \"10.77.0.1/24\"\n", "[network] subnet");
  check_error_names("[network]\nsubnet = \"10.0.0.0/30\"\n", "[network] subnet");
  check_error_names("[network]\nbridge = \"a-very-long-bridge-name\"\n", "[network] bridge");
  check_error_names("[network]\ndns_servers = [\"resolver\"]\n", "[network] dns_servers");
  check_error_names("[network]\nnft_table = \"Bad Name\"\n", "[network] nft_table");
  check_error_names("[network]\nmtu = 100\n", "[network] mtu");
}

TEST_CASE("a value of the wrong type or out of range is an error naming the key") {
  check_error_names("[daemon]\nsocket = 5\n", "[daemon] socket: must be a string");
  check_error_names("[daemon]\nsocket_mode = \"999\"\n", "[daemon] socket_mode");
  check_error_names("[daemon]\nsocket_mode = \"rw\"\n", "[daemon] socket_mode");
  check_error_names("[daemon]\nsocket_mode = \"01777\"\n", "[daemon] socket_mode");
  check_error_names("[daemon]\ntrusted_uids = [-1]\n", "[daemon] trusted_uids");
  check_error_names("[daemon]\ntrusted_uids = \"998\"\n", "[daemon] trusted_uids");
  check_error_names("[daemon]\ntrusted_uids = [\"998\"]\n", "[daemon] trusted_uids");
  check_error_names("[daemon]\nrootfs_dirs = \"/srv\"\n", "[daemon] rootfs_dirs");
  check_error_names("[daemon]\nrootfs_dirs = [1]\n", "[daemon] rootfs_dirs");
  check_error_names("[daemon]\nlog_level = \"loud\"\n", "[daemon] log_level");
  check_error_names("[daemon]\nspare_monitor = \"yes\"\n", "[daemon] spare_monitor: must be true or false");
  check_error_names("[daemon]\nspare_monitor = 1\n", "[daemon] spare_monitor");
  check_error_names("[cgroup]\nmode = \"v3\"\n", "[cgroup] mode");
  check_error_names("[cgroup]\nroot = false\n", "[cgroup] root");
  check_error_names("[defaults]\nmemory = \"lots\"\n", "[defaults] memory");
  check_error_names("[defaults]\nmemory = -1\n", "[defaults] memory");
  check_error_names("[defaults]\npids = -1\n", "[defaults] pids");
  check_error_names("[defaults]\npids = \"64\"\n", "[defaults] pids");
  check_error_names("[defaults]\nvcpus = -1.0\n", "[defaults] vcpus");
  check_error_names("[defaults]\nvcpus = \"2\"\n", "[defaults] vcpus");
  check_error_names("[defaults]\nttl = -5\n", "[defaults] ttl");
  check_error_names("[defaults]\nseccomp = []\n", "[defaults] seccomp");
  check_error_names("[defaults]\ncapabilities = \"CAP_CHOWN\"\n", "[defaults] capabilities");
  check_error_names("[limits]\nmax_file_bytes = \"big\"\n", "[limits] max_file_bytes");
  check_error_names("[limits]\nmax_request_bytes = 100\n", "[limits] max_request_bytes");
  check_error_names("[limits]\nlog_max_bytes = \"1K\"\n", "[limits] log_max_bytes");
  check_error_names("[limits]\nmax_sandboxes = -1\n", "[limits] max_sandboxes");
  check_error_names("[limits]\nmax_sandboxes_per_owner = 1.5\n", "[limits] max_sandboxes_per_owner");
  check_error_names("[limits]\nmax_concurrent_execs = 0\n", "[limits] max_concurrent_execs");
  check_error_names("[limits]\nhistory_days = -1\n", "[limits] history_days");
}

TEST_CASE("paths must be absolute") {
  for (const char* key : {"socket", "state_dir", "run_dir"}) {
    std::string msg = parse_error(fmt::format("[daemon]\n{} = \"relative/path\"\n", key));
    CHECK(msg.find("relative/path") != std::string::npos);
    CHECK(msg.find("absolute") != std::string::npos);
  }
}

TEST_CASE("a TOML syntax error names the file, line and column") {
  std::string msg = parse_error("[daemon]\nsocket = \"/x\"\nrun_dir = \n");
  CHECK(msg.rfind("test.toml:3:", 0) == 0);
}

TEST_CASE("load_config: a missing optional file gives the defaults, a missing required one an error") {
  char tmpl[] = "/tmp/daemon-config-unit-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  auto missing = load_config(dir + "/none.toml", false);
  REQUIRE(missing.ok());
  CHECK(missing->socket == DaemonConfig{}.socket);
  auto required = load_config(dir + "/none.toml", true);
  REQUIRE(!required.ok());
  CHECK(required.error().sys_errno() == ENOENT);
  CHECK(required.error().message().find("none.toml") != std::string::npos);
  REQUIRE(create_file(dir + "/sbxd.toml", "[limits]\nmax_sandboxes = 7\n").ok());
  auto loaded = load_config(dir + "/sbxd.toml", true);
  REQUIRE_MESSAGE(loaded.ok(), loaded.error().message());
  CHECK(loaded->max_sandboxes == 7);
  REQUIRE(create_file(dir + "/bad.toml", "[limits]\nmax_sandboxes = \"x\"\n").ok());
  auto bad = load_config(dir + "/bad.toml", false);
  REQUIRE(!bad.ok());
  CHECK(bad.error().message().find(dir + "/bad.toml") != std::string::npos);
  CHECK(bad.error().message().find("[limits] max_sandboxes") != std::string::npos);
  CHECK(remove_tree(dir).ok());
}

}  // TEST_SUITE
