// cgroup v2 back end: one directory per sandbox under <root><parent>/<id>, its device policy a BPF program attached
// to that directory.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/file.h"
#include "base/scope.h"
#include "runtime/cgroup.h"
#include "runtime/cgroup_internal.h"
#include "runtime/device_policy.h"

namespace sbx::rt::cgroup_detail {

namespace {

using Clock = std::chrono::steady_clock;

std::string list_or_none(const std::vector<std::string>& words) {
  if (words.empty()) {
    return "none";
  }
  std::string out;
  for (const std::string& w : words) {
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

bool contains(const std::vector<std::string>& words, std::string_view word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

// The value of `key` in flat-keyed text ("populated 1\nfrozen 0\n").
std::optional<uint64_t> keyed_value(std::string_view text, std::string_view key) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ') {
      auto value = parse_u64(line.substr(key.size() + 1));
      return value.ok() ? std::optional<uint64_t>(*value) : std::nullopt;
    }
  }
  return std::nullopt;
}

// Waits until the events file (cgroup.events) says "<key> <want>". The kernel signals every change of the file
// with POLLPRI; each poll is also capped so that a missed notification costs at most one slice.
Result<void> wait_for_event(const std::string& file, std::string_view key, uint64_t want,
                            std::chrono::milliseconds timeout) {
  SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, file, O_RDONLY));
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    char buf[4096];
    ssize_t n = ::pread(fd.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("read '{}'", file);
    }
    std::optional<uint64_t> value = keyed_value(std::string_view(buf, static_cast<size_t>(n)), key);
    if (value == want) {
      return ok();
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      std::string seen = value ? std::to_string(*value) : std::string("<missing>");
      return Error(fmt::format("timed out after {} ms waiting for '{} {}' in '{}' (it says '{} {}')", timeout.count(),
                               key, want, file, key, seen),
                   ETIMEDOUT);
    }
    struct pollfd p = {fd.get(), POLLPRI, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 50))) < 0 && errno != EINTR) {
      return sys_error("poll '{}'", file);
    }
  }
}

// Adds the needed controllers that `dir` has to its cgroup.subtree_control (only those not yet enabled).
Result<void> enable_controllers(const std::string& dir, const std::vector<std::string>& needed) {
  SBX_ASSIGN(std::vector<std::string> have, read_words(dir + "/cgroup.controllers"));
  SBX_ASSIGN(std::vector<std::string> enabled, read_words(dir + "/cgroup.subtree_control"));
  std::string request;
  for (const std::string& c : needed) {
    if (contains(have, c) && !contains(enabled, c)) {
      request += (request.empty() ? "+" : " +") + c;
    }
  }
  if (request.empty()) {
    return ok();
  }
  return write_file(dir + "/cgroup.subtree_control", request);
}

class V2Cgroup final : public Cgroup {
 public:
  V2Cgroup(std::string id, std::string path, Fd dir, std::string delegate_file)
      : Cgroup(std::move(id)), path_(std::move(path)), dir_(std::move(dir)), delegate_file_(std::move(delegate_file)) {}

  int clone_into_fd() const override { return dir_.get(); }

  Result<void> add_process(pid_t pid) override { return write_file(path_ + "/cgroup.procs", std::to_string(pid)); }

  Result<CgroupStats> stats() const override;
  Result<uint64_t> oom_kills() const override;
  Result<void> freeze(bool frozen) override;

  Result<std::vector<pid_t>> members() const override { return pids_in_tree(path_); }

  Result<void> kill_all() override;

  Result<void> remove() override {
    SBX_TRY(kill_all());
    SBX_TRY_CTX(remove_cgroup_dir(path_), "remove cgroup '{}'", path_);
    dir_.reset();
    return ok();
  }

  std::vector<std::string> paths() const override { return {path_}; }

  Result<void> delegate(uid_t uid, gid_t gid) override;

  Result<std::unique_ptr<Cgroup>> create_child(const std::string& name) override;

  Result<Fd> open_entry() const override { return open_at(AT_FDCWD, path_ + "/cgroup.procs", O_WRONLY); }

  std::unique_ptr<Cgroup> attach_child(const std::string& name) const override {
    if (!check_id(name).ok()) {
      return invalid_cgroup(id() + "/" + name);
    }
    return attach_v2(id() + "/" + name, path_ + "/" + name, delegate_file_);
  }

  Result<std::vector<std::string>> children() const override { return list_subdirs(path_); }

  Result<bool> remove_if_empty() override {
    auto gone = remove_cgroup_dir_if_empty(path_);
    if (!gone.ok()) {
      return std::move(gone).error().context(fmt::format("remove cgroup '{}'", path_));
    }
    if (*gone) {
      dir_.reset();
    }
    return gone;
  }

  // A handle on the cgroup at `path`, with its directory fd when it exists.
  static std::unique_ptr<Cgroup> attach_v2(std::string id, std::string path, std::string delegate_file) {
    Fd dir;
    auto opened = open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
    if (opened.ok()) {
      dir = std::move(*opened);
    }
    return std::make_unique<V2Cgroup>(std::move(id), std::move(path), std::move(dir), std::move(delegate_file));
  }

 private:
  // Without cgroup.kill (before Linux 5.14): freeze, SIGKILL every member, thaw.
  void kill_each_member();

  std::string path_;
  Fd dir_;
  std::string delegate_file_;
};

Result<CgroupStats> V2Cgroup::stats() const {
  if (!is_directory(path_)) {
    return Error::from_errno(fmt::format("stats of cgroup '{}'", path_), ENOENT);
  }
  CgroupStats s;
  const std::string cpu_stat = path_ + "/cpu.stat";
  const std::string memory_events = path_ + "/memory.events";
  const struct {
    std::string file;
    std::string_view key;  // empty: the file holds a single number
    uint64_t* out;
  } fields[] = {
      // clang-format off
      {cpu_stat, "usage_usec", &s.cpu_usage_usec},
      {cpu_stat, "nr_periods", &s.cpu_nr_periods},
      {cpu_stat, "nr_throttled", &s.cpu_nr_throttled},
      {cpu_stat, "throttled_usec", &s.cpu_throttled_usec},
      {path_ + "/memory.current", "", &s.memory_current},
      {path_ + "/memory.peak", "", &s.memory_peak},
      {memory_events, "oom_kill", &s.oom_kills},
      {path_ + "/pids.current", "", &s.pids_current},
      // clang-format on
  };
  for (const auto& f : fields) {
    auto value = f.key.empty() ? read_single_u64(f.file) : read_keyed_u64(f.file, f.key);
    if (!value.ok()) {
      return std::move(value).error().context(fmt::format("stats of cgroup '{}'", path_));
    }
    *f.out = value->value_or(0);
  }
  return s;
}

Result<uint64_t> V2Cgroup::oom_kills() const {
  auto value = read_keyed_u64(path_ + "/memory.events", "oom_kill");
  if (!value.ok()) {
    return std::move(value).error().context(fmt::format("OOM kills of cgroup '{}'", path_));
  }
  return value->value_or(0);
}

Result<std::unique_ptr<Cgroup>> V2Cgroup::create_child(const std::string& name) {
  SBX_TRY_CTX(check_id(name), "create a child of cgroup '{}'", path_);
  const std::string path = path_ + "/" + name;
  if (::mkdir(path.c_str(), 0755) < 0) {
    return sys_error("create child cgroup: mkdir '{}'", path);
  }
  auto dir = open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY);
  if (!dir.ok()) {
    ::rmdir(path.c_str());
    return std::move(dir).error().context("create child cgroup");
  }
  return std::unique_ptr<Cgroup>(std::make_unique<V2Cgroup>(id() + "/" + name, path, std::move(*dir), delegate_file_));
}

Result<void> V2Cgroup::delegate(uid_t uid, gid_t gid) {
  if (!dir_.valid()) {
    return Error::from_errno(fmt::format("delegate cgroup '{}' to {}:{}", path_, uid, gid), ENOENT);
  }
  SBX_ASSIGN_CTX(std::vector<std::string> files, read_delegate_files(delegate_file_), "delegate cgroup '{}'", path_);
  SBX_TRY_CTX(chown_for_delegation(dir_.get(), path_, files, uid, gid), "delegate cgroup '{}'", path_);
  return ok();
}

Result<void> V2Cgroup::freeze(bool frozen) {
  const char* what = frozen ? "freeze" : "thaw";
  SBX_TRY_CTX(write_file(path_ + "/cgroup.freeze", frozen ? "1" : "0"), "{} cgroup '{}'", what, path_);
  SBX_TRY_CTX(wait_for_event(path_ + "/cgroup.events", "frozen", frozen ? 1 : 0, kSettleTimeout), "{} cgroup '{}'",
              what, path_);
  return ok();
}

void V2Cgroup::kill_each_member() {
  bool frozen = freeze(true).ok();
  auto pids = pids_in_tree(path_);
  if (pids.ok()) {
    kill_pids(*pids);
  }
  if (frozen) {
    (void)freeze(false);
  }
}

Result<void> V2Cgroup::kill_all() {
  if (!is_directory(path_)) {
    return ok();
  }
  auto written = write_file(path_ + "/cgroup.kill", "1");
  if (!written.ok()) {
    if (!is_directory(path_)) {
      return ok();
    }
    if (written.error().sys_errno() != ENOENT) {
      return std::move(written).error().context(fmt::format("kill members of cgroup '{}'", path_));
    }
    kill_each_member();
  }
  auto gone = wait_for_event(path_ + "/cgroup.events", "populated", 0, kSettleTimeout);
  if (!gone.ok() && is_directory(path_)) {
    return std::move(gone).error().context(fmt::format("kill members of cgroup '{}'", path_));
  }
  return ok();
}

class V2Manager final : public CgroupManager {
 public:
  V2Manager(std::string root, std::string parent, std::string delegate_file, bool enforces_devices)
      : root_(std::move(root)),
        parent_(std::move(parent)),
        delegate_file_(std::move(delegate_file)),
        enforces_devices_(enforces_devices) {}

  CgroupMode mode() const override { return CgroupMode::kV2; }
  Result<void> check_supported(const CgroupLimits& limits) const override;

  Result<std::unique_ptr<Cgroup>> create(const std::string& id, const CgroupLimits& limits) override {
    auto made = create_impl(id, limits);
    if (!made.ok()) {
      return std::move(made).error().context(fmt::format("create cgroup '{}/{}'", parent_dir(), id));
    }
    return made;
  }

  std::unique_ptr<Cgroup> attach(const std::string& id) const override {
    if (!check_id(id).ok()) {
      return invalid_cgroup(id);
    }
    return V2Cgroup::attach_v2(id, parent_dir() + "/" + id, delegate_file_);
  }

  Result<std::vector<std::string>> list() const override { return list_subdirs(parent_dir()); }

  Result<void> remove_parent() override {
    std::string dir = parent_dir();
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT || errno == EBUSY || errno == ENOTEMPTY) {
      return ok();
    }
    return sys_error("rmdir '{}'", dir);
  }

  std::vector<std::string> parent_paths() const override { return {parent_dir()}; }

 private:
  std::string parent_dir() const { return cgroup_dir(root_, parent_); }
  Result<std::unique_ptr<Cgroup>> create_impl(const std::string& id, const CgroupLimits& limits);

  std::string root_;    // the cgroup2 mount
  std::string parent_;  // normalized path of the parent inside the hierarchy
  std::string delegate_file_;
  // Whether root_ is a cgroup2 mount, where device programs can be attached. Only the unit tests' temp directories
  // are not: no kernel enforces anything there, and no process can be cloned into them either.
  bool enforces_devices_;
};

Result<void> V2Manager::check_supported(const CgroupLimits& limits) const {
  std::vector<std::string> needed = v2_controllers_for(limits);
  if (needed.empty()) {
    return ok();
  }
  const std::string pdir = parent_dir();
  std::vector<std::string> available;
  std::string where;
  if (is_directory(pdir)) {
    SBX_ASSIGN(available, read_words(pdir + "/cgroup.controllers"));
    where = fmt::format("'{}' (cgroup.controllers: {})", pdir, list_or_none(available));
  } else {
    // The parent will be created below its nearest existing ancestor, which we never write to: a new cgroup there
    // gets exactly the controllers that ancestor's cgroup.subtree_control enables.
    std::string ancestor = parent_;
    do {
      ancestor = ancestor.substr(0, ancestor.rfind('/'));
      ancestor = ancestor.empty() ? "/" : ancestor;
    } while (ancestor != "/" && !is_directory(cgroup_dir(root_, ancestor)));
    const std::string adir = cgroup_dir(root_, ancestor);
    SBX_ASSIGN(available, read_words(adir + "/cgroup.subtree_control"));
    SBX_ASSIGN(std::vector<std::string> present, read_words(adir + "/cgroup.controllers"));
    where = fmt::format("'{}' for new child cgroups (cgroup.subtree_control: {}; cgroup.controllers: {})", adir,
                        list_or_none(available), list_or_none(present));
  }
  for (const std::string& c : needed) {
    if (!contains(available, c)) {
      return make_error("{}: the {} controller is not available in {}", limit_field_for(limits, c), c, where);
    }
  }
  if (limits.memory_swap_max && is_directory(pdir) && !path_exists(pdir + "/memory.swap.max")) {
    return make_error("limits.swap: swap accounting is not available: '{}/memory.swap.max' does not exist", pdir);
  }
  return ok();
}

Result<std::unique_ptr<Cgroup>> V2Manager::create_impl(const std::string& id, const CgroupLimits& limits) {
  SBX_TRY(check_id(id));
  SBX_TRY(validate_cgroup_limits(limits));
  SBX_TRY(check_supported(limits));
  std::vector<std::string> created;  // top-down; removed again on failure
  ScopeGuard rollback([&created] { rollback_dirs(created); });
  for (const std::string& prefix : path_prefixes(parent_)) {
    std::string dir = cgroup_dir(root_, prefix);
    SBX_ASSIGN(bool made, make_dir(dir));
    if (made) {
      created.push_back(dir);
    }
  }
  const std::string pdir = parent_dir();
  std::vector<std::string> needed = v2_controllers_for(limits);
  if (!needed.empty()) {
    // Only directories created here, and the parent itself (sbx's own by configuration), are written to.
    std::vector<std::string> dirs = created;
    if (dirs.empty() || dirs.back() != pdir) {
      dirs.push_back(pdir);
    }
    for (const std::string& dir : dirs) {
      SBX_TRY(enable_controllers(dir, needed));
    }
  }
  const std::string path = pdir + "/" + id;
  if (::mkdir(path.c_str(), 0755) < 0) {
    return sys_error("mkdir '{}'", path);
  }
  created.push_back(path);
  SBX_ASSIGN(Fd dir, open_at(AT_FDCWD, path, O_RDONLY | O_DIRECTORY));
  if (enforces_devices_) {
    SBX_TRY(attach_device_policy(dir.get(), sandbox_device_rules(limits.devices), path));
  }
  SBX_TRY(write_v2_limits(path, limits));
  rollback.dismiss();
  return std::unique_ptr<Cgroup>(std::make_unique<V2Cgroup>(id, path, std::move(dir), delegate_file_));
}

}  // namespace

Result<void> write_v2_limits(const std::string& dir, const CgroupLimits& limits) {
  if (limits.memory_max) {
    SBX_TRY(write_file(dir + "/memory.max", std::to_string(*limits.memory_max)));
  }
  if (limits.memory_swap_max) {
    SBX_TRY(write_file(dir + "/memory.swap.max", std::to_string(*limits.memory_swap_max)));
  }
  if (limits.vcpus) {
    SBX_TRY(write_file(dir + "/cpu.max", fmt::format("{} {}", cpu_quota_us(*limits.vcpus), kCpuPeriodUs)));
  }
  if (limits.cpu_weight) {
    SBX_TRY(write_file(dir + "/cpu.weight", std::to_string(*limits.cpu_weight)));
  }
  if (limits.pids_max) {
    SBX_TRY(write_file(dir + "/pids.max", std::to_string(*limits.pids_max)));
  }
  for (const IoLimit& io : limits.io) {
    SBX_TRY(write_file(dir + "/io.max", io_max_line(io)));
  }
  return ok();
}

Result<std::unique_ptr<CgroupManager>> open_v2(const CgroupConfig& config, const std::vector<SelfCgroup>& self) {
  if (!is_directory(config.root)) {
    return Error::from_errno(fmt::format("cgroup2 mount '{}'", config.root), ENOENT);
  }
  SBX_ASSIGN(std::string parent, resolve_parent(config, own_cgroup(self, ""), "v2"));
  SBX_ASSIGN(bool cgroup2, is_cgroup2_mount(config.root));
  return std::unique_ptr<CgroupManager>(
      std::make_unique<V2Manager>(config.root, std::move(parent), config.delegate_file, cgroup2));
}

}  // namespace sbx::rt::cgroup_detail
