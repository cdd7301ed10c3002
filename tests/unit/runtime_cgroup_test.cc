// cgroup module against temp directories that imitate cgroupfs: regular files stand in for the kernel's interface
// files, so everything that reads or writes them can be checked without root.
#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "base/file.h"
#include "runtime/cgroup.h"
#include "runtime/cgroup_internal.h"

namespace sbx::rt {
namespace {

namespace cd = cgroup_detail;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/cgroup-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    char* real = ::realpath(tmpl, nullptr);
    REQUIRE(real != nullptr);
    path_ = real;
    ::free(real);
  }
  ~TempDir() { (void)remove_tree(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// The error message of a failed Result, "" for a successful one (doctest may evaluate messages either way).
template <typename R>
std::string error_text(const R& r) {
  return r.ok() ? std::string() : r.error().message();
}

void put(const std::string& path, const std::string& content = "") {
  REQUIRE(make_dirs(path.substr(0, path.rfind('/'))).ok());
  REQUIRE(create_file(path, content).ok());
}

std::string get(const std::string& path) {
  auto text = read_file(path);
  REQUIRE_MESSAGE(text.ok(), error_text(text));
  return *text;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

template <typename T>
T must(Result<T> r) {
  REQUIRE_MESSAGE(r.ok(), error_text(r));
  return std::move(r).value();
}

void must_ok(const Result<void>& r) { REQUIRE_MESSAGE(r.ok(), error_text(r)); }

std::string error_of(const Result<void>& r) {
  REQUIRE_FALSE(r.ok());
  return r.error().message();
}

CgroupConfig fake_config(const TempDir& dir, CgroupMode mode, const std::string& self_text) {
  put(dir / "self-cgroup", self_text);
  CgroupConfig config;
  config.mode = mode;
  config.root = dir / "fs";
  config.self_cgroup_file = dir / "self-cgroup";
  REQUIRE(make_dirs(config.root).ok());
  return config;
}

// A v1 layout like this host's: one mount per controller.
void make_v1_mounts(const TempDir& dir, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    REQUIRE(make_dirs(dir / ("fs/" + name)).ok());
  }
}

CgroupLimits full_limits() {
  CgroupLimits l;
  l.memory_max = 64ull << 20;
  l.memory_swap_max = 32ull << 20;
  l.vcpus = 1.5;
  l.cpu_weight = 100;
  l.pids_max = 32;
  l.io.push_back({"8:0", 1048576, 2097152, 100, 200});
  return l;
}

TEST_SUITE("rt.cgroup") {
  TEST_CASE("/proc/self/cgroup lines of v1 hierarchies and the v2 line are parsed") {
    auto entries = must(cd::parse_self_cgroup(
        "12:pids:/user.slice/\n4:cpu,cpuacct:/a//b\n9:name=systemd:/x\n4:memory:/process_api/9089\n0::/\n"));
    REQUIRE(entries.size() == 5);
    CHECK(entries[1].hierarchy_id == 4);
    CHECK(entries[1].controllers == std::vector<std::string>{"cpu", "cpuacct"});
    CHECK(cd::own_cgroup(entries, "cpuacct") == "/a/b");
    CHECK(cd::own_cgroup(entries, "pids") == "/user.slice");
    CHECK(cd::own_cgroup(entries, "memory") == "/process_api/9089");
    CHECK(cd::own_cgroup(entries, "") == "/");
    CHECK_FALSE(cd::own_cgroup(entries, "freezer").has_value());
  }

  TEST_CASE("a malformed /proc/self/cgroup line is refused with its line number") {
    auto entries = cd::parse_self_cgroup("0::/\nnonsense\n");
    REQUIRE_FALSE(entries.ok());
    CHECK(entries.error().message().find("line 2") != std::string::npos);
  }

  TEST_CASE("valid limits pass validation") {
    must_ok(validate_cgroup_limits(full_limits()));
    must_ok(validate_cgroup_limits({}));
  }

  TEST_CASE("validation errors name the field") {
    CgroupLimits l;
    l.memory_max = 1024;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.memory: 1024 is below the minimum of 4 MiB"));
    l = {};
    l.vcpus = 0;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.vcpus:"));
    l.vcpus = 0.005;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.vcpus:"));
    l.vcpus = 1025;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.vcpus:"));
    l.vcpus = 0.01;
    must_ok(validate_cgroup_limits(l));
    l = {};
    l.cpu_weight = 0;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.cpu_weight:"));
    l.cpu_weight = 10001;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.cpu_weight:"));
    l = {};
    l.pids_max = 0;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.pids:"));
    l.pids_max = 4194305;
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.pids:"));
    l = {};
    l.io.push_back({"sda", 1, {}, {}, {}});
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.io[0].device:"));
    l.io[0] = {"8:0", {}, {}, {}, {}};
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.io[0]:"));
    l.io[0] = {"8:0", 0, {}, {}, {}};
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.io[0].rbps:"));
  }

  TEST_CASE("vcpus become a quota per 100 ms period and weights become crun's cpu.shares") {
    CHECK(cd::cpu_quota_us(1.5) == 150000);
    CHECK(cd::cpu_quota_us(0.5) == 50000);
    CHECK(cd::cpu_quota_us(0.01) == 1000);
    CHECK(cd::cpu_quota_us(0.001) == 1000);
    CHECK(cd::cpu_shares_from_weight(1) == 2);
    CHECK(cd::cpu_shares_from_weight(100) == 2597);
    CHECK(cd::cpu_shares_from_weight(10000) == 262144);
  }

  TEST_CASE("v2 limits are written with exactly the kernel's formats") {
    TempDir dir;
    for (const char* f : {"memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max", "io.max"}) {
      put(dir / f);
    }
    must_ok(cd::write_v2_limits(dir.path(), full_limits()));
    CHECK(get(dir / "memory.max") == "67108864");
    CHECK(get(dir / "memory.swap.max") == "33554432");
    CHECK(get(dir / "cpu.max") == "150000 100000");
    CHECK(get(dir / "cpu.weight") == "100");
    CHECK(get(dir / "pids.max") == "32");
    CHECK(get(dir / "io.max") == "8:0 rbps=1048576 wbps=2097152 riops=100 wiops=200");
  }

  TEST_CASE("a v2 io.max line has only the given keys") {
    CHECK(cd::io_max_line({"259:3", {}, 4096, {}, 50}) == "259:3 wbps=4096 wiops=50");
  }

  TEST_CASE("v1 limits are written to each controller's files, memsw as memory plus swap") {
    TempDir dir;
    for (const char* f : {"memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes", "cpu/cpu.cfs_period_us",
                          "cpu/cpu.cfs_quota_us", "cpu/cpu.shares", "pids/pids.max",
                          "blkio/blkio.throttle.read_bps_device", "blkio/blkio.throttle.write_bps_device",
                          "blkio/blkio.throttle.read_iops_device", "blkio/blkio.throttle.write_iops_device"}) {
      put(dir / f);
    }
    CgroupLimits l = full_limits();
    l.vcpus = 0.5;
    must_ok(cd::write_v1_limits({dir / "memory", dir / "cpu", dir / "pids", dir / "blkio"}, l));
    CHECK(get(dir / "memory/memory.limit_in_bytes") == "67108864");
    CHECK(get(dir / "memory/memory.memsw.limit_in_bytes") == "100663296");
    CHECK(get(dir / "cpu/cpu.cfs_period_us") == "100000");
    CHECK(get(dir / "cpu/cpu.cfs_quota_us") == "50000");
    CHECK(get(dir / "cpu/cpu.shares") == "2597");
    CHECK(get(dir / "pids/pids.max") == "32");
    CHECK(get(dir / "blkio/blkio.throttle.read_bps_device") == "8:0 1048576");
    CHECK(get(dir / "blkio/blkio.throttle.write_bps_device") == "8:0 2097152");
    CHECK(get(dir / "blkio/blkio.throttle.read_iops_device") == "8:0 100");
    CHECK(get(dir / "blkio/blkio.throttle.write_iops_device") == "8:0 200");
  }

  TEST_CASE("a v1 limit whose file is missing fails naming the file") {
    TempDir dir;
    CgroupLimits l;
    l.pids_max = 5;
    auto r = cd::write_v1_limits({"", "", dir / "pids", ""}, l);
    CHECK(error_of(r).find(dir / "pids/pids.max") != std::string::npos);
  }

  TEST_CASE("the v2 parent defaults to the caller's own cgroup plus /sbx") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/system.slice/sbxd.service\n");
    auto manager = must(CgroupManager::open(config));
    CHECK(manager->mode() == CgroupMode::kV2);
    CHECK(manager->parent_paths() == std::vector<std::string>{dir / "fs/system.slice/sbxd.service/sbx"});
    config.parent_name = "sbx-test";
    manager = must(CgroupManager::open(config));
    CHECK(manager->parent_paths() == std::vector<std::string>{dir / "fs/system.slice/sbxd.service/sbx-test"});
  }

  TEST_CASE("a configured parent is used as given, but never the root or an ancestor of the caller") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/a/b\n");
    config.parent = "/elsewhere/sbx/";
    CHECK(must(CgroupManager::open(config))->parent_paths() == std::vector<std::string>{dir / "fs/elsewhere/sbx"});
    for (const char* bad : {"/", "/a", "/a/b", "/x/../y", "relative"}) {
      config.parent = bad;
      CHECK_FALSE(CgroupManager::open(config).ok());
    }
  }

  TEST_CASE("v2 check_supported refuses a limit whose controller is not enabled for the parent") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    put(dir / "fs/cgroup.controllers", "cpu pids hugetlb\n");
    put(dir / "fs/cgroup.subtree_control", "cpu pids\n");
    auto manager = must(CgroupManager::open(config));
    CgroupLimits l;
    l.pids_max = 10;
    l.vcpus = 1;
    must_ok(manager->check_supported(l));
    l.memory_max = 64ull << 20;
    std::string err = error_of(manager->check_supported(l));
    CHECK(err.starts_with("limits.memory: the memory controller is not available in '" + dir / "fs'"));
    CHECK(err.find("cgroup.subtree_control: cpu pids") != std::string::npos);

    // Once the parent exists, its own cgroup.controllers decides.
    put(dir / "fs/sbx/cgroup.controllers", "hugetlb\n");
    l = {};
    l.cpu_weight = 50;
    err = error_of(manager->check_supported(l));
    CHECK(err == "limits.cpu_weight: the cpu controller is not available in '" + dir / "fs/sbx" +
                     "' (cgroup.controllers: hugetlb)");
    auto created = manager->create("a1", l);
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().message().find("limits.cpu_weight") != std::string::npos);
    CHECK_FALSE(exists(dir / "fs/sbx/a1"));
  }

  TEST_CASE("v2 create without limits makes <parent>/<id>, and a second create of the id fails") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/daemon\n");
    auto manager = must(CgroupManager::open(config));
    auto cg = must(manager->create("box1", {}));
    CHECK(cg->id() == "box1");
    CHECK(cg->paths() == std::vector<std::string>{dir / "fs/daemon/sbx/box1"});
    CHECK(cg->clone_into_fd() >= 0);
    CHECK(exists(dir / "fs/daemon/sbx/box1"));
    CHECK(must(manager->list()) == std::vector<std::string>{"box1"});
    auto again = manager->create("box1", {});
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message().find("EEXIST") != std::string::npos);
    CHECK(exists(dir / "fs/daemon/sbx/box1"));
    CHECK_FALSE(manager->create("../x", {}).ok());
  }

  TEST_CASE("a failed v2 create leaves no sandbox directory behind") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    put(dir / "fs/sbx/cgroup.controllers", "memory pids\n");
    put(dir / "fs/sbx/cgroup.subtree_control", "");
    auto manager = must(CgroupManager::open(config));
    CgroupLimits l;
    l.memory_max = 64ull << 20;
    auto created = manager->create("box2", l);
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().message().find("memory.max") != std::string::npos);
    CHECK_FALSE(exists(dir / "fs/sbx/box2"));
    // The parent is sbx's own, so the needed controller was enabled there.
    CHECK(get(dir / "fs/sbx/cgroup.subtree_control") == "+memory");
  }

  TEST_CASE("v2 stats are read from cpu.stat, memory.*, and pids.current") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    const std::string box = dir / "fs/sbx/box3";
    put(box + "/cpu.stat",
        "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 10\nnr_throttled 3\n"
        "throttled_usec 500\n");
    put(box + "/memory.current", "4096\n");
    put(box + "/memory.peak", "8192\n");
    put(box + "/memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n");
    put(box + "/pids.current", "2\n");
    auto manager = must(CgroupManager::open(config));
    CgroupStats s = must(manager->attach("box3")->stats());
    CHECK(s.cpu_usage_usec == 1234);
    CHECK(s.cpu_nr_periods == 10);
    CHECK(s.cpu_nr_throttled == 3);
    CHECK(s.cpu_throttled_usec == 500);
    CHECK(s.memory_current == 4096);
    CHECK(s.memory_peak == 8192);
    CHECK(s.oom_kills == 1);
    CHECK(s.pids_current == 2);
  }

  TEST_CASE("v2 stats of a cgroup without controllers are zero") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    put(dir / "fs/sbx/box4/cpu.stat", "usage_usec 77\nuser_usec 70\nsystem_usec 7\n");
    auto manager = must(CgroupManager::open(config));
    CgroupStats s = must(manager->attach("box4")->stats());
    CHECK(s.cpu_usage_usec == 77);
    CHECK(s.cpu_nr_periods == 0);
    CHECK(s.memory_current == 0);
    CHECK(s.memory_peak == 0);
    CHECK(s.pids_current == 0);
  }

  TEST_CASE("a missing cgroup has no stats, no members, and kill and remove succeed") {
    TempDir dir;
    for (CgroupMode mode : {CgroupMode::kV2, CgroupMode::kV1}) {
      auto config = fake_config(dir, mode, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n0::/\n");
      make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
      auto manager = must(CgroupManager::open(config));
      auto cg = manager->attach("gone");
      auto stats = cg->stats();
      REQUIRE_FALSE(stats.ok());
      CHECK(stats.error().sys_errno() == ENOENT);
      CHECK(must(cg->members()).empty());
      must_ok(cg->kill_all());
      must_ok(cg->remove());
      must_ok(cg->remove());
      CHECK(must(manager->list()).empty());
      must_ok(manager->remove_parent());
    }
  }

  TEST_CASE("an id that is not one path component never reaches a path") {
    TempDir dir;
    for (CgroupMode mode : {CgroupMode::kV2, CgroupMode::kV1}) {
      auto config = fake_config(dir, mode, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n0::/\n");
      make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
      auto manager = must(CgroupManager::open(config));
      for (const char* id : {"..", ".", "", "a/b", "../sbx"}) {
        auto cg = manager->attach(id);
        CHECK(cg->paths().empty());
        CHECK(cg->clone_into_fd() == -1);
        CHECK(cg->stats().error().sys_errno() == EINVAL);
        CHECK(cg->add_process(1).error().sys_errno() == EINVAL);
        CHECK_FALSE(cg->freeze(true).ok());
        must_ok(cg->remove());
        CHECK_FALSE(manager->create(id, {}).ok());
      }
    }
  }

  TEST_CASE("v1 parents default to the caller's cgroup of each hierarchy plus /sbx") {
    TempDir dir;
    auto config =
        fake_config(dir, CgroupMode::kV1,
                    "8:pids:/\n6:freezer:/\n5:devices:/d\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer", "devices"});
    auto manager = must(CgroupManager::open(config));
    CHECK(manager->mode() == CgroupMode::kV1);
    CHECK(manager->parent_paths() == std::vector<std::string>{dir / "fs/memory/process_api/abc/sbx", dir / "fs/cpu/sbx",
                                                              dir / "fs/cpuacct/sbx", dir / "fs/pids/sbx",
                                                              dir / "fs/freezer/sbx", dir / "fs/devices/d/sbx"});
  }

  TEST_CASE("a mounted v1 devices hierarchy is required to hold the caller; without one there is no device policy") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
    CHECK(must(CgroupManager::open(config))->parent_paths().size() == 5);
    make_v1_mounts(dir, {"devices"});
    auto manager = CgroupManager::open(config);
    REQUIRE_FALSE(manager.ok());
    CHECK(manager.error().message().find("the caller's cgroup in the devices hierarchy is not listed") !=
          std::string::npos);
  }

  TEST_CASE("v1 create writes the device policy into the sandbox's devices cgroup, and a failure there rolls back") {
    TempDir dir;
    auto config =
        fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n6:devices:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer", "devices"});
    auto manager = must(CgroupManager::open(config));
    // A temp directory has no devices.deny in a new directory, as cgroupfs would: the write fails, naming the file.
    auto created = manager->create("d1", {});
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().message().find("deny every device: ") != std::string::npos);
    CHECK(created.error().message().find(dir / "fs/devices/sbx/d1/devices.deny") != std::string::npos);
    for (const char* h : {"memory", "cpu", "cpuacct", "pids", "freezer", "devices"}) {
      CHECK_FALSE(exists(dir / (std::string("fs/") + h + "/sbx")));
    }
    // An exec child stays in the sandbox's devices cgroup: add_process writes the pid there.
    for (const char* h : {"memory", "cpu", "cpuacct", "pids", "freezer", "devices"}) {
      put(dir / (std::string("fs/") + h + "/sbx/d2/cgroup.procs"), "");
    }
    auto sandbox = manager->attach("d2");
    CHECK(sandbox->paths().size() == 6);
    auto child = must(sandbox->create_child("exec-1"));
    CHECK(child->paths() == std::vector<std::string>{dir / "fs/freezer/sbx/d2/exec-1"});
    put(dir / "fs/freezer/sbx/d2/exec-1/cgroup.procs", "");
    must_ok(child->add_process(43));
    CHECK(get(dir / "fs/devices/sbx/d2/cgroup.procs") == "43");
    CHECK_FALSE(exists(dir / "fs/devices/sbx/d2/exec-1"));
  }

  TEST_CASE("limits with devices are not empty and their rules are validated") {
    CgroupLimits l;
    CHECK(l.empty());
    l.devices.push_back({'b', 8, 0, "r"});
    CHECK_FALSE(l.empty());
    must_ok(validate_cgroup_limits(l));
    l.devices.push_back({'c', 1, 99999999, "r"});
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.devices[1].minor:"));
  }

  TEST_CASE("the delegated files are the kernel's list, or the three it always delegated") {
    TempDir dir;
    CHECK(must(cd::read_delegate_files(dir / "missing")) ==
          std::vector<std::string>{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"});
    put(dir / "delegate", "cgroup.procs\ncgroup.threads\ncgroup.subtree_control\nmemory.oom.group\nmemory.reclaim\n");
    CHECK(must(cd::read_delegate_files(dir / "delegate")) ==
          std::vector<std::string>{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "memory.oom.group",
                                   "memory.reclaim"});
    put(dir / "bad", "cgroup.procs\n../../etc/passwd\n");
    auto bad = cd::read_delegate_files(dir / "bad");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message().find("'../../etc/passwd' is not a file name") != std::string::npos);
  }

  TEST_CASE("v2 delegation chowns the directory and the listed files it has, and nothing else") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    config.delegate_file = dir / "delegate";
    put(dir / "delegate", "cgroup.procs\ncgroup.subtree_control\nmemory.oom.group\n");
    auto manager = must(CgroupManager::open(config));
    auto cg = must(manager->create("g1", {}));
    for (const char* f : {"cgroup.procs", "cgroup.subtree_control", "cgroup.threads", "pids.max"}) {
      put(dir / (std::string("fs/sbx/g1/") + f));
    }
    // Without root, only to ourselves; as root, to ids nobody has.
    const uid_t uid = ::geteuid() == 0 ? 4242 : ::getuid();
    const gid_t gid = ::geteuid() == 0 ? 4343 : ::getgid();
    must_ok(cg->delegate(uid, gid));  // memory.oom.group is missing: skipped
    auto owner = [&](const std::string& rel) {
      struct stat st {};
      REQUIRE(::stat((dir / rel).c_str(), &st) == 0);
      return std::make_pair(st.st_uid, st.st_gid);
    };
    for (const char* rel : {"fs/sbx/g1", "fs/sbx/g1/cgroup.procs", "fs/sbx/g1/cgroup.subtree_control"}) {
      CHECK(owner(rel) == std::make_pair(uid, gid));
    }
    if (::geteuid() == 0) {
      CHECK(owner("fs/sbx/g1/cgroup.threads").first == 0);  // not in this kernel's list
      CHECK(owner("fs/sbx/g1/pids.max").first == 0);
      CHECK(owner("fs/sbx").first == 0);
    }
    auto missing = manager->attach("nope")->delegate(uid, gid);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().sys_errno() == ENOENT);
    CHECK_FALSE(manager->attach("../x")->delegate(uid, gid).ok());
  }

  TEST_CASE("v1 delegation is a no-op that succeeds") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
    auto manager = must(CgroupManager::open(config));
    auto cg = must(manager->create("n1", {}));
    struct stat before {};
    REQUIRE(::stat((dir / "fs/memory/sbx/n1").c_str(), &before) == 0);
    must_ok(cg->delegate(4242, 4343));
    struct stat after {};
    REQUIRE(::stat((dir / "fs/memory/sbx/n1").c_str(), &after) == 0);
    CHECK(after.st_uid == before.st_uid);
  }

  TEST_CASE("v1 needs every controller hierarchy but blkio") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV1, "1:memory:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "freezer"});
    auto manager = CgroupManager::open(config);
    REQUIRE_FALSE(manager.ok());
    CHECK(manager.error().message().find("pids") != std::string::npos);
  }

  TEST_CASE("a combined v1 mount is used once, with or without per-controller symlinks") {
    for (bool symlinks : {true, false}) {
      TempDir dir;
      auto config = fake_config(dir, CgroupMode::kV1, "3:memory:/\n2:cpu,cpuacct:/x\n1:pids:/\n4:freezer:/\n");
      make_v1_mounts(dir, {"memory", "cpu,cpuacct", "pids", "freezer"});
      if (symlinks) {
        REQUIRE(::symlink("cpu,cpuacct", (dir / "fs/cpu").c_str()) == 0);
        REQUIRE(::symlink("cpu,cpuacct", (dir / "fs/cpuacct").c_str()) == 0);
      }
      auto manager = must(CgroupManager::open(config));
      CHECK(manager->parent_paths() == std::vector<std::string>{dir / "fs/memory/sbx", dir / "fs/cpu,cpuacct/x/sbx",
                                                                dir / "fs/pids/sbx", dir / "fs/freezer/sbx"});
      auto cg = must(manager->create("c1", {}));
      CHECK(cg->paths().size() == 4);
      CHECK(cg->clone_into_fd() == -1);
      CHECK(exists(dir / "fs/cpu,cpuacct/x/sbx/c1"));
    }
  }

  TEST_CASE("v1 create makes the sandbox in every hierarchy, blkio only for io limits") {
    TempDir dir;
    auto config =
        fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n6:blkio:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer", "blkio"});
    auto manager = must(CgroupManager::open(config));
    CHECK(manager->parent_paths().size() == 6);
    auto cg = must(manager->create("b1", {}));
    CHECK(cg->paths().size() == 5);
    CHECK_FALSE(exists(dir / "fs/blkio/sbx/b1"));
    for (const char* h : {"memory", "cpu", "cpuacct", "pids", "freezer"}) {
      CHECK(exists(dir / (std::string("fs/") + h + "/sbx/b1")));
    }
    CHECK(must(manager->list()) == std::vector<std::string>{"b1"});
    CHECK(manager->attach("b1")->paths().size() == 5);

    // An id that exists fails, and what that attempt made is removed again.
    REQUIRE(make_dirs(dir / "fs/pids/sbx/b2").ok());
    auto again = manager->create("b2", {});
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message().find(dir / "fs/pids/sbx/b2") != std::string::npos);
    CHECK_FALSE(exists(dir / "fs/memory/sbx/b2"));
    CHECK_FALSE(exists(dir / "fs/cpu/sbx/b2"));
  }

  TEST_CASE("a failed v1 create removes every directory it made") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
    auto manager = must(CgroupManager::open(config));
    CgroupLimits l;
    l.memory_max = 64ull << 20;
    auto created = manager->create("f1", l);
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().message().find("memory.limit_in_bytes") != std::string::npos);
    for (const char* h : {"memory", "cpu", "cpuacct", "pids", "freezer"}) {
      CHECK_FALSE(exists(dir / (std::string("fs/") + h + "/sbx")));
    }
  }

  TEST_CASE("v1 check_supported refuses swap without memsw, and io without blkio") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
    auto manager = must(CgroupManager::open(config));
    CgroupLimits l;
    l.memory_max = 64ull << 20;
    l.memory_swap_max = 0;
    CHECK(error_of(manager->check_supported(l)).starts_with("limits.swap: swap accounting is not available"));
    put(dir / "fs/memory/memory.memsw.limit_in_bytes");
    must_ok(manager->check_supported(l));
    l.memory_max.reset();
    CHECK(error_of(manager->check_supported(l)).starts_with("limits.swap:"));
    l = {};
    l.io.push_back({"8:0", 1, {}, {}, {}});
    CHECK(error_of(manager->check_supported(l)).starts_with("limits.io: the blkio controller is not mounted"));
    l = {};
    l.vcpus = 2;
    CHECK(error_of(manager->check_supported(l)).starts_with("limits.vcpus:"));
  }

  TEST_CASE("v1 stats convert nanoseconds to microseconds") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
    put(dir / "fs/cpuacct/sbx/s1/cpuacct.usage", "5000999\n");
    put(dir / "fs/cpu/sbx/s1/cpu.stat", "nr_periods 7\nnr_throttled 2\nthrottled_time 3000000\n");
    put(dir / "fs/memory/sbx/s1/memory.usage_in_bytes", "65536\n");
    put(dir / "fs/memory/sbx/s1/memory.max_usage_in_bytes", "131072\n");
    put(dir / "fs/memory/sbx/s1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
    put(dir / "fs/pids/sbx/s1/pids.current", "4\n");
    auto manager = must(CgroupManager::open(config));
    CgroupStats s = must(manager->attach("s1")->stats());
    CHECK(s.cpu_usage_usec == 5000);
    CHECK(s.cpu_nr_periods == 7);
    CHECK(s.cpu_nr_throttled == 2);
    CHECK(s.cpu_throttled_usec == 3000);
    CHECK(s.memory_current == 65536);
    CHECK(s.memory_peak == 131072);
    CHECK(s.oom_kills == 3);
    CHECK(s.pids_current == 4);
  }

  TEST_CASE("a v2 exec child is one directory below the sandbox's, entered through its cgroup.procs") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    auto manager = must(CgroupManager::open(config));
    auto sandbox = must(manager->create("box", {}));
    auto child = must(sandbox->create_child("exec-1"));
    CHECK(child->id() == "box/exec-1");
    CHECK(child->paths() == std::vector<std::string>{dir / "fs/sbx/box/exec-1"});
    CHECK(child->clone_into_fd() >= 0);
    CHECK_FALSE(exists(dir / "fs/sbx/box/cgroup.subtree_control"));  // nothing enabled for the child
    CHECK_FALSE(sandbox->create_child("exec-1").ok());
    CHECK_FALSE(sandbox->create_child("../x").ok());
    CHECK(must(sandbox->children()) == std::vector<std::string>{"exec-1"});
    put(dir / "fs/sbx/box/exec-1/cgroup.procs", "");
    Fd entry = must(child->open_entry());
    CHECK(::write(entry.get(), "0", 1) == 1);
    CHECK(get(dir / "fs/sbx/box/exec-1/cgroup.procs") == "0");
    CHECK(manager->attach("box")->attach_child("exec-1")->paths() == child->paths());
    CHECK(sandbox->attach_child("a/b")->paths().empty());
    // The manager lists sandboxes, never their children.
    CHECK(must(manager->list()) == std::vector<std::string>{"box"});
  }

  TEST_CASE("members of a sandbox include those of its child cgroups") {
    TempDir dir;
    for (CgroupMode mode : {CgroupMode::kV2, CgroupMode::kV1}) {
      auto config = fake_config(dir, mode, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n0::/\n");
      make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
      auto manager = must(CgroupManager::open(config));
      std::string base = mode == CgroupMode::kV2 ? dir / "fs/sbx/m1" : dir / "fs/freezer/sbx/m1";
      put(base + "/cgroup.procs", "10\n");
      put(base + "/exec-a/cgroup.procs", "11\n12\n");
      put(base + "/exec-b/cgroup.procs", "");
      auto members = must(manager->attach("m1")->members());
      std::sort(members.begin(), members.end());
      CHECK(members == std::vector<pid_t>{10, 11, 12});
      CHECK(must(manager->attach("m1")->attach_child("exec-a")->members()) == std::vector<pid_t>{11, 12});
      CHECK(must(manager->attach("m1")->children()) == std::vector<std::string>{"exec-a", "exec-b"});
      REQUIRE(remove_tree(dir / "fs").ok());
    }
  }

  TEST_CASE("a v1 exec child exists in the freezer hierarchy only and is entered there and in the sandbox's others") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV1, "1:memory:/\n2:cpu,cpuacct:/\n4:pids:/\n5:freezer:/\n");
    make_v1_mounts(dir, {"memory", "cpu,cpuacct", "pids", "freezer"});
    auto manager = must(CgroupManager::open(config));
    auto sandbox = must(manager->create("v1box", {}));
    auto child = must(sandbox->create_child("exec-1"));
    CHECK(child->paths() == std::vector<std::string>{dir / "fs/freezer/sbx/v1box/exec-1"});
    CHECK_FALSE(exists(dir / "fs/memory/sbx/v1box/exec-1"));
    CHECK_FALSE(exists(dir / "fs/pids/sbx/v1box/exec-1"));
    CHECK(child->clone_into_fd() == -1);
    for (const char* h : {"memory", "cpu,cpuacct", "pids", "freezer"}) {
      put(dir / (std::string("fs/") + h + "/sbx/v1box/cgroup.procs"), "");
    }
    put(dir / "fs/freezer/sbx/v1box/exec-1/cgroup.procs", "");
    must_ok(child->add_process(42));
    for (const char* h : {"memory", "cpu,cpuacct", "pids"}) {
      CHECK(get(dir / (std::string("fs/") + h + "/sbx/v1box/cgroup.procs")) == "42");
    }
    CHECK(get(dir / "fs/freezer/sbx/v1box/cgroup.procs").empty());
    CHECK(get(dir / "fs/freezer/sbx/v1box/exec-1/cgroup.procs") == "42");
    Fd entry = must(child->open_entry());
    CHECK(entry.valid());
    CHECK_FALSE(sandbox->open_entry().ok());  // several hierarchies: only add_process places a process
    CHECK(must(sandbox->children()) == std::vector<std::string>{"exec-1"});
  }

  TEST_CASE("remove_if_empty keeps a child cgroup with members and removes an empty one") {
    TempDir dir;
    for (CgroupMode mode : {CgroupMode::kV2, CgroupMode::kV1}) {
      auto config = fake_config(dir, mode, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n0::/\n");
      make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
      auto manager = must(CgroupManager::open(config));
      auto sandbox = must(manager->create("r1", {}));
      auto busy = must(sandbox->create_child("exec-busy"));
      auto idle = must(sandbox->create_child("exec-idle"));
      const std::string busy_dir = busy->paths().front();
      put(busy_dir + "/cgroup.procs", "77\n");
      CHECK_FALSE(must(busy->remove_if_empty()));
      CHECK(exists(busy_dir));
      CHECK(must(idle->remove_if_empty()));
      CHECK_FALSE(exists(idle->paths().front()));
      CHECK(must(idle->remove_if_empty()));  // gone already
      CHECK(must(sandbox->children()) == std::vector<std::string>{"exec-busy"});
      REQUIRE(remove_tree(dir / "fs").ok());
    }
  }

  TEST_CASE("the sweep removes empty children with the prefix and leaves busy, young and other ones") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    auto manager = must(CgroupManager::open(config));
    auto sandbox = must(manager->create("s1", {}));
    for (const char* name : {"exec-a", "exec-b", "exec-c", "other"}) {
      must(sandbox->create_child(name));
    }
    put(dir / "fs/sbx/s1/exec-b/cgroup.procs", "5\n");
    // Everything was just made: too young for a sweep that wants a minute of age.
    CHECK(must(sandbox->remove_empty_children("exec-", std::chrono::minutes(1))) == 0);
    CHECK(must(sandbox->remove_empty_children("exec-", std::chrono::milliseconds(0))) == 2);
    CHECK(must(sandbox->children()) == std::vector<std::string>{"exec-b", "other"});
  }

  TEST_CASE("an invalid sandbox id gives children that touch nothing") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kV2, "0::/\n");
    auto manager = must(CgroupManager::open(config));
    auto bad = manager->attach("../etc");
    CHECK_FALSE(bad->create_child("exec-1").ok());
    CHECK(must(bad->children()).empty());
    CHECK(must(bad->attach_child("exec-1")->remove_if_empty()));
    CHECK(must(bad->remove_empty_children("exec-", std::chrono::milliseconds(0))) == 0);
  }

  TEST_CASE("auto mode picks v1 when the root is not a cgroup2 mount") {
    TempDir dir;
    auto config = fake_config(dir, CgroupMode::kAuto, "1:memory:/\n2:cpu:/\n3:cpuacct:/\n4:pids:/\n5:freezer:/\n");
    make_v1_mounts(dir, {"memory", "cpu", "cpuacct", "pids", "freezer"});
    CHECK(must(CgroupManager::open(config))->mode() == CgroupMode::kV1);
  }
}

}  // namespace
}  // namespace sbx::rt
