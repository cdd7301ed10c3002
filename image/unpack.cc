#include "image/unpack.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "base/file.h"
#include "image/fs.h"
#include "image/path.h"

namespace sbx::image {

namespace {

constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";
constexpr int64_t kMaxId = 0xfffffffeLL;  // (uid_t)-1 means "unchanged" to chown

struct Times {
  struct timespec ts[2];
};

Times entry_times(const Entry& e) {
  Times t{};
  t.ts[0].tv_sec = t.ts[1].tv_sec = static_cast<time_t>(e.mtime_sec);
  t.ts[0].tv_nsec = t.ts[1].tv_nsec = e.mtime_nsec;
  return t;
}

Result<void> check_ids(const Entry& e) {
  if (e.uid < 0 || e.uid > kMaxId || e.gid < 0 || e.gid > kMaxId) {
    return make_error("owner {}:{} out of range", e.uid, e.gid);
  }
  return ok();
}

Result<void> pwrite_all(int fd, const char* data, size_t size, uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("write at offset {}", offset);
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return ok();
}

class Unpacker {
 public:
  Unpacker(int root, Budget& budget) : root_(root), budget_(budget) {}

  Result<UnpackStats> run(EntrySource& source);

 private:
  Result<void> unpack_entry(const Entry& e, EntrySource& src);
  Result<void> unpack_named(const EntryPath& p, const Entry& e, EntrySource& src);
  Result<void> apply_root(const Entry& e);
  Result<int> open_parent(const EntryPath& p);
  Error parent_error(const EntryPath& p, int err);
  Result<bool> clear_for(int parent, const std::string& name, const std::string& shown, bool want_dir);
  Result<void> make_file(int parent, const EntryPath& p, const Entry& e, EntrySource& src);
  Result<void> make_dir(int parent, const EntryPath& p, const Entry& e);
  Result<void> make_symlink(int parent, const EntryPath& p, const Entry& e);
  Result<void> make_fifo(int parent, const EntryPath& p, const Entry& e);
  Result<void> finish_node(int parent, const EntryPath& p, const Entry& e, bool set_mode);
  Result<void> make_hardlink(int parent, const EntryPath& p, const Entry& e);
  Result<void> make_whiteout(const EntryPath& p, const Whiteout& wh, const Entry& e);
  Result<void> set_owner_mode(int fd, const Entry& e);
  Result<void> set_xattrs(int fd, const Entry& e);
  Result<void> write_data(int fd, const Entry& e, EntrySource& src);
  Result<void> drain(EntrySource& src);
  Result<void> set_dir_times();
  void drop_xattrs(const Entry& e) { stats_.dropped.xattrs += e.xattrs.size(); }

  int root_;
  Budget& budget_;
  UnpackStats stats_;
  std::string cached_parent_path_;
  Fd cached_parent_;
  bool cached_stale_ = false;
  std::map<std::string, Times> dir_times_;
};

Result<UnpackStats> Unpacker::run(EntrySource& source) {
  Entry e;
  for (;;) {
    e = Entry{};
    SBX_ASSIGN(bool more, source.next(e));
    if (!more) {
      break;
    }
    SBX_TRY(budget_.add_entry());
    ++stats_.entries;
    SBX_TRY_CTX(unpack_entry(e, source), "entry '{}'", e.path);
    SBX_TRY(drain(source));
  }
  SBX_TRY(set_dir_times());
  return stats_;
}

Result<void> Unpacker::unpack_entry(const Entry& e, EntrySource& src) {
  SBX_ASSIGN(EntryPath p, normalize_entry_path(e.path));
  SBX_TRY(check_ids(e));
  if (p.is_root()) {
    return apply_root(e);
  }
  SBX_ASSIGN(Whiteout wh, classify_whiteout(p.name()));
  if (wh.kind != WhiteoutKind::kNone) {
    return make_whiteout(p, wh, e);
  }
  return unpack_named(p, e, src);
}

Result<void> Unpacker::unpack_named(const EntryPath& p, const Entry& e, EntrySource& src) {
  bool whiteout_dev = e.type == EntryType::kCharDev && e.rdev_major == 0 && e.rdev_minor == 0;
  if ((e.type == EntryType::kCharDev && !whiteout_dev) || e.type == EntryType::kBlockDev) {
    ++stats_.dropped.devices;
    return ok();
  }
  if (e.type == EntryType::kSocket || e.type == EntryType::kOther) {
    ++stats_.dropped.other;
    return ok();
  }
  SBX_ASSIGN(int parent, open_parent(p));
  switch (e.type) {
    case EntryType::kFile:
      return make_file(parent, p, e, src);
    case EntryType::kDir:
      return make_dir(parent, p, e);
    case EntryType::kSymlink:
      return make_symlink(parent, p, e);
    case EntryType::kHardlink:
      return make_hardlink(parent, p, e);
    default:  // fifos, and 0/0 character devices: overlayfs whiteouts already
      return make_fifo(parent, p, e);
  }
}

Result<void> Unpacker::apply_root(const Entry& e) {
  if (e.type != EntryType::kDir) {
    return make_error("the layer root is not a directory");
  }
  SBX_TRY(set_owner_mode(root_, e));
  SBX_TRY(set_xattrs(root_, e));
  if (e.has_mtime) {
    dir_times_["."] = entry_times(e);
  }
  return ok();
}

// The parent directory of `p`, opened beneath the root without following any symlink; missing directories are
// created (root-owned, 0755) as tar does. The last one opened is kept for the next entry in the same directory.
Result<int> Unpacker::open_parent(const EntryPath& p) {
  std::string key = p.parent_str();
  if (cached_parent_.valid() && !cached_stale_ && key == cached_parent_path_) {
    return cached_parent_.get();
  }
  cached_parent_.reset();
  cached_stale_ = false;
  auto direct = open_beneath(root_, key, O_PATH | O_DIRECTORY);
  if (!direct.ok() && direct.error().sys_errno() != ENOENT) {
    return parent_error(p, direct.error().sys_errno());
  }
  if (direct.ok()) {
    cached_parent_ = std::move(direct).value();
  } else {
    SBX_ASSIGN(Fd cur, open_beneath(root_, ".", O_PATH | O_DIRECTORY));
    for (size_t i = 0; i + 1 < p.parts.size(); ++i) {
      const std::string& part = p.parts[i];
      if (::mkdirat(cur.get(), part.c_str(), 0755) < 0 && errno != EEXIST) {
        return sys_error("mkdir '{}'", p.prefix_str(i + 1));
      }
      auto next = open_beneath(cur.get(), part, O_PATH | O_DIRECTORY);
      if (!next.ok()) {
        return parent_error(p, next.error().sys_errno());
      }
      cur = std::move(next).value();
    }
    cached_parent_ = std::move(cur);
  }
  cached_parent_path_ = key;
  return cached_parent_.get();
}

// Explains why the parent of `p` could not be opened, naming the component at fault.
Error Unpacker::parent_error(const EntryPath& p, int err) {
  Fd cur;
  int dir = root_;
  for (size_t i = 0; i + 1 < p.parts.size(); ++i) {
    std::string shown = p.prefix_str(i + 1);
    struct stat st {};
    if (::fstatat(dir, p.parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      break;
    }
    if (S_ISLNK(st.st_mode)) {
      return make_error("symlink escape: '{}' is a symlink", shown);
    }
    if (!S_ISDIR(st.st_mode)) {
      return make_error("'{}' is not a directory", shown);
    }
    int next = ::openat(dir, p.parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      break;
    }
    cur.reset(next);
    dir = cur.get();
  }
  errno = err;
  if (err == ELOOP) {
    return make_error("symlink escape: a parent of '{}' is a symlink", p.str());
  }
  return sys_error("open the parent of '{}'", p.str());
}

// Makes room for a new `name` in `parent`: an existing entry is removed unless both it and the new one are
// directories (then it is kept and true returned), as tar does.
Result<bool> Unpacker::clear_for(int parent, const std::string& name, const std::string& shown, bool want_dir) {
  struct stat st {};
  if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) {
      return false;
    }
    return sys_error("stat '{}'", shown);
  }
  if (S_ISDIR(st.st_mode)) {
    if (want_dir) {
      return true;
    }
    cached_stale_ = true;  // it may be the cached parent or an ancestor of it (which is `parent`: keep it open)
    SBX_TRY(remove_tree_at(parent, name, shown));
    return false;
  }
  if (::unlinkat(parent, name.c_str(), 0) < 0) {
    return sys_error("remove '{}'", shown);
  }
  return false;
}

Result<void> Unpacker::set_owner_mode(int fd, const Entry& e) {
  if (::fchown(fd, static_cast<uid_t>(e.uid), static_cast<gid_t>(e.gid)) < 0) {
    return sys_error("chown to {}:{}", e.uid, e.gid);
  }
  // After chown, which clears setuid and setgid.
  if (::fchmod(fd, e.mode & 07777) < 0) {
    return sys_error("chmod to {:o}", e.mode & 07777);
  }
  return ok();
}

bool keep_xattr_name(std::string_view name) {
  return name == "security.capability" || name.substr(0, 5) == "user.";
}

// After chown, which clears security.capability.
Result<void> Unpacker::set_xattrs(int fd, const Entry& e) {
  for (const auto& [name, value] : e.xattrs) {
    if (!keep_xattr_name(name)) {
      ++stats_.dropped.xattrs;
      continue;
    }
    if (::fsetxattr(fd, name.c_str(), value.data(), value.size(), 0) < 0) {
      return sys_error("set xattr '{}'", name);
    }
  }
  return ok();
}

Result<void> Unpacker::write_data(int fd, const Entry& e, EntrySource& src) {
  uint64_t end = 0;
  for (;;) {
    SBX_ASSIGN(std::optional<DataBlock> block, src.read_block());
    if (!block) {
      break;
    }
    if (block->offset > e.size || block->size > e.size - block->offset) {
      return make_error("data beyond the entry's size of {} bytes", e.size);
    }
    SBX_TRY(pwrite_all(fd, block->data, block->size, block->offset));
    end = std::max(end, block->offset + block->size);
  }
  if (end < e.size && ::ftruncate(fd, static_cast<off_t>(e.size)) < 0) {
    return sys_error("truncate to {} bytes", e.size);
  }
  return ok();
}

// Reads whatever data the entry still has (an entry type that carries none normally), counting it as content.
Result<void> Unpacker::drain(EntrySource& src) {
  for (;;) {
    SBX_ASSIGN(std::optional<DataBlock> block, src.read_block());
    if (!block) {
      return ok();
    }
    SBX_TRY(budget_.add_bytes(block->size));
  }
}

Result<void> Unpacker::make_file(int parent, const EntryPath& p, const Entry& e, EntrySource& src) {
  SBX_TRY(budget_.add_bytes(e.size));
  SBX_TRY(clear_for(parent, p.name(), p.str(), false));
  int raw = ::openat(parent, p.name().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (raw < 0) {
    return sys_error("create '{}'", p.str());
  }
  Fd fd(raw);
  SBX_TRY(write_data(fd.get(), e, src));
  SBX_TRY(set_owner_mode(fd.get(), e));
  SBX_TRY(set_xattrs(fd.get(), e));
  if (e.has_mtime) {
    Times t = entry_times(e);
    if (::futimens(fd.get(), t.ts) < 0) {
      return sys_error("set times of '{}'", p.str());
    }
  }
  return ok();
}

Result<void> Unpacker::make_dir(int parent, const EntryPath& p, const Entry& e) {
  SBX_ASSIGN(bool exists, clear_for(parent, p.name(), p.str(), true));
  if (!exists && ::mkdirat(parent, p.name().c_str(), 0700) < 0) {
    return sys_error("mkdir '{}'", p.str());
  }
  int raw = ::openat(parent, p.name().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) {
    return sys_error("open '{}'", p.str());
  }
  Fd fd(raw);
  SBX_TRY(set_owner_mode(fd.get(), e));
  SBX_TRY(set_xattrs(fd.get(), e));
  if (e.has_mtime) {
    dir_times_[p.str()] = entry_times(e);
  }
  return ok();
}

Result<void> Unpacker::make_symlink(int parent, const EntryPath& p, const Entry& e) {
  SBX_TRY(clear_for(parent, p.name(), p.str(), false));
  if (::symlinkat(e.link.c_str(), parent, p.name().c_str()) < 0) {
    return sys_error("symlink '{}' -> '{}'", p.str(), e.link);
  }
  return finish_node(parent, p, e, false);
}

// Owner, then mode (`set_mode`: not for symlinks, whose mode means nothing), then times of a node just made by
// this process in a directory only it writes (so the name is not a symlink planted by someone else).
Result<void> Unpacker::finish_node(int parent, const EntryPath& p, const Entry& e, bool set_mode) {
  if (::fchownat(parent, p.name().c_str(), static_cast<uid_t>(e.uid), static_cast<gid_t>(e.gid),
                 AT_SYMLINK_NOFOLLOW) < 0) {
    return sys_error("chown '{}' to {}:{}", p.str(), e.uid, e.gid);
  }
  if (set_mode && ::fchmodat(parent, p.name().c_str(), e.mode & 07777, 0) < 0) {
    return sys_error("chmod '{}'", p.str());
  }
  drop_xattrs(e);
  if (e.has_mtime) {
    Times t = entry_times(e);
    if (::utimensat(parent, p.name().c_str(), t.ts, AT_SYMLINK_NOFOLLOW) < 0) {
      return sys_error("set times of '{}'", p.str());
    }
  }
  return ok();
}

// A fifo, or a 0/0 character device (a whiteout already in overlayfs form).
Result<void> Unpacker::make_fifo(int parent, const EntryPath& p, const Entry& e) {
  SBX_TRY(clear_for(parent, p.name(), p.str(), false));
  bool fifo = e.type == EntryType::kFifo;
  mode_t type = fifo ? S_IFIFO : S_IFCHR;
  if (::mknodat(parent, p.name().c_str(), type | 0600, 0) < 0) {
    return sys_error("mknod '{}'", p.str());
  }
  return finish_node(parent, p, e, true);
}

Result<void> Unpacker::make_hardlink(int parent, const EntryPath& p, const Entry& e) {
  auto target = normalize_entry_path(e.link);
  if (!target.ok()) {
    return std::move(target).error().context(fmt::format("hardlink escape: target '{}'", e.link));
  }
  if (target->is_root()) {
    return make_error("hardlink escape: target '{}' is the layer root", e.link);
  }
  auto tparent = open_beneath(root_, target->parent_str(), O_PATH | O_DIRECTORY);
  if (!tparent.ok()) {
    int err = tparent.error().sys_errno();
    if (err == ELOOP) {
      return make_error("hardlink escape: target '{}' goes through a symlink", e.link);
    }
    return make_error("hardlink escape: target '{}' is not an entry unpacked before it", e.link);
  }
  struct stat st {};
  if (::fstatat(tparent->get(), target->name().c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    return make_error("hardlink escape: target '{}' is not an entry unpacked before it", e.link);
  }
  if (S_ISDIR(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode)) {
    return make_error("hardlink escape: target '{}' is not a file, symlink or fifo", e.link);
  }
  if (target->parts == p.parts) {
    return ok();  // a link to itself: what is there stays
  }
  SBX_TRY(clear_for(parent, p.name(), p.str(), false));
  if (::linkat(tparent->get(), target->name().c_str(), parent, p.name().c_str(), 0) < 0) {
    return sys_error("link '{}' to '{}'", p.str(), target->str());
  }
  return ok();  // data a pax hardlink may carry is the target's: read and counted by drain(), never written

}

Result<void> Unpacker::make_whiteout(const EntryPath& p, const Whiteout& wh, const Entry& e) {
  SBX_ASSIGN(int parent, open_parent(p));
  if (wh.kind == WhiteoutKind::kOpaque) {
    SBX_ASSIGN(Fd dir, open_beneath(root_, p.parent_str(), O_RDONLY | O_DIRECTORY));
    if (::fsetxattr(dir.get(), kOpaqueXattr, "y", 1, 0) < 0) {
      return sys_error("set {} on '{}'", kOpaqueXattr, p.parent_str());
    }
    return ok();
  }
  std::string shown = p.parts.size() == 1 ? wh.target : p.parent_str() + "/" + wh.target;
  SBX_TRY(clear_for(parent, wh.target, shown, false));
  if (::mknodat(parent, wh.target.c_str(), S_IFCHR, makedev(0, 0)) < 0) {
    return sys_error("mknod whiteout '{}'", shown);
  }
  if (::fchownat(parent, wh.target.c_str(), static_cast<uid_t>(e.uid), static_cast<gid_t>(e.gid),
                 AT_SYMLINK_NOFOLLOW) < 0) {
    return sys_error("chown '{}'", shown);
  }
  return ok();
}

// Directory times last (creating entries inside a directory changes its mtime), deepest first. A directory that was
// replaced by something else since is skipped.
Result<void> Unpacker::set_dir_times() {
  std::vector<std::pair<size_t, const std::string*>> order;
  for (const auto& [path, times] : dir_times_) {
    size_t depth = path == "." ? 0 : 1 + static_cast<size_t>(std::count(path.begin(), path.end(), '/'));
    order.emplace_back(depth, &path);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [depth, path] : order) {
    auto dir = open_beneath(root_, *path, O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) {
      continue;
    }
    if (::futimens(dir->get(), dir_times_[*path].ts) < 0) {
      return sys_error("set times of '{}'", *path);
    }
  }
  return ok();
}

}  // namespace

bool keep_xattr(std::string_view name) { return keep_xattr_name(name); }

Result<UnpackStats> unpack_layer(int root_fd, EntrySource& source, Budget& budget) {
  Unpacker unpacker(root_fd, budget);
  return unpacker.run(source);
}

}  // namespace sbx::image
