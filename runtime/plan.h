#pragma once
// Plan: the fully resolved description of one sandbox, the only input runtime::create() takes. The daemon translates
// a user's request into a Plan; nothing here is a default that the kernel has not been told about explicitly,
// except where default_plan() fills one in.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/ipv4.h"
#include "runtime/cgroup.h"

namespace sbx::rt {

struct RootfsPlan {
  // Read-only layers of the overlay, topmost first. With read_only: one is bound read-only as the root, several are
  // an overlay without an upper layer, mounted read-only.
  std::vector<std::string> lower_dirs;
  bool read_only = false;
  // Overlay upper/work on a tmpfs of this many bytes (bounds the sandbox's disk use). Unset: a directory under the
  // sandbox's run dir, on the host's disk.
  std::optional<uint64_t> upper_tmpfs_size;
};

struct BindMount {
  std::string source;       // host path, file or directory
  std::string destination;  // absolute path inside the sandbox; created if missing
  bool read_only = true;    // always nosuid,nodev
};

// A host device node made visible inside the sandbox (CDI passthrough): bind-mounted from `host_path` to `path`, and
// allowed by the sandbox's device cgroup policy. Only these and the standard nodes (/dev/null, zero, full, random,
// urandom, tty, the sandbox's own pts) can be opened.
struct DeviceNodePlan {
  std::string path;       // absolute path inside the sandbox, e.g. /dev/nvidia0
  std::string host_path;  // the node on the host
  char type = 'c';        // 'c' or 'b'
  uint32_t major = 0;
  uint32_t minor = 0;
  std::string access = "rw";  // what the device cgroup allows: some of "rwm"
};

// One line of /proc/<pid>/uid_map or gid_map: ids inside..inside+count-1 are host ids host..host+count-1.
struct IdMapping {
  uint32_t inside = 0;
  uint32_t host = 0;
  uint32_t count = 0;
};

// A user namespace of the sandbox's own: every other namespace belongs to it, so root inside holds capabilities only
// over the sandbox's objects. Image layers and bind sources are idmapped into it (MOUNT_ATTR_IDMAP) rather than
// chowned; what the sandbox writes lands on the host owned by the mapped ids.
struct UserNamespacePlan {
  std::vector<IdMapping> uid_map;  // at most 340 lines (the kernel's limit); non-overlapping
  std::vector<IdMapping> gid_map;
  // The host uid/gid of uid/gid 0 inside (its run dir, upper layer and cgroup are given to it). Derived.
  uint32_t host_root_uid() const;
  uint32_t host_root_gid() const;
};

// A process to run in the sandbox: the main command (run by init) or an exec.
struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] without a '/' is looked up in the PATH of `env`
  std::vector<std::string> env;   // "NAME=value"
  std::string cwd = "/";          // inside the sandbox
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups
  // Borrowed fds for stdio; -1 means /dev/null.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

struct Rlimits {
  std::optional<uint64_t> nofile;  // soft = hard
  std::optional<uint64_t> nproc;
  std::optional<uint64_t> fsize;  // bytes
  uint64_t core = 0;
};

struct SecurityPlan {
  std::vector<std::string> keep_caps;  // "CAP_NET_BIND_SERVICE"...; everything else is dropped from every set
  std::string seccomp_profile;         // path of an OCI-format JSON profile; empty: no filter
  Rlimits rlimits;
};

// A sandbox's network beyond loopback: a veth pair whose host end joins a bridge the daemon made, and whose other
// end is the sandbox's eth0 with `address`, a default route via `gateway` and `mtu`. What the sandbox may reach is
// the firewall's business (the daemon's), not the plan's.
struct NetworkPlan {
  std::string host_ifname;  // the veth's host end, up to 15 bytes: named by the daemon, unique among live sandboxes
  std::string bridge;       // an existing bridge
  Ipv4Net address;          // eth0's address and the subnet's prefix: 10.66.0.5/16
  uint32_t gateway = 0;     // host byte order: the bridge's address
  uint32_t mtu = 1500;
};

struct Plan {
  std::string id;  // [a-z0-9][a-z0-9_.-]{0,63}; names the run dir and the cgroup
  std::string hostname;
  RootfsPlan root;
  std::vector<BindMount> mounts;
  uint64_t dev_shm_size = 64ull << 20;
  uint64_t tmp_size = 256ull << 20;
  std::vector<std::string> masked_paths;    // inside the sandbox; missing ones are skipped
  std::vector<std::string> readonly_paths;  // likewise
  CgroupLimits limits;
  SecurityPlan security;
  std::optional<ProcessSpec> main;  // run by init as its child; none: init idles until stopped
  std::optional<NetworkPlan> network;  // none: the sandbox's own network namespace has only lo
  // None: the host's user namespace (root inside is the host's root; only for workloads that need host uids).
  std::optional<UserNamespacePlan> userns;
  std::vector<DeviceNodePlan> devices;  // beyond the standard nodes
};

// A Plan with the masked and read-only paths every sandbox gets (those of runc/crun) and the given id and rootfs.
Plan default_plan(std::string id, std::vector<std::string> lower_dirs);

// Checks a plan before anything is created: ids, paths (lower dirs exist and are directories, bind sources exist),
// limits in range, capability names known, argv/env well formed. Errors name the field ("mounts[1].destination:
// must be an absolute path").
Result<void> validate_plan(const Plan& plan);
Result<void> validate_process(const ProcessSpec& proc, std::string_view field);
Result<void> validate_id(std::string_view id);
Result<void> validate_network(const NetworkPlan& net);
Result<void> validate_userns(const UserNamespacePlan& userns);

}  // namespace sbx::rt
