#pragma once
// cgroups: one interface, two back ends chosen at run time.
//   v2 (unified): one directory per sandbox; memory.max, memory.swap.max, cpu.max, cpu.weight, pids.max, io.max;
//                 placement with clone3(CLONE_INTO_CGROUP); teardown with cgroup.kill.
//   v1 (legacy or hybrid hosts): one directory per sandbox in each of the memory, cpu, cpuacct, pids, freezer and
//                 devices (and blkio when io limits are given) hierarchies; placement by writing cgroup.procs;
//                 teardown by freezing, SIGKILLing every member, thawing.
// Sandbox cgroups live at <parent>/<id>; each exec's process tree lives in a child cgroup <parent>/<id>/exec-<unique>
// (see Cgroup::create_child) so that it can be killed without touching the rest of the sandbox. The parent defaults
// to "<the caller's own cgroup>/sbx" in each hierarchy, so nothing is ever created at a hierarchy's root and the
// caller is never moved. Nothing above the parent is ever written to.
//
// Devices: every sandbox cgroup gets a device allow-list when it is created, before any process enters it:
// standard_device_rules() plus CgroupLimits::devices; every other device node is refused (EPERM on open and mknod).
// v2: a BPF_CGROUP_DEVICE program attached to the sandbox's directory; v1: the devices hierarchy's devices.deny and
// devices.allow. A v1 host whose kernel has no devices controller (no devices hierarchy mounted) gets no device
// policy: nothing there could enforce one. Exec child cgroups inherit the policy (v2: the program runs for every
// descendant; v1: their processes stay in the sandbox's devices cgroup). See runtime/device_policy.h.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace sbx::rt {

struct IoLimit {
  std::string device;  // "MAJOR:MINOR" of a block device
  std::optional<uint64_t> rbps, wbps, riops, wiops;
};

// One entry of a device allow-list: type 'c' (char), 'b' (block) or 'a' (all), major and minor (-1: any), and the
// access allowed, some of "rwm" (read, write, mknod).
struct DeviceRule {
  char type = 'c';
  int64_t major = -1;
  int64_t minor = -1;
  std::string access = "rwm";
};

struct CgroupLimits {
  std::optional<uint64_t> memory_max;       // bytes
  std::optional<uint64_t> memory_swap_max;  // bytes of swap allowed on top of memory (v2 meaning)
  std::optional<double> vcpus;              // CPU bandwidth: cpu.max = vcpus * 100000us per 100000us
  std::optional<uint32_t> cpu_weight;       // 1..10000 (v2 cpu.weight; v1 cpu.shares converted)
  std::optional<uint64_t> pids_max;
  std::vector<IoLimit> io;
  // Device nodes allowed beyond the standard ones every sandbox gets (standard_device_rules()): everything else is
  // denied (v1: the devices controller; v2: a BPF_CGROUP_DEVICE program).
  std::vector<DeviceRule> devices;

  bool empty() const {
    return !memory_max && !memory_swap_max && !vcpus && !cpu_weight && !pids_max && io.empty() && devices.empty();
  }
};

// The device nodes every sandbox may use, as runc and crun allow them by default, each "rwm": c 1:3 (null), 1:5
// (zero), 1:7 (full), 1:8 (random), 1:9 (urandom), 5:0 (tty), 5:2 (ptmx), 136:* (pts). No block device.
std::vector<DeviceRule> standard_device_rules();

// Pure range checks; errors name the field ("limits.memory: 1024 is below the minimum of 4 MiB").
Result<void> validate_cgroup_limits(const CgroupLimits& limits);

struct CgroupStats {
  uint64_t cpu_usage_usec = 0;
  uint64_t cpu_nr_periods = 0;
  uint64_t cpu_nr_throttled = 0;
  uint64_t cpu_throttled_usec = 0;
  uint64_t memory_current = 0;  // bytes
  uint64_t memory_peak = 0;     // bytes; 0 when the kernel does not keep it
  uint64_t oom_kills = 0;
  uint64_t pids_current = 0;
};

enum class CgroupMode { kAuto, kV2, kV1 };

struct CgroupConfig {
  CgroupMode mode = CgroupMode::kAuto;  // kAuto: v2 when `root` is a cgroup2 mount, else v1
  // v2: the cgroup2 mount point. v1: the directory holding one mount per controller (memory/, cpu/, ...).
  std::string root = "/sys/fs/cgroup";
  // Path of the parent inside each hierarchy ("/system.slice/sbxd.service/sbx"). Empty: the caller's own cgroup in
  // that hierarchy (from /proc/self/cgroup) plus "/" + parent_name. Created on demand. Never the hierarchy's root,
  // the caller's own cgroup or one of its ancestors.
  std::string parent;
  // Last component of the default parent (used when `parent` is empty); tests use one of their own.
  std::string parent_name = "sbx";
  // Where to read the caller's own cgroups from (tests point this at a fixture).
  std::string self_cgroup_file = "/proc/self/cgroup";
  // v2: the kernel's list of the files a delegatee gets (Cgroup::delegate); tests point this at a fixture.
  std::string delegate_file = "/sys/kernel/cgroup/delegate";
};

// One sandbox's cgroup (one directory on v2, one per hierarchy on v1).
class Cgroup {
 public:
  virtual ~Cgroup() = default;
  const std::string& id() const { return id_; }

  // v2: an O_DIRECTORY fd of the cgroup for clone3(CLONE_INTO_CGROUP). v1: -1 (use add_process).
  virtual int clone_into_fd() const = 0;
  // Moves `pid` into the cgroup (every hierarchy on v1).
  virtual Result<void> add_process(pid_t pid) = 0;
  virtual Result<CgroupStats> stats() const = 0;
  // stats().oom_kills alone, from the one file that holds it (it is read before and after every exec).
  virtual Result<uint64_t> oom_kills() const = 0;
  virtual Result<void> freeze(bool frozen) = 0;
  // Pids of the members, child cgroups included (v2: cgroup.procs; v1: the freezer hierarchy's, else the first
  // one's).
  virtual Result<std::vector<pid_t>> members() const = 0;
  // SIGKILLs every member, child cgroups included, and waits (bounded, a few seconds) until none is left. A missing
  // cgroup is success.
  virtual Result<void> kill_all() = 0;
  // kill_all, then removes every directory of this cgroup and of its children. A missing cgroup is success;
  // idempotent.
  virtual Result<void> remove() = 0;
  // The directories this cgroup has (or would have), for messages and leak checks.
  virtual std::vector<std::string> paths() const = 0;
  // Hands the cgroup to uid:gid (the host ids of root in a sandbox's user namespace), as the kernel's delegation
  // rules have it (Documentation/admin-guide/cgroup-v2.rst, "Delegation"). v2: chowns the cgroup's directory and the
  // files the kernel lists in /sys/kernel/cgroup/delegate (cgroup.procs, cgroup.threads, cgroup.subtree_control,
  // ...; those three when the list is missing; a listed file the cgroup lacks is skipped), so that the sandbox's root
  // can make child cgroups, move its processes among them and enable controllers for them, while the limits written
  // by sbx stay root's. v1: a successful no-op: v1 has no safe delegation (a delegatee could raise its own limits),
  // so the sandbox's root can read its cgroup but not manage it.
  virtual Result<void> delegate(uid_t uid, gid_t gid) = 0;

  // Child cgroups, one per exec: <this>/<name>, `name` one path component. v2: one directory; no controller is
  // enabled in this cgroup's subtree_control, so this cgroup's limits and stats still cover it. v1: a directory in
  // the freezer hierarchy only (what killing a tree needs); a process that enters it stays in this cgroup in every
  // other hierarchy, where it counts against the limits as before (the child's add_process writes both). EEXIST is an
  // error.
  virtual Result<std::unique_ptr<Cgroup>> create_child(const std::string& name) = 0;
  // For a cgroup with one directory (any v2 cgroup, a v1 child): its cgroup.procs opened for writing. A process
  // enters the cgroup by writing "0" to it, which works from inside the sandbox's namespaces too.
  virtual Result<Fd> open_entry() const = 0;
  // A handle on <this>/<name> whether or not it exists (an invalid name gives a handle that touches no path).
  virtual std::unique_ptr<Cgroup> attach_child(const std::string& name) const = 0;
  // Names of the existing child cgroups, sorted.
  virtual Result<std::vector<std::string>> children() const = 0;
  // Removes this cgroup (and its empty children) if no process is left in it: true when it is gone or never was,
  // false when a process is still there (then nothing of it is removed). Never kills.
  virtual Result<bool> remove_if_empty() = 0;

  // The sweep: removes the child cgroups whose name starts with `prefix` that are empty and older than `min_age`
  // (younger ones may belong to an exec that is still being placed). Returns how many it removed.
  Result<size_t> remove_empty_children(std::string_view prefix, std::chrono::milliseconds min_age);

 protected:
  explicit Cgroup(std::string id) : id_(std::move(id)) {}

 private:
  std::string id_;
};

class CgroupManager {
 public:
  // Detects the mode (for kAuto), finds the parent in every hierarchy; creates nothing.
  static Result<std::unique_ptr<CgroupManager>> open(const CgroupConfig& config);
  virtual ~CgroupManager() = default;

  virtual CgroupMode mode() const = 0;
  // Checks, before anything is created, that every limit in `limits` has its controller available.
  virtual Result<void> check_supported(const CgroupLimits& limits) const = 0;
  // Creates the parent if needed, then <parent>/<id> (EEXIST is an error), gives it its device policy
  // (standard_device_rules() and limits.devices) and writes the limits. On any failure nothing of <parent>/<id> is
  // left behind.
  virtual Result<std::unique_ptr<Cgroup>> create(const std::string& id, const CgroupLimits& limits) = 0;
  // A handle on <parent>/<id> whether or not it exists, for stats and idempotent teardown by id.
  virtual std::unique_ptr<Cgroup> attach(const std::string& id) const = 0;
  // Ids of the sandbox cgroups that exist under the parent.
  virtual Result<std::vector<std::string>> list() const = 0;
  // Removes the parent directories if they are empty (tests use a parent of their own); missing is success.
  virtual Result<void> remove_parent() = 0;
  // The parent directories, one per hierarchy.
  virtual std::vector<std::string> parent_paths() const = 0;
};

}  // namespace sbx::rt
