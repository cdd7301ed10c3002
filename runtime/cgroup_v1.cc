// cgroup v1 back end: one directory per sandbox in each hierarchy sbx uses (memory, cpu, cpuacct, pids, freezer,
// devices when the kernel has it, and blkio when io limits are given). Combined mounts ("cpu,cpuacct") are one
// hierarchy and get one directory.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <limits>

#include "base/file.h"
#include "base/scope.h"
#include "runtime/cgroup.h"
#include "runtime/cgroup_internal.h"
#include "runtime/device_policy.h"

namespace sbx::rt::cgroup_detail {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kControllers[] = {"memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "devices"};
constexpr std::string_view kIoController = "blkio";
// Optional: a kernel without it has no device policy on v1 (there is nothing to enforce one with).
constexpr std::string_view kDevicesController = "devices";

struct Hierarchy {
  std::string mount;                     // the hierarchy's directory, e.g. /sys/fs/cgroup/memory
  std::vector<std::string> controllers;  // those of kControllers it holds
  std::string parent_path;               // normalized path of the parent inside the hierarchy
  std::string parent;                    // absolute directory of the parent
  bool io_only = true;                   // holds nothing but blkio: used only when io limits are given
};

// One directory of a v1 cgroup and the controllers of its hierarchy.
struct V1Dir {
  std::string path;
  std::vector<std::string> controllers;
};

std::string canonical(const std::string& path) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (real == nullptr) {
    return path;
  }
  std::string out = real;
  ::free(real);
  return out;
}

bool holds(const std::vector<std::string>& controllers, std::string_view c) {
  return std::find(controllers.begin(), controllers.end(), c) != controllers.end();
}

// The directory of the hierarchy holding `controller`: <root>/<controller> (a mount or a symlink to a combined one),
// else a combined mount named like "cpu,cpuacct".
Result<std::optional<std::string>> find_mount(const std::string& root, std::string_view controller) {
  std::string direct = root + "/" + std::string(controller);
  if (is_directory(direct)) {
    return std::optional<std::string>(canonical(direct));
  }
  SBX_ASSIGN(std::vector<std::string> names, list_subdirs(root));
  for (const std::string& name : names) {
    std::string_view rest = name;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      if (rest.substr(0, comma) == controller) {
        return std::optional<std::string>(canonical(root + "/" + name));
      }
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return std::optional<std::string>();
}

// Writes "FROZEN" or "THAWED" to freezer.state and waits until it reads back so.
Result<void> set_freezer(const std::string& dir, bool frozen, std::chrono::milliseconds timeout) {
  const std::string want = frozen ? "FROZEN" : "THAWED";
  const std::string file = dir + "/freezer.state";
  SBX_TRY(write_file(file, want));
  const auto deadline = Clock::now() + timeout;
  for (auto delay = std::chrono::milliseconds(1);; delay = std::min(delay * 2, std::chrono::milliseconds(20))) {
    SBX_ASSIGN(std::string state, read_file(file));
    if (trim(state) == want) {
      return ok();
    }
    if (Clock::now() >= deadline) {
      return Error(fmt::format("'{}' still says '{}' after {} ms", file, trim(state), timeout.count()), ETIMEDOUT);
    }
    sleep_for(delay);
  }
}

// Thaws every cgroup below `dir` in the freezer hierarchy. A child that froze itself (an exec's tree being killed
// when its killer died before the thaw) stays frozen when only its parent is thawed, and a frozen task cannot die.
void thaw_descendants(const std::string& dir) {
  auto children = list_subdirs(dir);
  for (const std::string& child : children.ok() ? *children : std::vector<std::string>{}) {
    const std::string path = dir + "/" + child;
    (void)write_file(path + "/freezer.state", "THAWED");
    thaw_descendants(path);
  }
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return b > std::numeric_limits<uint64_t>::max() - a ? std::numeric_limits<uint64_t>::max() : a + b;
}

// A sandbox's cgroup: a directory in every hierarchy sbx uses. An exec's child cgroup: a directory in the freezer
// hierarchy only, with the sandbox's directories of the other hierarchies as `placement` (add_process writes there
// too, but nothing else touches them).
class V1Cgroup final : public Cgroup {
 public:
  V1Cgroup(std::string id, std::vector<V1Dir> dirs, std::vector<std::string> placement = {})
      : Cgroup(std::move(id)), dirs_(std::move(dirs)), placement_(std::move(placement)) {}

  int clone_into_fd() const override { return -1; }

  Result<void> add_process(pid_t pid) override {
    for (const std::string& dir : placement_) {
      SBX_TRY(write_file(dir + "/cgroup.procs", std::to_string(pid)));
    }
    for (const V1Dir& d : dirs_) {
      SBX_TRY(write_file(d.path + "/cgroup.procs", std::to_string(pid)));
    }
    return ok();
  }

  Result<CgroupStats> stats() const override;
  Result<uint64_t> oom_kills() const override;

  Result<void> freeze(bool frozen) override {
    std::string dir = dir_for("freezer");
    if (dir.empty()) {
      return make_error("{} cgroup '{}': no freezer hierarchy", frozen ? "freeze" : "thaw", id());
    }
    SBX_TRY_CTX(set_freezer(dir, frozen, kSettleTimeout), "{} cgroup '{}'", frozen ? "freeze" : "thaw", dir);
    return ok();
  }

  Result<std::vector<pid_t>> members() const override {
    std::string dir = dir_for("freezer");
    dir = dir.empty() && !dirs_.empty() ? dirs_.front().path : dir;
    if (dir.empty()) {
      return std::vector<pid_t>{};
    }
    return pids_in_tree(dir);
  }

  Result<void> kill_all() override;
  Result<void> remove() override;

  std::vector<std::string> paths() const override {
    std::vector<std::string> out;
    for (const V1Dir& d : dirs_) {
      out.push_back(d.path);
    }
    return out;
  }

  // v1 has no safe delegation: a delegatee could write its own cgroup's limits. The sandbox's root can read its
  // cgroup, not manage it.
  Result<void> delegate(uid_t, gid_t) override { return ok(); }

  Result<std::unique_ptr<Cgroup>> create_child(const std::string& name) override;

  Result<Fd> open_entry() const override {
    if (dirs_.size() != 1) {
      return Error(fmt::format("cgroup '{}' has a directory in {} hierarchies: a process enters it through add_process",
                               id(), dirs_.size()),
                   EINVAL);
    }
    return open_at(AT_FDCWD, dirs_.front().path + "/cgroup.procs", O_WRONLY);
  }

  std::unique_ptr<Cgroup> attach_child(const std::string& name) const override;
  Result<std::vector<std::string>> children() const override;
  Result<bool> remove_if_empty() override;

 private:
  std::string dir_for(std::string_view controller) const {
    for (const V1Dir& d : dirs_) {
      if (holds(d.controllers, controller)) {
        return d.path;
      }
    }
    return {};
  }
  // Every pid in the cgroup.procs of every existing directory, without duplicates.
  std::vector<pid_t> all_members() const;

  std::vector<V1Dir> dirs_;
  std::vector<std::string> placement_;
};

Result<CgroupStats> V1Cgroup::stats() const {
  if (std::none_of(dirs_.begin(), dirs_.end(), [](const V1Dir& d) { return is_directory(d.path); })) {
    return Error::from_errno(fmt::format("stats of cgroup '{}'", id()), ENOENT);
  }
  CgroupStats s;
  uint64_t throttled_ns = 0;
  uint64_t usage_ns = 0;
  const struct {
    std::string_view controller;
    std::string_view file;
    std::string_view key;  // empty: the file holds a single number
    uint64_t* out;
  } fields[] = {
      {"cpuacct", "cpuacct.usage", "", &usage_ns},
      {"cpu", "cpu.stat", "nr_periods", &s.cpu_nr_periods},
      {"cpu", "cpu.stat", "nr_throttled", &s.cpu_nr_throttled},
      {"cpu", "cpu.stat", "throttled_time", &throttled_ns},
      {"memory", "memory.usage_in_bytes", "", &s.memory_current},
      {"memory", "memory.max_usage_in_bytes", "", &s.memory_peak},
      {"memory", "memory.oom_control", "oom_kill", &s.oom_kills},
      {"pids", "pids.current", "", &s.pids_current},
  };
  for (const auto& f : fields) {
    std::string dir = dir_for(f.controller);
    if (dir.empty()) {
      continue;
    }
    std::string file = dir + "/" + std::string(f.file);
    auto value = f.key.empty() ? read_single_u64(file) : read_keyed_u64(file, f.key);
    if (!value.ok()) {
      return std::move(value).error().context(fmt::format("stats of cgroup '{}'", id()));
    }
    *f.out = value->value_or(0);
  }
  s.cpu_usage_usec = usage_ns / 1000;
  s.cpu_throttled_usec = throttled_ns / 1000;
  return s;
}

Result<uint64_t> V1Cgroup::oom_kills() const {
  std::string dir = dir_for("memory");
  if (dir.empty()) {
    return uint64_t{0};  // no memory hierarchy: nothing is ever OOM-killed through this cgroup
  }
  auto value = read_keyed_u64(dir + "/memory.oom_control", "oom_kill");
  if (!value.ok()) {
    return std::move(value).error().context(fmt::format("OOM kills of cgroup '{}'", id()));
  }
  return value->value_or(0);
}

std::vector<pid_t> V1Cgroup::all_members() const {
  std::vector<pid_t> out;
  for (const V1Dir& d : dirs_) {
    auto pids = pids_in_tree(d.path);
    if (pids.ok()) {
      out.insert(out.end(), pids->begin(), pids->end());
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Rounds of: freeze (so nothing forks or exits under us and no pid can be reused), SIGKILL every member, thaw (a
// frozen task cannot die). Ends when every hierarchy's cgroup.procs is empty, or fails after kSettleTimeout.
Result<void> V1Cgroup::kill_all() {
  const std::string freezer = dir_for("freezer");
  const auto deadline = Clock::now() + kSettleTimeout;
  for (;;) {
    if (all_members().empty()) {
      return ok();
    }
    bool frozen = !freezer.empty() && set_freezer(freezer, true, std::chrono::milliseconds(1000)).ok();
    std::vector<pid_t> pids = all_members();
    kill_pids(pids);
    if (!freezer.empty() && is_directory(freezer)) {
      thaw_descendants(freezer);
      auto thawed = set_freezer(freezer, false, kSettleTimeout);
      if (!thawed.ok() && frozen) {
        return std::move(thawed).error().context(fmt::format("kill members of cgroup '{}'", id()));
      }
    }
    if (Clock::now() >= deadline) {
      return Error(fmt::format("kill members of cgroup '{}': {} processes still there after {} ms", id(), pids.size(),
                               kSettleTimeout.count()),
                   ETIMEDOUT);
    }
    sleep_for(std::chrono::milliseconds(5));
  }
}

Result<void> V1Cgroup::remove() {
  SBX_TRY(kill_all());
  Result<void> result;
  for (const V1Dir& d : dirs_) {
    auto removed = remove_cgroup_dir(d.path);
    if (!removed.ok() && result.ok()) {
      result = std::move(removed).error().context(fmt::format("remove cgroup '{}'", id()));
    }
  }
  return result;
}

Result<std::unique_ptr<Cgroup>> V1Cgroup::create_child(const std::string& name) {
  SBX_TRY_CTX(check_id(name), "create a child of cgroup '{}'", id());
  const std::string freezer = dir_for("freezer");
  if (freezer.empty()) {
    return make_error("create a child of cgroup '{}': no freezer hierarchy", id());
  }
  const std::string path = freezer + "/" + name;
  if (::mkdir(path.c_str(), 0755) < 0) {
    return sys_error("create child cgroup: mkdir '{}'", path);
  }
  return attach_child(name);
}

std::unique_ptr<Cgroup> V1Cgroup::attach_child(const std::string& name) const {
  const std::string freezer = dir_for("freezer");
  if (!check_id(name).ok() || freezer.empty()) {
    return invalid_cgroup(id() + "/" + name);
  }
  std::vector<V1Dir> dirs;
  std::vector<std::string> placement = placement_;
  for (const V1Dir& d : dirs_) {
    if (d.path == freezer) {
      dirs.push_back({d.path + "/" + name, d.controllers});
    } else {
      placement.push_back(d.path);
    }
  }
  return std::make_unique<V1Cgroup>(id() + "/" + name, std::move(dirs), std::move(placement));
}

Result<std::vector<std::string>> V1Cgroup::children() const {
  std::vector<std::string> out;
  for (const V1Dir& d : dirs_) {
    SBX_ASSIGN(std::vector<std::string> names, list_subdirs(d.path));
    out.insert(out.end(), names.begin(), names.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<bool> V1Cgroup::remove_if_empty() {
  if (!all_members().empty()) {
    return false;
  }
  for (const V1Dir& d : dirs_) {
    auto gone = remove_cgroup_dir_if_empty(d.path);
    if (!gone.ok()) {
      return std::move(gone).error().context(fmt::format("remove cgroup '{}'", id()));
    }
    if (!*gone) {
      return false;
    }
  }
  return true;
}

class V1Manager final : public CgroupManager {
 public:
  V1Manager(std::string root, std::vector<Hierarchy> hierarchies)
      : root_(std::move(root)), hierarchies_(std::move(hierarchies)) {}

  CgroupMode mode() const override { return CgroupMode::kV1; }
  Result<void> check_supported(const CgroupLimits& limits) const override;

  Result<std::unique_ptr<Cgroup>> create(const std::string& id, const CgroupLimits& limits) override {
    auto made = create_impl(id, limits);
    if (!made.ok()) {
      return std::move(made).error().context(fmt::format("create cgroup '{}'", id));
    }
    return made;
  }

  std::unique_ptr<Cgroup> attach(const std::string& id) const override {
    if (!check_id(id).ok()) {
      return invalid_cgroup(id);
    }
    std::vector<V1Dir> dirs;
    for (const Hierarchy& h : hierarchies_) {
      std::string path = h.parent + "/" + id;
      if (!h.io_only || is_directory(path)) {
        dirs.push_back({std::move(path), h.controllers});
      }
    }
    return std::make_unique<V1Cgroup>(id, std::move(dirs));
  }

  Result<std::vector<std::string>> list() const override {
    std::vector<std::string> out;
    for (const Hierarchy& h : hierarchies_) {
      SBX_ASSIGN(std::vector<std::string> names, list_subdirs(h.parent));
      out.insert(out.end(), names.begin(), names.end());
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  Result<void> remove_parent() override {
    for (const Hierarchy& h : hierarchies_) {
      if (::rmdir(h.parent.c_str()) < 0 && errno != ENOENT && errno != EBUSY && errno != ENOTEMPTY) {
        return sys_error("rmdir '{}'", h.parent);
      }
    }
    return ok();
  }

  std::vector<std::string> parent_paths() const override {
    std::vector<std::string> out;
    for (const Hierarchy& h : hierarchies_) {
      out.push_back(h.parent);
    }
    return out;
  }

 private:
  const Hierarchy* hierarchy_of(std::string_view controller) const {
    for (const Hierarchy& h : hierarchies_) {
      if (holds(h.controllers, controller)) {
        return &h;
      }
    }
    return nullptr;
  }
  Result<std::unique_ptr<Cgroup>> create_impl(const std::string& id, const CgroupLimits& limits);

  std::string root_;
  std::vector<Hierarchy> hierarchies_;
};

Result<void> V1Manager::check_supported(const CgroupLimits& limits) const {
  if (!limits.io.empty() && hierarchy_of(kIoController) == nullptr) {
    return make_error("limits.io: the blkio controller is not mounted under '{}'", root_);
  }
  if (limits.memory_swap_max) {
    if (!limits.memory_max) {
      return make_error(
          "limits.swap: cgroup v1 limits swap only together with memory "
          "(memory.memsw.limit_in_bytes = memory + swap); set limits.memory too");
    }
    std::string memsw = hierarchy_of("memory")->mount + "/memory.memsw.limit_in_bytes";
    if (!path_exists(memsw)) {
      return make_error("limits.swap: swap accounting is not available: '{}' does not exist", memsw);
    }
  }
  if (limits.vcpus) {
    std::string quota = hierarchy_of("cpu")->mount + "/cpu.cfs_quota_us";
    if (!path_exists(quota)) {
      return make_error("limits.vcpus: CPU bandwidth control is not available: '{}' does not exist", quota);
    }
  }
  return ok();
}

Result<std::unique_ptr<Cgroup>> V1Manager::create_impl(const std::string& id, const CgroupLimits& limits) {
  SBX_TRY(check_id(id));
  SBX_TRY(validate_cgroup_limits(limits));
  SBX_TRY(check_supported(limits));
  std::vector<std::string> created;  // in creation order; removed again on failure
  ScopeGuard rollback([&created] { rollback_dirs(created); });
  std::vector<V1Dir> dirs;
  for (const Hierarchy& h : hierarchies_) {
    if (h.io_only && limits.io.empty()) {
      continue;
    }
    for (const std::string& prefix : path_prefixes(h.parent_path)) {
      std::string dir = cgroup_dir(h.mount, prefix);
      SBX_ASSIGN(bool made, make_dir(dir));
      if (made) {
        created.push_back(dir);
      }
    }
    std::string path = h.parent + "/" + id;
    if (::mkdir(path.c_str(), 0755) < 0) {
      return sys_error("mkdir '{}'", path);
    }
    created.push_back(path);
    dirs.push_back({path, h.controllers});
  }
  auto dir_for = [&dirs](std::string_view c) {
    auto it = std::find_if(dirs.begin(), dirs.end(), [c](const V1Dir& d) { return holds(d.controllers, c); });
    return it == dirs.end() ? std::string() : it->path;
  };
  SBX_TRY(write_v1_limits({dir_for("memory"), dir_for("cpu"), dir_for("pids"), dir_for(kIoController)}, limits));
  if (const std::string devices = dir_for(kDevicesController); !devices.empty()) {
    SBX_TRY(write_v1_device_policy(devices, sandbox_device_rules(limits.devices)));
  }
  rollback.dismiss();
  return std::unique_ptr<Cgroup>(std::make_unique<V1Cgroup>(id, std::move(dirs)));
}

Result<std::string> require_dir(const std::string& dir, std::string_view field, std::string_view controller) {
  if (dir.empty()) {
    return make_error("{}: no {} cgroup to write it to", field, controller);
  }
  return dir;
}

Result<void> write_io_limits(const std::string& dir, const std::vector<IoLimit>& io) {
  for (const IoLimit& l : io) {
    const std::pair<const char*, const std::optional<uint64_t>*> files[] = {
        {"blkio.throttle.read_bps_device", &l.rbps},
        {"blkio.throttle.write_bps_device", &l.wbps},
        {"blkio.throttle.read_iops_device", &l.riops},
        {"blkio.throttle.write_iops_device", &l.wiops},
    };
    for (const auto& [file, value] : files) {
      if (value->has_value()) {
        SBX_TRY(write_file(dir + "/" + file, fmt::format("{} {}", l.device, **value)));
      }
    }
  }
  return ok();
}

}  // namespace

Result<void> write_v1_limits(const V1LimitDirs& dirs, const CgroupLimits& limits) {
  if (limits.memory_max || limits.memory_swap_max) {
    SBX_ASSIGN(std::string dir, require_dir(dirs.memory, "limits.memory", "memory"));
    if (limits.memory_swap_max && !limits.memory_max) {
      return make_error("limits.swap: cgroup v1 limits swap only together with memory");
    }
    SBX_TRY(write_file(dir + "/memory.limit_in_bytes", std::to_string(*limits.memory_max)));
    if (limits.memory_swap_max) {
      // memsw counts memory + swap and must not be below memory.limit_in_bytes, so it is written second.
      uint64_t memsw = saturating_add(*limits.memory_max, *limits.memory_swap_max);
      SBX_TRY(write_file(dir + "/memory.memsw.limit_in_bytes", std::to_string(memsw)));
    }
  }
  if (limits.vcpus || limits.cpu_weight) {
    SBX_ASSIGN(std::string dir, require_dir(dirs.cpu, limits.vcpus ? "limits.vcpus" : "limits.cpu_weight", "cpu"));
    if (limits.vcpus) {
      SBX_TRY(write_file(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)));
      SBX_TRY(write_file(dir + "/cpu.cfs_quota_us", std::to_string(cpu_quota_us(*limits.vcpus))));
    }
    if (limits.cpu_weight) {
      SBX_TRY(write_file(dir + "/cpu.shares", std::to_string(cpu_shares_from_weight(*limits.cpu_weight))));
    }
  }
  if (limits.pids_max) {
    SBX_ASSIGN(std::string dir, require_dir(dirs.pids, "limits.pids", "pids"));
    SBX_TRY(write_file(dir + "/pids.max", std::to_string(*limits.pids_max)));
  }
  if (!limits.io.empty()) {
    SBX_ASSIGN(std::string dir, require_dir(dirs.blkio, "limits.io", "blkio"));
    SBX_TRY(write_io_limits(dir, limits.io));
  }
  return ok();
}

Result<std::unique_ptr<CgroupManager>> open_v1(const CgroupConfig& config, const std::vector<SelfCgroup>& self) {
  std::vector<Hierarchy> hierarchies;
  for (std::string_view controller : kControllers) {
    SBX_ASSIGN(std::optional<std::string> mount, find_mount(config.root, controller));
    if (!mount) {
      if (controller == kIoController || controller == kDevicesController) {
        continue;
      }
      return make_error("no hierarchy of the {} controller under '{}'", controller, config.root);
    }
    auto same =
        std::find_if(hierarchies.begin(), hierarchies.end(), [&](const Hierarchy& h) { return h.mount == *mount; });
    Hierarchy& h = same != hierarchies.end() ? *same : hierarchies.emplace_back(Hierarchy{*mount, {}, {}, {}, true});
    h.controllers.emplace_back(controller);
    h.io_only = h.io_only && controller == kIoController;
  }
  for (auto it = hierarchies.begin(); it != hierarchies.end();) {
    std::optional<std::string> own;
    for (const std::string& c : it->controllers) {
      own = own ? own : own_cgroup(self, c);
    }
    auto parent = resolve_parent(config, own, it->mount.substr(it->mount.rfind('/') + 1));
    if (!parent.ok() && it->io_only) {
      it = hierarchies.erase(it);  // blkio is optional: without a usable parent there, io limits are unsupported
      continue;
    }
    SBX_ASSIGN(it->parent_path, std::move(parent));
    it->parent = cgroup_dir(it->mount, it->parent_path);
    ++it;
  }
  return std::unique_ptr<CgroupManager>(std::make_unique<V1Manager>(config.root, std::move(hierarchies)));
}

}  // namespace sbx::rt::cgroup_detail
