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
//
// A sandbox with a user namespace cannot build step 2 itself: its root holds no capability over the host's file
// systems, an overlay it mounted could not read the layers' trusted.overlay.* xattrs, and the layers' files (owned by
// the host's ids) would show up as nobody inside. So the parent, the host's root, builds that step inside the
// child's mount namespace (stage_userns_root): every layer and bind source is cloned as an idmapped mount
// (MOUNT_ATTR_IDMAP with the sandbox's user namespace, Linux 5.12; overlayfs over idmapped layers, 5.19; tmpfs
// sources, 6.3), the overlay is mounted from them with upper/work owned by the sandbox's root, and the bind sources
// are staged under <dir>/binds/ for the child to attach after pivot_root. Layers are shared and never chowned: a
// file owned by host uid N shows as uid N inside, and what the sandbox writes lands on the host as its mapped ids.
// Device nodes cannot be made inside a user namespace: the standard ones are bound from the host's /dev.
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
  std::string lower;    // <dir>/lower: mount points of the idmapped layers while the overlay is made (user namespace)
  std::string binds;    // <dir>/binds: the idmapped bind sources, staged for the child (user namespace)
  explicit SandboxPaths(const std::string& sandbox_dir)
      : dir(sandbox_dir),
        rootfs(dir + "/rootfs"),
        rw(dir + "/rw"),
        state(dir + "/state.json"),
        seccomp(dir + "/seccomp.bpf"),
        netdev(dir + "/netdev"),
        lower(dir + "/lower"),
        binds(dir + "/binds") {}
  std::string lower_at(size_t i) const { return lower + "/" + std::to_string(i); }
  std::string bind_at(size_t i) const { return binds + "/" + std::to_string(i); }
};

// The overlay's mount options for the plan (pure; exposed for tests).
Result<std::string> overlay_options(const RootfsPlan& root, const SandboxPaths& paths);

// Parent side, before the child is created, for a sandbox with a user namespace: the mount points the staging needs
// (<dir>/lower/N, <dir>/binds/N), and the run dir opened up (0711) so that the sandbox's root can reach its rootfs
// dir through it. Nothing in the run dir itself becomes the sandbox's.
Result<void> make_userns_mount_points(const Plan& plan, const SandboxPaths& paths);

// Parent side, for a sandbox with a user namespace (see above): the root and the staged bind sources, made inside
// the mount namespace of the child behind `child_pidfd`, idmapped through `userns_fd`. Returns to the caller's own
// mount namespace (and cwd) before it returns, on every path.
Result<void> stage_userns_root(const Plan& plan, const SandboxPaths& paths, int child_pidfd, int userns_fd);

// Child side: runs all the steps above. On return the process's root and cwd are the sandbox's "/". With a user
// namespace the root and the bind sources were staged by the parent.
Result<void> setup_rootfs(const Plan& plan, const SandboxPaths& paths);

}  // namespace sbx::rt
