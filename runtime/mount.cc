#include "runtime/mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <optional>
#include <vector>

#include "base/fd.h"
#include "base/file.h"

namespace sbx::rt {

namespace {

enum class Leaf { kDir, kFile };

// Opens (creating when `create`) the path `path` below "/" with O_PATH, refusing symlinks in every component.
Result<Fd> open_target(const std::string& path, Leaf leaf, bool create) {
  SBX_ASSIGN(Fd cur, open_at(AT_FDCWD, "/", O_PATH | O_DIRECTORY));
  size_t pos = 0;
  while (pos < path.size()) {
    size_t start = path.find_first_not_of('/', pos);
    if (start == std::string::npos) {
      break;
    }
    size_t end = path.find('/', start);
    std::string name = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    bool last = end == std::string::npos || path.find_first_not_of('/', end) == std::string::npos;
    pos = end == std::string::npos ? path.size() : end;
    bool want_dir = !last || leaf == Leaf::kDir;
    if (create && want_dir && ::mkdirat(cur.get(), name.c_str(), 0755) < 0 && errno != EEXIST) {
      return sys_error("create directory '{}'", path);
    }
    // mknod, not open(O_CREAT): opening whatever the image put there (a FIFO) could block forever.
    if (create && !want_dir && ::mknodat(cur.get(), name.c_str(), S_IFREG | 0644, 0) < 0 && errno != EEXIST) {
      return sys_error("create file '{}'", path);
    }
    int flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0);
    int next = ::openat(cur.get(), name.c_str(), flags);
    if (next < 0) {
      return sys_error("open '{}' (symlinks are not followed)", path);
    }
    cur.reset(next);
  }
  struct stat st {};
  if (::fstat(cur.get(), &st) < 0) {
    return sys_error("stat '{}'", path);
  }
  if (S_ISLNK(st.st_mode)) {
    return Error(fmt::format("open '{}': is a symlink; mount targets must not be", path), ELOOP);
  }
  return cur;
}

Result<void> move_mount_to(int mnt_fd, const std::string& target, Leaf leaf, bool create) {
  SBX_ASSIGN(Fd dst, open_target(target, leaf, create));
  if (::move_mount(mnt_fd, "", dst.get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    return sys_error("move mount onto '{}'", target);
  }
  return ok();
}

struct FsOption {
  const char* key;
  std::string value;  // empty: a flag
};

// A new detached mount of filesystem `type` (fsopen/fsconfig/fsmount).
Result<Fd> new_fs(const char* type, const std::vector<FsOption>& options, unsigned attrs) {
  int fs = ::fsopen(type, FSOPEN_CLOEXEC);
  if (fs < 0) {
    return sys_error("fsopen {}", type);
  }
  Fd fsfd(fs);
  for (const auto& o : options) {
    int rc = o.value.empty() ? ::fsconfig(fs, FSCONFIG_SET_FLAG, o.key, nullptr, 0)
                             : ::fsconfig(fs, FSCONFIG_SET_STRING, o.key, o.value.c_str(), 0);
    if (rc < 0) {
      return sys_error("configure {} option {}{}{}", type, o.key, o.value.empty() ? "" : "=", o.value);
    }
  }
  if (::fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    return sys_error("create {} filesystem", type);
  }
  int mnt = ::fsmount(fs, FSMOUNT_CLOEXEC, attrs);
  if (mnt < 0) {
    return sys_error("fsmount {}", type);
  }
  return Fd(mnt);
}

Result<void> mount_fs(const char* type, const std::string& target, const std::vector<FsOption>& options,
                      unsigned attrs) {
  SBX_ASSIGN(Fd mnt, new_fs(type, options, attrs));
  SBX_TRY_CTX(move_mount_to(mnt.get(), target, Leaf::kDir, true), "mount {} on '{}'", type, target);
  return ok();
}

// A detached copy of the mount tree at `source` (a bind mount), with `attrs` set on all of it, and idmapped through
// the user namespace `userns_fd` when that is >= 0.
Result<Fd> clone_tree(const std::string& source, unsigned attrs, int userns_fd = -1) {
  int fd = ::open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0) {
    return sys_error("clone mount tree of '{}'", source);
  }
  Fd tree(fd);
  if (attrs != 0 || userns_fd >= 0) {
    struct mount_attr attr {};
    attr.attr_set = attrs;
    if (userns_fd >= 0) {
      attr.attr_set |= MOUNT_ATTR_IDMAP;
      attr.userns_fd = static_cast<uint64_t>(userns_fd);
    }
    if (::mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
      if (userns_fd >= 0 && (errno == EINVAL || errno == EPERM || errno == ENOSYS)) {
        return sys_error("idmap '{}' into the sandbox's user namespace (needs idmapped mounts: Linux 5.12 for ext4, "
                         "xfs and btrfs, 6.3 for tmpfs, none on 9p or NFS; or run the sandbox without a user "
                         "namespace)", source);
      }
      return sys_error("set mount attributes of '{}'", source);
    }
  }
  return tree;
}

Result<void> mount_upper(const Plan& plan, const SandboxPaths& paths) {
  if (plan.root.upper_tmpfs_size) {
    SBX_ASSIGN(Fd mnt, new_fs("tmpfs", {{"size", std::to_string(*plan.root.upper_tmpfs_size)}, {"mode", "0755"}},
                              MOUNT_ATTR_NODEV));
    if (::move_mount(mnt.get(), "", AT_FDCWD, paths.rw.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      return sys_error("mount tmpfs on '{}'", paths.rw);
    }
  }
  for (const char* sub : {"/upper", "/work"}) {
    std::string dir = paths.rw + sub;
    if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) {
      return sys_error("mkdir '{}'", dir);
    }
  }
  // The upper dir is the root directory the sandbox sees: its root must own it.
  std::string upper = paths.rw + "/upper";
  if (plan.userns && ::chown(upper.c_str(), plan.userns->host_root_uid(), plan.userns->host_root_gid()) < 0) {
    return sys_error("chown '{}' to the sandbox's root", upper);
  }
  return ok();
}

// A read-only root of one layer is a read-only bind of it; of several, an overlay without an upper layer.
bool is_bind_root(const RootfsPlan& root) { return root.read_only && root.lower_dirs.size() == 1; }

// The overlay on <dir>/rootfs of `root`'s lower dirs, with upper/work under <dir>/rw unless it is read-only. nodev:
// a device node shipped in an image must not open a host device; /dev is a tmpfs of our own nodes.
Result<void> mount_overlay(const Plan& plan, const RootfsPlan& root, const SandboxPaths& paths) {
  if (!root.read_only) {
    SBX_TRY(mount_upper(plan, paths));
  }
  SBX_ASSIGN(std::string options, overlay_options(root, paths));
  if (::mount("overlay", paths.rootfs.c_str(), "overlay", MS_NODEV | (root.read_only ? MS_RDONLY : 0),
              options.c_str()) < 0) {
    return sys_error("mount overlay of {} layers on '{}'", root.lower_dirs.size(), paths.rootfs);
  }
  return ok();
}

Result<void> mount_root(const Plan& plan, const SandboxPaths& paths) {
  if (is_bind_root(plan.root)) {
    SBX_ASSIGN(Fd tree, clone_tree(plan.root.lower_dirs.front(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV));
    if (::move_mount(tree.get(), "", AT_FDCWD, paths.rootfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
      return sys_error("bind '{}' read-only on '{}'", plan.root.lower_dirs.front(), paths.rootfs);
    }
    return ok();
  }
  return mount_overlay(plan, plan.root, paths);
}

Result<void> pivot_into(const std::string& rootfs) {
  if (::chdir(rootfs.c_str()) < 0) {
    return sys_error("chdir '{}'", rootfs);
  }
  // pivot_root(".", "."): the old root ends up stacked under the new one, then is detached.
  if (::syscall(SYS_pivot_root, ".", ".") < 0) {
    return sys_error("pivot_root into '{}'", rootfs);
  }
  if (::umount2(".", MNT_DETACH) < 0) {
    return sys_error("detach the old root");
  }
  if (::chdir("/") < 0) {
    return sys_error("chdir '/'");
  }
  return ok();
}

struct DeviceNode {
  const char* name;
  unsigned major, minor;
};

constexpr DeviceNode kDevices[] = {{"null", 1, 3},    {"zero", 1, 5},    {"full", 1, 7},
                                   {"random", 1, 8},  {"urandom", 1, 9}, {"tty", 5, 0}};

// Device nodes bound from the host, cloned while the host's tree is visible: the standard ones when the sandbox has a
// user namespace (where mknod makes no usable node), then the plan's own (CDI) devices. Attached by populate_dev.
struct DeviceTrees {
  std::vector<Fd> standard;  // one per kDevices entry, or none: mknod
  std::vector<Fd> extra;     // one per plan.devices entry
};

Result<DeviceTrees> clone_device_nodes(const Plan& plan) {
  DeviceTrees trees;
  if (plan.userns) {
    for (const auto& d : kDevices) {
      SBX_ASSIGN(Fd tree, clone_tree(fmt::format("/dev/{}", d.name), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
      trees.standard.push_back(std::move(tree));
    }
  }
  for (const auto& d : plan.devices) {
    SBX_ASSIGN(Fd tree, clone_tree(d.host_path, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
    trees.extra.push_back(std::move(tree));
  }
  return trees;
}

Result<void> make_standard_nodes(int devdir, const DeviceTrees& trees) {
  for (size_t i = 0; i < std::size(kDevices); ++i) {
    const DeviceNode& d = kDevices[i];
    if (!trees.standard.empty()) {
      SBX_TRY_CTX(move_mount_to(trees.standard[i].get(), fmt::format("/dev/{}", d.name), Leaf::kFile, true),
                  "bind the host's /dev/{}", d.name);
      continue;
    }
    if (::mknodat(devdir, d.name, S_IFCHR | 0666, makedev(d.major, d.minor)) < 0) {
      return sys_error("mknod /dev/{}", d.name);
    }
    if (::fchmodat(devdir, d.name, 0666, 0) < 0) {
      return sys_error("chmod /dev/{}", d.name);
    }
  }
  return ok();
}

Result<void> attach_extra_devices(const std::vector<DeviceNodePlan>& devices, const DeviceTrees& trees) {
  for (size_t i = 0; i < devices.size(); ++i) {
    SBX_TRY_CTX(move_mount_to(trees.extra[i].get(), devices[i].path, Leaf::kFile, true), "bind device '{}' on '{}'",
                devices[i].host_path, devices[i].path);
  }
  return ok();
}

Result<void> populate_dev(uint64_t shm_size, const DeviceTrees& trees) {
  SBX_ASSIGN(Fd dev, open_target("/dev", Leaf::kDir, false));
  SBX_ASSIGN(Fd devdir, open_at(dev.get(), ".", O_RDONLY | O_DIRECTORY));
  SBX_TRY(make_standard_nodes(devdir.get(), trees));
  const std::pair<const char*, const char*> links[] = {
      {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
      {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}, {"core", "/proc/kcore"}};
  for (const auto& [name, to] : links) {
    if (::symlinkat(to, devdir.get(), name) < 0) {
      return sys_error("symlink /dev/{}", name);
    }
  }
  SBX_TRY(mount_fs("devpts", "/dev/pts", {{"newinstance", ""}, {"ptmxmode", "0666"}, {"mode", "0620"}},
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  SBX_TRY(mount_fs("tmpfs", "/dev/shm", {{"mode", "1777"}, {"size", std::to_string(shm_size)}},
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  return ok();
}

// proc and sysfs, made (fsmount) while the host's are still in the mount namespace: inside a user namespace the
// kernel creates one only where an unobstructed one is already visible (mount_too_revealing), which after
// pivot_root is no longer so. Attached by mount_system.
struct KernelFsMounts {
  Fd proc;
  Fd sys;
};

Result<KernelFsMounts> make_kernel_fs_mounts() {
  KernelFsMounts m;
  SBX_ASSIGN(m.proc, new_fs("proc", {}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  SBX_ASSIGN(m.sys, new_fs("sysfs", {}, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  return m;
}

Result<void> mount_system(const Plan& plan, const KernelFsMounts& kernel_fs, const DeviceTrees& devices) {
  SBX_TRY_CTX(move_mount_to(kernel_fs.proc.get(), "/proc", Leaf::kDir, true), "mount proc on '/proc'");
  SBX_TRY(mount_fs("tmpfs", "/dev", {{"mode", "0755"}, {"size", "65536"}}, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
  SBX_TRY(populate_dev(plan.dev_shm_size, devices));
  SBX_TRY_CTX(move_mount_to(kernel_fs.sys.get(), "/sys", Leaf::kDir, true), "mount sysfs on '/sys'");
  SBX_TRY(mount_fs("tmpfs", "/tmp", {{"mode", "1777"}, {"size", std::to_string(plan.tmp_size)}},
                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
  return ok();
}

unsigned bind_attrs(const BindMount& m) {
  return MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (m.read_only ? MOUNT_ATTR_RDONLY : 0);
}

// Clones every bind source while the host's tree is still visible; attached after pivot_root. With a user namespace
// the parent has staged them, idmapped, under <dir>/binds/.
Result<std::vector<Fd>> clone_bind_sources(const Plan& plan, const SandboxPaths& paths) {
  std::vector<Fd> trees;
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    const BindMount& m = plan.mounts[i];
    SBX_ASSIGN(Fd tree, plan.userns ? clone_tree(paths.bind_at(i), 0) : clone_tree(m.source, bind_attrs(m)));
    trees.push_back(std::move(tree));
  }
  return trees;
}

Result<void> attach_binds(const std::vector<BindMount>& mounts, const std::vector<Fd>& trees) {
  for (size_t i = 0; i < mounts.size(); ++i) {
    struct stat st {};
    if (::fstat(trees[i].get(), &st) < 0) {
      return sys_error("stat bind source '{}'", mounts[i].source);
    }
    Leaf leaf = S_ISDIR(st.st_mode) ? Leaf::kDir : Leaf::kFile;
    SBX_TRY_CTX(move_mount_to(trees[i].get(), mounts[i].destination, leaf, true), "bind '{}' on '{}'",
                mounts[i].source, mounts[i].destination);
  }
  return ok();
}

// A mount target that may be missing (masked and read-only paths differ between kernels): nullopt when it is.
Result<std::optional<Fd>> open_existing(const std::string& path, std::string_view what) {
  auto target = open_target(path, Leaf::kFile, false);
  if (target.ok()) {
    return std::optional<Fd>(std::move(target).value());
  }
  if (target.error().sys_errno() == ENOENT) {
    return std::optional<Fd>();
  }
  return std::move(target).error().context(what);
}

// Hides `path`: /dev/null over a file, an empty read-only tmpfs over a directory. A missing path is skipped.
Result<void> mask_path(const std::string& path) {
  SBX_ASSIGN(std::optional<Fd> target, open_existing(path, "mask"));
  if (!target) {
    return ok();
  }
  struct stat st {};
  if (::fstat(target->get(), &st) < 0) {
    return sys_error("stat '{}'", path);
  }
  Fd cover;
  if (S_ISDIR(st.st_mode)) {
    SBX_ASSIGN(cover, new_fs("tmpfs", {{"size", "0"}, {"mode", "0555"}}, MOUNT_ATTR_RDONLY));
  } else {
    SBX_ASSIGN(cover, clone_tree("/dev/null", 0));
  }
  if (::move_mount(cover.get(), "", target->get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    return sys_error("mask '{}'", path);
  }
  return ok();
}

// Re-mounts `path` read-only over itself. A missing path is skipped.
Result<void> make_readonly(const std::string& path) {
  SBX_ASSIGN(std::optional<Fd> target, open_existing(path, "make read-only"));
  if (!target) {
    return ok();
  }
  int fd = ::open_tree(target->get(), "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  if (fd < 0) {
    return sys_error("clone mount tree of '{}'", path);
  }
  Fd tree(fd);
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
  if (::mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
    return sys_error("set '{}' read-only", path);
  }
  if (::move_mount(fd, "", target->get(), "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
    return sys_error("mount '{}' read-only over itself", path);
  }
  return ok();
}

Result<void> seal_root(const Plan& plan) {
  for (const auto& p : plan.masked_paths) {
    SBX_TRY(mask_path(p));
  }
  for (const auto& p : plan.readonly_paths) {
    SBX_TRY(make_readonly(p));
  }
  if (plan.root.read_only) {
    struct mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof attr) < 0) {
      return sys_error("remount / read-only");
    }
  }
  return ok();
}

Result<void> make_dir(const std::string& path, mode_t mode = 0700) {
  if (::mkdir(path.c_str(), mode) < 0) {
    return sys_error("mkdir '{}'", path);
  }
  return ok();
}

Result<void> move_mount_to_path(int mnt_fd, const std::string& target) {
  if (::move_mount(mnt_fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0) {
    return sys_error("move mount onto '{}'", target);
  }
  return ok();
}

// The root's layers as idmapped clones: read-only (and nodev) for a read-only root, else as overlay lower layers.
Result<std::vector<Fd>> clone_layers(const RootfsPlan& root, int userns_fd) {
  std::vector<Fd> layers;
  unsigned attrs = is_bind_root(root) ? MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV : 0;
  for (const std::string& dir : root.lower_dirs) {
    SBX_ASSIGN(Fd tree, clone_tree(dir, attrs, userns_fd));
    layers.push_back(std::move(tree));
  }
  return layers;
}

// A stay in another process's mount namespace (setns(2) with its pidfd), and the way back to the caller's own, with
// its cwd. Only a single-threaded process may change its mount namespace.
class MountNamespaceVisit {
 public:
  static Result<MountNamespaceVisit> enter(int pidfd) {
    MountNamespaceVisit v;
    SBX_ASSIGN(v.own_, open_at(AT_FDCWD, "/proc/self/ns/mnt", O_RDONLY));
    SBX_ASSIGN(v.cwd_, open_at(AT_FDCWD, ".", O_PATH | O_DIRECTORY));
    if (::setns(pidfd, CLONE_NEWNS) < 0) {
      return sys_error("enter the sandbox's mount namespace");
    }
    return v;
  }
  MountNamespaceVisit(MountNamespaceVisit&&) noexcept = default;
  MountNamespaceVisit& operator=(MountNamespaceVisit&&) = delete;
  ~MountNamespaceVisit() { (void)leave(); }

  Result<void> leave() {
    if (!own_.valid()) {
      return ok();
    }
    if (::setns(own_.get(), CLONE_NEWNS) < 0) {
      return sys_error("return to the runtime's own mount namespace");
    }
    own_.reset();
    if (::fchdir(cwd_.get()) < 0) {
      return sys_error("return to the runtime's working directory");
    }
    return ok();
  }

 private:
  MountNamespaceVisit() = default;
  Fd own_;
  Fd cwd_;
};

// In the child's mount namespace: the idmapped layers on <dir>/lower/N for as long as the overlay takes to clone
// them (it keeps private copies), the overlay on <dir>/rootfs; or the one layer of a read-only root of one.
Result<void> mount_staged_root(const Plan& plan, const SandboxPaths& paths, const std::vector<Fd>& layers) {
  if (is_bind_root(plan.root)) {
    return move_mount_to_path(layers.front().get(), paths.rootfs);
  }
  RootfsPlan staged = plan.root;
  Result<void> r = ok();
  size_t attached = 0;  // layers on their mount points: exactly those are detached again below
  while (r.ok() && attached < layers.size()) {
    staged.lower_dirs[attached] = paths.lower_at(attached);
    r = move_mount_to_path(layers[attached].get(), staged.lower_dirs[attached]);
    attached += r.ok() ? 1 : 0;
  }
  if (r.ok()) {
    r = mount_overlay(plan, staged, paths);
  }
  for (size_t i = 0; i < attached; ++i) {
    ::umount2(paths.lower_at(i).c_str(), MNT_DETACH);
  }
  return r;
}

}  // namespace

Result<std::string> overlay_options(const RootfsPlan& root, const SandboxPaths& paths) {
  std::string lower;
  for (const auto& dir : root.lower_dirs) {
    if (dir.find_first_of(":,\\") != std::string::npos) {
      return make_error("root.lower_dirs: '{}' contains ':', ',' or '\\', which overlayfs options cannot carry", dir);
    }
    lower += (lower.empty() ? "" : ":") + dir;
  }
  std::string options = root.read_only ? "lowerdir=" + lower
                                       : fmt::format("lowerdir={},upperdir={}/upper,workdir={}/work", lower, paths.rw,
                                                     paths.rw);
  if (options.size() >= 4096) {
    return make_error("root.lower_dirs: the overlay options are {} bytes, over the kernel's 4095", options.size());
  }
  return options;
}

Result<void> setup_rootfs(const Plan& plan, const SandboxPaths& paths) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) {
    return sys_error("make / private");
  }
  if (!plan.userns) {
    SBX_TRY(mount_root(plan, paths));
  }
  SBX_ASSIGN(std::vector<Fd> bind_trees, clone_bind_sources(plan, paths));
  SBX_ASSIGN(DeviceTrees device_trees, clone_device_nodes(plan));
  SBX_ASSIGN(KernelFsMounts kernel_fs, make_kernel_fs_mounts());
  SBX_TRY(pivot_into(paths.rootfs));
  SBX_TRY(mount_system(plan, kernel_fs, device_trees));
  SBX_TRY(attach_extra_devices(plan.devices, device_trees));
  SBX_TRY(attach_binds(plan.mounts, bind_trees));
  SBX_TRY(seal_root(plan));
  return ok();
}

Result<void> make_userns_mount_points(const Plan& plan, const SandboxPaths& paths) {
  if (::chmod(paths.dir.c_str(), 0711) < 0) {
    return sys_error("chmod '{}'", paths.dir);
  }
  if (!is_bind_root(plan.root)) {
    SBX_TRY(make_dir(paths.lower));
    for (size_t i = 0; i < plan.root.lower_dirs.size(); ++i) {
      SBX_TRY(make_dir(paths.lower_at(i)));
    }
  }
  if (plan.mounts.empty()) {
    return ok();
  }
  SBX_TRY(make_dir(paths.binds, 0711));
  for (size_t i = 0; i < plan.mounts.size(); ++i) {
    struct stat st {};
    if (::stat(plan.mounts[i].source.c_str(), &st) < 0) {
      return sys_error("mounts[{}].source: '{}'", i, plan.mounts[i].source);
    }
    if (S_ISDIR(st.st_mode)) {
      SBX_TRY(make_dir(paths.bind_at(i)));
    } else if (::mknod(paths.bind_at(i).c_str(), S_IFREG | 0600, 0) < 0) {
      return sys_error("create '{}'", paths.bind_at(i));
    }
  }
  return ok();
}

Result<void> stage_userns_root(const Plan& plan, const SandboxPaths& paths, int child_pidfd, int userns_fd) {
  // Cloned in the caller's own mount namespace, where the host's paths are.
  SBX_ASSIGN(std::vector<Fd> layers, clone_layers(plan.root, userns_fd));
  std::vector<Fd> binds;
  for (const BindMount& m : plan.mounts) {
    SBX_ASSIGN(Fd tree, clone_tree(m.source, bind_attrs(m), userns_fd));
    binds.push_back(std::move(tree));
  }
  SBX_ASSIGN(MountNamespaceVisit visit, MountNamespaceVisit::enter(child_pidfd));
  auto staged = mount_staged_root(plan, paths, layers);
  for (size_t i = 0; staged.ok() && i < binds.size(); ++i) {
    staged = move_mount_to_path(binds[i].get(), paths.bind_at(i));
  }
  auto back = visit.leave();
  SBX_TRY_CTX(std::move(staged), "stage the sandbox's root in its mount namespace");
  return back;
}

}  // namespace sbx::rt
