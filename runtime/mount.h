#pragma once
// The sandbox's filesystem, built in the child inside its new mount namespace:
//   1. make every mount private, so nothing propagates back to the host;
//   2. the root: an overlay of the plan's lower dirs with upper/work under <sandbox_dir>/rw (on a size-capped tmpfs
//      when asked), or a read-only bind of one dir; bind-mount sources are cloned (open_tree) while the host is
//      still visible;
//   3. pivot_root into it and detach the old root;
//   4. /proc, a minimal /dev (device nodes, devpts, shm), read-only /sys, /tmp, the bind mounts, masked and read-only
//      paths, and finally the read-only remount of / for a read-only root.
// Every mount target is opened component by component without following symlinks, so a symlink in an image can
// never redirect a mount. Nothing here outlives the mount namespace: the host sees no mount of a sandbox.
#include <string>

#include "base/error.h"
#include "runtime/plan.h"

namespace sbx::rt {

// Paths of a sandbox's run dir, shared by the parent (which creates them) and the child (which mounts on them).
struct SandboxPaths {
  std::string dir;     // <run_root>/<id>
  std::string rootfs;  // <dir>/rootfs: the overlay is mounted here, then pivoted into
  std::string rw;      // <dir>/rw: holds upper/ and work/ (a tmpfs inside the sandbox's namespace when size-capped)
  std::string state;   // <dir>/state.json
  std::string seccomp;  // <dir>/seccomp.bpf: the compiled seccomp filter every exec installs
  std::string netdev;   // <dir>/netdev: the name of the host end of the sandbox's veth (net_counters reads it)
  explicit SandboxPaths(const std::string& sandbox_dir)
      : dir(sandbox_dir),
        rootfs(dir + "/rootfs"),
        rw(dir + "/rw"),
        state(dir + "/state.json"),
        seccomp(dir + "/seccomp.bpf"),
        netdev(dir + "/netdev") {}
};

// The overlay's mount options for the plan (pure; exposed for tests).
Result<std::string> overlay_options(const RootfsPlan& root, const SandboxPaths& paths);

// Child side: runs all the steps above. On return the process's root and cwd are the sandbox's "/".
Result<void> setup_rootfs(const Plan& plan, const SandboxPaths& paths);

}  // namespace sbx::rt
