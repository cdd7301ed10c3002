#pragma once
// Private to the cgroup module (cgroup.cc, cgroup_v2.cc, cgroup_v1.cc): helpers the two back ends share, and the
// pure pieces (parsing, limit formatting, limit writing) that the unit tests call directly on a temp directory.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "runtime/cgroup.h"

namespace sbx::rt::cgroup_detail {

inline constexpr uint64_t kCpuPeriodUs = 100000;
inline constexpr uint64_t kMinCpuQuotaUs = 1000;
// Bound on waiting for a freeze to settle and for killed members to be gone.
inline constexpr std::chrono::milliseconds kSettleTimeout{5000};

// One line of /proc/<pid>/cgroup: "4:memory:/a/b", "1:cpu,cpuacct:/", "9:name=systemd:/", "0::/a" (v2).
struct SelfCgroup {
  unsigned hierarchy_id = 0;
  std::vector<std::string> controllers;  // empty for the v2 line
  std::string path;                      // normalized: "/" or "/a/b"
};

Result<std::vector<SelfCgroup>> parse_self_cgroup(std::string_view text);
Result<std::vector<SelfCgroup>> read_self_cgroup(const std::string& file);
// The caller's cgroup in the hierarchy of `controller`; an empty `controller` selects the v2 ("0::") line.
std::optional<std::string> own_cgroup(const std::vector<SelfCgroup>& entries, std::string_view controller);

// "/a//b/" -> "/a/b"; "" and "/" -> "/". Refuses "." and ".." components and relative paths.
Result<std::string> normalize_cgroup_path(std::string_view path);
// Mount point (or hierarchy directory) + a normalized cgroup path: ("/sys/fs/cgroup", "/a") -> "/sys/fs/cgroup/a".
std::string cgroup_dir(const std::string& root, const std::string& path);
// Every proper ancestor of a normalized path and the path itself, top-down, without "/": "/a/b" -> {"/a", "/a/b"}.
std::vector<std::string> path_prefixes(const std::string& path);
// The parent's path inside one hierarchy, from the config and the caller's own cgroup there (nullopt: unknown).
// `hierarchy` names the hierarchy in messages.
Result<std::string> resolve_parent(const CgroupConfig& config, const std::optional<std::string>& own,
                                   std::string_view hierarchy);
// A sandbox id must be one plain path component.
Result<void> check_id(std::string_view id);
// What attach() returns for an id that fails check_id: nothing of it can exist, so kill_all and remove succeed,
// members are none, and everything else fails with EINVAL. Never touches a path.
std::unique_ptr<Cgroup> invalid_cgroup(const std::string& id);

// Limit formatting.
uint64_t cpu_quota_us(double vcpus);
uint64_t cpu_shares_from_weight(uint32_t weight);  // crun/systemd: 2 + ((weight - 1) * 262142) / 9999
std::string io_max_line(const IoLimit& io);        // "8:0 rbps=1 wbps=2 riops=3 wiops=4" (only the given keys)
// v2 controllers the limits need, in the order they are enabled: memory, cpu, pids, io.
std::vector<std::string> v2_controllers_for(const CgroupLimits& limits);
// The field named in errors about a controller ("limits.memory" for memory), for the first limit needing it.
std::string limit_field_for(const CgroupLimits& limits, std::string_view controller);

// Writes every given limit into a v2 cgroup directory whose interface files exist.
Result<void> write_v2_limits(const std::string& dir, const CgroupLimits& limits);

// The directories of one v1 cgroup that limits are written into; empty when that controller is not used.
struct V1LimitDirs {
  std::string memory;
  std::string cpu;
  std::string pids;
  std::string blkio;
};
// Writes every given limit into v1 cgroup directories whose interface files exist.
Result<void> write_v1_limits(const V1LimitDirs& dirs, const CgroupLimits& limits);

// Whether `path` is on a cgroup2 file system.
Result<bool> is_cgroup2_mount(const std::string& path);

// Delegation (v2): the file names listed in the kernel's delegate file (one a line); the three the kernel has always
// delegated (cgroup.procs, cgroup.threads, cgroup.subtree_control) when the file is missing (before Linux 4.15).
Result<std::vector<std::string>> read_delegate_files(const std::string& file);
// chown of the directory `dirfd` (shown as `dir` in errors) and of `files` in it to uid:gid; a file the directory
// lacks (memory.oom.group without the memory controller) is skipped.
Result<void> chown_for_delegation(int dirfd, const std::string& dir, const std::vector<std::string>& files, uid_t uid,
                                  gid_t gid);

// Small file-system helpers.
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// Whitespace-separated words of a file (cgroup.controllers); a missing file gives none.
Result<std::vector<std::string>> read_words(const std::string& path);
// The value of "key N" in a flat-keyed file (cpu.stat, memory.events); nullopt when the file or key is missing.
Result<std::optional<uint64_t>> read_keyed_u64(const std::string& path, std::string_view key);
// A file holding a single number; nullopt when the file is missing.
Result<std::optional<uint64_t>> read_single_u64(const std::string& path);
// Pids in a cgroup.procs file.
Result<std::vector<pid_t>> read_pids(const std::string& procs_file);
// Pids in the cgroup at `dir` and every cgroup below it; a directory (or cgroup.procs) that is gone holds none.
Result<std::vector<pid_t>> pids_in_tree(const std::string& dir);
// Names of the subdirectories of `dir`, sorted; a missing `dir` gives none.
Result<std::vector<std::string>> list_subdirs(const std::string& dir);
// mkdir; returns whether it was created (false: it already existed).
Result<bool> make_dir(const std::string& path);
// Removes a cgroup directory and any child cgroups in it, depth first; retries EBUSY briefly (the kernel may still be
// releasing exited members). A missing directory is success.
Result<void> remove_cgroup_dir(const std::string& path);
// Removes a cgroup directory and its child cgroups if no process is in any of them: true when it is gone (or never
// was), false when a process is still there. Retries EBUSY briefly while no member is listed (the kernel may still be
// releasing exited members), then gives up with false.
Result<bool> remove_cgroup_dir_if_empty(const std::string& path);
// rmdir of each path in reverse order, ignoring errors: the rollback of a failed create.
void rollback_dirs(const std::vector<std::string>& created);
// SIGKILL every pid, ignoring ESRCH.
void kill_pids(const std::vector<pid_t>& pids);
void sleep_for(std::chrono::milliseconds ms);

Result<std::unique_ptr<CgroupManager>> open_v2(const CgroupConfig& config, const std::vector<SelfCgroup>& self);
Result<std::unique_ptr<CgroupManager>> open_v1(const CgroupConfig& config, const std::vector<SelfCgroup>& self);

}  // namespace sbx::rt::cgroup_detail
