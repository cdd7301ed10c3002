#pragma once
// Files inside a running sandbox's root, reached from the host: the root is opened through
// /proc/<init>/root (so the sandbox's own mounts, /tmp's tmpfs say, are what is seen), and every path is resolved
// with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): ".." and absolute symlinks stop at the sandbox's root, so
// a symlink planted in the sandbox never reaches a host file. Only regular files are read or written (never a
// FIFO or a device, which could block the caller or reach a device), and only on ordinary file systems (overlay,
// tmpfs, ext4, xfs, btrfs): never procfs, sysfs or cgroupfs, which a root caller could otherwise write through.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/state.h"

namespace sbx::rt {

// An O_PATH fd of the sandbox's root directory, checked to belong to the init the state describes.
Result<Fd> open_sandbox_root(const SandboxState& state);

// For a sandbox with a user namespace, the calling thread's file system identity (fsuid, fsgid) becomes its root's
// host ids while this lives, with the file capabilities kept: what the calls below create belongs to the sandbox's
// root, and they work on the file systems the sandbox mounted itself (its /tmp and /dev/shm tmpfs belong to its user
// namespace, which maps no host id but its own: the host's root creating a file there gets EOVERFLOW). Per thread;
// the caller must stay on this thread until it is destroyed. A sandbox without one: nothing changes.
class SandboxFsIdentity {
 public:
  static Result<SandboxFsIdentity> assume(const SandboxState& state);
  SandboxFsIdentity(SandboxFsIdentity&& o) noexcept
      : active_(o.active_), previous_uid_(o.previous_uid_), previous_gid_(o.previous_gid_) {
    o.active_ = false;
  }
  SandboxFsIdentity& operator=(SandboxFsIdentity&&) = delete;
  ~SandboxFsIdentity();

 private:
  SandboxFsIdentity() = default;
  bool active_ = false;
  uid_t previous_uid_ = 0;
  gid_t previous_gid_ = 0;
};

struct FileEntry {
  std::string name;
  std::string type;  // file | dir | symlink | other
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits
  int64_t mtime = 0;  // seconds since the epoch
};

struct ReadResult {
  std::string data;
  uint64_t size = 0;  // the file's size
  bool eof = false;   // data reaches the end of the file
};

struct WriteOptions {
  uint32_t mode = 0644;
  // Host ids (a sandbox with a user namespace sees host id N as what N maps to inside: map_to_host translates).
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  bool append = false;
  bool mkdirs = false;
};

// `path` is absolute inside the sandbox. Errors carry errno (ENOENT, EISDIR, ...) and name the path.
Result<ReadResult> read_in_root(int root, const std::string& path, uint64_t offset, uint64_t max_bytes);
Result<uint64_t> write_in_root(int root, const std::string& path, std::string_view data, const WriteOptions& o);
Result<std::vector<FileEntry>> list_in_root(int root, const std::string& path);
Result<void> remove_in_root(int root, const std::string& path, bool recursive);

// Pure: "/a//b/./c/" -> {"a", "b", "c"}; refuses relative paths and NUL bytes. ".." is kept (openat2 confines it).
Result<std::vector<std::string>> split_sandbox_path(const std::string& path);

}  // namespace sbx::rt
