#include "image/import.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

#include "base/file.h"
#include "image/fs.h"
#include "image/import_internal.h"
#include "image/sha256.h"

namespace sbx::image {

namespace {

constexpr size_t kMaxJsonFile = 16 << 20;
constexpr size_t kMaxPasswdFile = 4 << 20;

enum class OuterKind { kOci, kDocker, kRootfs };

bool is_regular_at(int dirfd, const char* name) {
  struct stat st {};
  return ::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

// An image archive's top level holds oci-layout and index.json (OCI) or a docker-save manifest.json; anything
// else is a root filesystem.
OuterKind classify_outer(int outer) {
  if (is_regular_at(outer, "oci-layout") && is_regular_at(outer, "index.json")) {
    return OuterKind::kOci;
  }
  if (is_regular_at(outer, "manifest.json")) {
    auto text = read_regular_beneath(outer, "manifest.json", kMaxJsonFile, Symlinks::kRefuse);
    if (text.ok()) {
      auto j = parse_json(*text, "manifest.json");
      if (j.ok() && parse_docker_manifest(*j).ok()) {
        return OuterKind::kDocker;
      }
    }
  }
  return OuterKind::kRootfs;
}

Result<void> check_empty_dir(int fd, const std::string& shown) {
  SBX_ASSIGN(Fd dup, open_beneath(fd, ".", O_RDONLY | O_DIRECTORY));
  DIR* d = ::fdopendir(dup.get());
  if (d == nullptr) {
    return sys_error("opendir '{}'", shown);
  }
  dup.release();
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  if (!empty) {
    return make_error("work directory '{}' is not empty", shown);
  }
  return ok();
}

Node layer_node(int layer_fd, const std::string& path) {
  struct stat st {};
  if (::fstatat(layer_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    return Node{};
  }
  if (S_ISREG(st.st_mode)) {
    return Node{NodeKind::kFile, false};
  }
  if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {
    return Node{NodeKind::kWhiteout, false};
  }
  if (!S_ISDIR(st.st_mode)) {
    return Node{NodeKind::kOther, false};
  }
  Node node{NodeKind::kDir, false};
  auto dir = open_beneath(layer_fd, path, O_RDONLY | O_DIRECTORY);
  char value[4] = {};
  if (dir.ok() && ::fgetxattr(dir->get(), "trusted.overlay.opaque", value, sizeof value) == 1 && value[0] == 'y') {
    node.opaque = true;
  }
  return node;
}

}  // namespace

void Importer::report(std::string_view phase, size_t layer, size_t layers, uint64_t bytes, uint64_t total) const {
  if (progress_) {
    progress_(Progress{phase, layer, layers, bytes, total});
  }
}

Result<ImportResult> Importer::run() {
  SBX_TRY(open_dirs());
  auto r = run_source();
  // The work directory is emptied whatever happened; only a failure to do so after a failure is worth reporting.
  auto cleaned = empty_directory(work_.get(), opts_.work);
  if (!r.ok()) {
    if (!cleaned.ok()) {
      return std::move(r).error().context(fmt::format("(and cleaning up: {})", cleaned.error().message()));
    }
    return std::move(r).error();
  }
  return std::move(result_);
}

Result<void> Importer::open_dirs() {
  auto store = open_at(AT_FDCWD, opts_.store, O_RDONLY | O_DIRECTORY);
  if (!store.ok()) {
    return std::move(store).error().context("store");
  }
  store_ = std::move(store).value();
  auto work = open_at(AT_FDCWD, opts_.work, O_RDONLY | O_DIRECTORY);
  if (!work.ok()) {
    return std::move(work).error().context("work directory");
  }
  work_ = std::move(work).value();
  struct stat a {};
  struct stat b {};
  if (::fstat(store_.get(), &a) < 0 || ::fstat(work_.get(), &b) < 0) {
    return sys_error("stat '{}'", opts_.store);
  }
  if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
    return make_error("the store and the work directory are the same directory");
  }
  return check_empty_dir(work_.get(), opts_.work);
}

Result<void> Importer::run_source() {
  struct stat st {};
  if (::stat(opts_.source.c_str(), &st) < 0) {
    return sys_error("stat source '{}'", opts_.source);
  }
  if (S_ISDIR(st.st_mode)) {
    return import_directory();
  }
  if (!S_ISREG(st.st_mode)) {
    return make_error("source '{}' is neither a regular file nor a directory", opts_.source);
  }
  SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, opts_.source, O_RDONLY | O_NOCTTY));
  SBX_ASSIGN(uint64_t size, file_size(fd.get(), opts_.source));
  return import_archive(std::move(fd), size);
}

// A layer's root directory: 0755 root:root unless the archive's "./" entry says otherwise.
Result<Fd> Importer::make_work_dir(const std::string& name) {
  if (::mkdirat(work_.get(), name.c_str(), 0700) < 0) {
    return sys_error("mkdir '{}/{}'", opts_.work, name);
  }
  SBX_ASSIGN(Fd fd, open_beneath(work_.get(), name, O_RDONLY | O_DIRECTORY));
  if (::fchmod(fd.get(), 0755) < 0) {
    return sys_error("chmod '{}/{}'", opts_.work, name);
  }
  return fd;
}

// The source is read once: unpacked into work/outer with the safe unpacker, hashed as it goes. Only then is it
// known whether it was an image archive (whose blobs are now files in work/outer) or a root filesystem (then
// work/outer is the layer).
Result<void> Importer::import_archive(Fd fd, uint64_t size) {
  SBX_ASSIGN(Fd outer, make_work_dir("outer"));
  report("read", 0, 0, 0, size);
  StreamOptions so{"", &budget_, true, [&](uint64_t n) { report("read", 0, 0, n, size); }};
  auto read = [&]() -> Result<std::pair<StreamDigests, UnpackStats>> {
    SBX_ASSIGN(auto stream, TarStream::open(std::move(fd), so));
    SBX_ASSIGN(UnpackStats stats, unpack_layer(outer.get(), *stream, budget_));
    SBX_ASSIGN(StreamDigests digests, stream->finish());
    return std::make_pair(digests, stats);
  }();
  if (!read.ok()) {
    return std::move(read).error().context(fmt::format("archive '{}'", opts_.source));
  }
  switch (classify_outer(outer.get())) {
    case OuterKind::kOci:
      result_.format = "oci";
      budget_.reset_content();
      return import_oci(outer.get());
    case OuterKind::kDocker:
      result_.format = "docker";
      budget_.reset_content();
      return import_docker(outer.get());
    case OuterKind::kRootfs:
      break;
  }
  result_.format = "tarball";
  return finish_single_layer("outer", read->first, read->second);
}

// A directory becomes a tar in the work directory (so it has a real diff_id), which is then imported as one layer.
Result<void> Importer::import_directory() {
  char* real = ::realpath(opts_.source.c_str(), nullptr);
  if (real == nullptr) {
    return sys_error("resolve source '{}'", opts_.source);
  }
  std::string dir = real;
  ::free(real);
  int raw = ::openat(work_.get(), "source.tar", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (raw < 0) {
    return sys_error("create '{}/source.tar'", opts_.work);
  }
  Fd tar(raw);
  Budget tar_budget(opts_.limits);
  report("read", 1, 1, 0, 0);
  auto written = write_directory_tar(dir, tar.get(), tar_budget, [&](uint64_t n) { report("read", 1, 1, n, 0); });
  if (!written.ok()) {
    return std::move(written).error().context(fmt::format("directory '{}'", dir));
  }
  result_.dropped.other += written->sockets;
  if (::lseek(tar.get(), 0, SEEK_SET) < 0) {
    return sys_error("seek '{}/source.tar'", opts_.work);
  }
  SBX_ASSIGN(uint64_t size, file_size(tar.get(), "source.tar"));
  SBX_ASSIGN(Fd layer, make_work_dir("layer-1"));
  StreamOptions so{"", &budget_, false, [&](uint64_t n) { report("unpack", 1, 1, n, size); }};
  auto read = [&]() -> Result<std::pair<StreamDigests, UnpackStats>> {
    SBX_ASSIGN(auto stream, TarStream::open(std::move(tar), so));
    SBX_ASSIGN(UnpackStats stats, unpack_layer(layer.get(), *stream, budget_));
    SBX_ASSIGN(StreamDigests digests, stream->finish());
    return std::make_pair(digests, stats);
  }();
  if (!read.ok()) {
    return std::move(read).error().context(fmt::format("directory '{}'", dir));
  }
  (void)::unlinkat(work_.get(), "source.tar", 0);
  result_.format = "directory";
  return finish_single_layer("layer-1", read->first, read->second);
}

// A tarball or a directory: one layer, and a config made from it so the same content gets the same id.
Result<void> Importer::finish_single_layer(const std::string& work_name, const StreamDigests& digests,
                                           const UnpackStats& stats) {
  result_.dropped += stats.dropped;
  result_.layers.push_back(LayerResult{digests.diff_hex, digests.diff_bytes, stats.entries, false});
  pending_.push_back(Pending{work_name, 0});
  result_.config_digest_hex = sha256_hex(synthetic_config({digests.diff_hex}, host_architecture()).dump());
  return commit();
}

bool Importer::in_store(const std::string& hex) const {
  struct stat st {};
  return ::fstatat(store_.get(), hex.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

// One layer of an image archive: skipped when its diff_id is already in the store (or earlier in this image),
// else unpacked into work/layer-N and checked against the manifest's digest and size and the config's diff_id.
Result<void> Importer::import_layer(int outer, const LayerBlob& blob) {
  size_t number = blob.index + 1;
  report("unpack", number, blob.count, 0, blob.raw_size.value_or(0));
  if (seen_.count(blob.diff_hex) != 0 || in_store(blob.diff_hex)) {
    seen_.insert(blob.diff_hex);
    result_.layers.push_back(LayerResult{blob.diff_hex, 0, 0, true});
    return ok();
  }
  SBX_ASSIGN(Fd fd, open_regular_beneath(outer, blob.path, Symlinks::kFollowBeneath));
  SBX_ASSIGN(uint64_t size, file_size(fd.get(), blob.path));
  if (blob.raw_size && size != *blob.raw_size) {
    return make_error("blob '{}' is {} bytes, the manifest says {}", blob.path, size, *blob.raw_size);
  }
  std::string name = fmt::format("layer-{}", number);
  SBX_ASSIGN(Fd dir, make_work_dir(name));
  StreamOptions so{blob.path, &budget_, false, [&](uint64_t n) { report("unpack", number, blob.count, n, size); }};
  SBX_ASSIGN(auto stream, TarStream::open(std::move(fd), so));
  SBX_ASSIGN(UnpackStats stats, unpack_layer(dir.get(), *stream, budget_));
  SBX_ASSIGN(StreamDigests digests, stream->finish());
  if (blob.raw_hex && digests.raw_hex != *blob.raw_hex) {
    return make_error("blob '{}' does not match its digest: it hashes to sha256:{}, the manifest says sha256:{}",
                      blob.path, digests.raw_hex, *blob.raw_hex);
  }
  if (digests.diff_hex != blob.diff_hex) {
    return make_error("diff_id mismatch: the uncompressed layer is sha256:{}, the image config says sha256:{}",
                      digests.diff_hex, blob.diff_hex);
  }
  seen_.insert(blob.diff_hex);
  result_.dropped += stats.dropped;
  pending_.push_back(Pending{name, result_.layers.size()});
  result_.layers.push_back(LayerResult{blob.diff_hex, digests.diff_bytes, stats.entries, false});
  return ok();
}

Result<std::optional<std::string>> Importer::read_image_file(const std::vector<int>& layers_top_first,
                                                             const std::string& path) {
  auto layer = find_visible_file(layers_top_first.size(), path, [&](size_t i, const std::string& p) {
    return layer_node(layers_top_first[i], p);
  });
  if (!layer) {
    return std::optional<std::string>();
  }
  SBX_ASSIGN(std::string text, read_regular_beneath(layers_top_first[*layer], path, kMaxPasswdFile,
                                                    Symlinks::kRefuse));
  return std::optional<std::string>(std::move(text));
}

// The config's User as numbers, looked up in the image's own /etc/passwd and /etc/group as the layers show them.
Result<void> Importer::resolve_image_user(const std::string& user) {
  if (user.empty()) {
    return ok();
  }
  std::vector<Fd> fds;
  std::vector<int> top_first;
  for (size_t i = result_.layers.size(); i-- > 0;) {
    const std::string& hex = result_.layers[i].diff_id_hex;
    auto pending = std::find_if(pending_.begin(), pending_.end(),
                                [&](const Pending& p) { return result_.layers[p.index].diff_id_hex == hex; });
    int parent = pending != pending_.end() ? work_.get() : store_.get();
    const std::string& name = pending != pending_.end() ? pending->work_name : hex;
    SBX_ASSIGN(Fd fd, open_beneath(parent, name, O_RDONLY | O_DIRECTORY));
    top_first.push_back(fd.get());
    fds.push_back(std::move(fd));
  }
  SBX_ASSIGN(auto passwd, read_image_file(top_first, "etc/passwd"));
  SBX_ASSIGN(auto group, read_image_file(top_first, "etc/group"));
  auto ids = resolve_user(user, passwd, group);
  if (!ids.ok()) {
    return std::move(ids).error().context("resolve the image's User");
  }
  result_.user = *ids;
  return ok();
}

// Moves the new layers into the store, bottom first, after flushing them to disk. A layer someone else committed in
// the meantime is kept and ours discarded; any other failure takes back what this import moved.
Result<void> Importer::commit() {
  report("commit", pending_.size(), pending_.size(), 0, 0);
  if (!pending_.empty() && ::syncfs(work_.get()) < 0) {
    return sys_error("sync '{}'", opts_.work);
  }
  for (const auto& p : pending_) {
    LayerResult& layer = result_.layers[p.index];
    if (in_store(layer.diff_id_hex)) {
      layer.reused = true;
      SBX_TRY(remove_tree_at(work_.get(), p.work_name, opts_.work + "/" + p.work_name));
      continue;
    }
    if (::renameat2(work_.get(), p.work_name.c_str(), store_.get(), layer.diff_id_hex.c_str(), RENAME_NOREPLACE) <
        0) {
      if (errno == EEXIST || errno == ENOTEMPTY) {
        layer.reused = true;
        SBX_TRY(remove_tree_at(work_.get(), p.work_name, opts_.work + "/" + p.work_name));
        continue;
      }
      Error e = errno == EXDEV ? make_error("the store '{}' and the work directory '{}' are on different file systems",
                                            opts_.store, opts_.work)
                               : sys_error("move layer into '{}/{}'", opts_.store, layer.diff_id_hex);
      rollback_commit();
      return e;
    }
    committed_.push_back(layer.diff_id_hex);
  }
  if (!committed_.empty() && ::syncfs(store_.get()) < 0) {
    Error e = sys_error("sync '{}'", opts_.store);
    rollback_commit();
    return e;
  }
  return ok();
}

void Importer::rollback_commit() {
  for (const auto& hex : committed_) {
    (void)remove_tree_at(store_.get(), hex, opts_.store + "/" + hex);
  }
  committed_.clear();
}

Result<ImportResult> import_image(const ImportOptions& options, const ProgressFn& progress) {
  Importer importer(options, progress);
  return importer.run();
}

nlohmann::json result_to_json(const ImportResult& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : r.layers) {
    layers.push_back({{"diff_id", "sha256:" + l.diff_id_hex}, {"size", l.size}, {"entries", l.entries},
                      {"reused", l.reused}});
  }
  return {{"event", "done"},
          {"format", r.format},
          {"config_digest", "sha256:" + r.config_digest_hex},
          {"config", r.config},
          {"layers", layers},
          {"ref", r.ref},
          {"user", {{"uid", r.user.uid}, {"gid", r.user.gid}}},
          {"dropped", {{"devices", r.dropped.devices}, {"xattrs", r.dropped.xattrs}, {"other", r.dropped.other}}}};
}

}  // namespace sbx::image
