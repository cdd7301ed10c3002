// cgroups: mode detection, /proc/self/cgroup parsing, limit validation, and the helpers both back ends share.
#include "runtime/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>

#include "base/file.h"
#include "runtime/cgroup_internal.h"
#include "runtime/device_policy.h"

namespace sbx::rt {

namespace cd = cgroup_detail;

namespace {

constexpr uint64_t kMinMemory = 4ull << 20;
constexpr double kMinVcpus = 0.01;
constexpr double kMaxVcpus = 1024;
constexpr uint32_t kMaxCpuWeight = 10000;
constexpr uint64_t kMaxPids = 4194304;  // PID_MAX_LIMIT on 64-bit

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(sep, start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) {
      return out;
    }
    start = end + 1;
  }
}

bool is_device_number(std::string_view device) {
  size_t colon = device.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == device.size()) {
    return false;
  }
  auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(device.substr(0, colon)) && digits(device.substr(colon + 1));
}

Result<void> validate_io(const std::vector<IoLimit>& io) {
  std::set<std::string> seen;
  for (size_t i = 0; i < io.size(); ++i) {
    const IoLimit& l = io[i];
    if (!is_device_number(l.device)) {
      return make_error("limits.io[{}].device: '{}' is not a block device number of the form MAJOR:MINOR", i, l.device);
    }
    if (!seen.insert(l.device).second) {
      return make_error("limits.io[{}].device: '{}' is listed twice", i, l.device);
    }
    const std::pair<const char*, const std::optional<uint64_t>*> values[] = {
        {"rbps", &l.rbps}, {"wbps", &l.wbps}, {"riops", &l.riops}, {"wiops", &l.wiops}};
    bool any = false;
    for (const auto& [name, value] : values) {
      if (value->has_value() && **value == 0) {
        return make_error("limits.io[{}].{}: 0 is not a limit (leave it out for no limit)", i, name);
      }
      any = any || value->has_value();
    }
    if (!any) {
      return make_error("limits.io[{}]: no limit given for '{}' (rbps, wbps, riops or wiops)", i, l.device);
    }
  }
  return ok();
}

Result<void> validate_vcpus(double v) {
  if (std::isnan(v)) {
    return make_error("limits.vcpus: not a number");
  }
  if (v < kMinVcpus) {
    return make_error("limits.vcpus: {} is below the minimum of {}", v, kMinVcpus);
  }
  if (v > kMaxVcpus) {
    return make_error("limits.vcpus: {} is above the maximum of {}", v, kMaxVcpus);
  }
  return ok();
}

class InvalidCgroup final : public Cgroup {
 public:
  explicit InvalidCgroup(std::string id) : Cgroup(std::move(id)) {}
  int clone_into_fd() const override { return -1; }
  Result<void> add_process(pid_t) override { return invalid(); }
  Result<CgroupStats> stats() const override { return invalid(); }
  Result<uint64_t> oom_kills() const override { return invalid(); }
  Result<void> freeze(bool) override { return invalid(); }
  Result<std::vector<pid_t>> members() const override { return std::vector<pid_t>{}; }
  Result<void> kill_all() override { return ok(); }
  Result<void> remove() override { return ok(); }
  std::vector<std::string> paths() const override { return {}; }
  Result<void> delegate(uid_t, gid_t) override { return invalid(); }
  Result<std::unique_ptr<Cgroup>> create_child(const std::string&) override { return invalid(); }
  Result<Fd> open_entry() const override { return invalid(); }
  std::unique_ptr<Cgroup> attach_child(const std::string& name) const override {
    return std::make_unique<InvalidCgroup>(id() + "/" + name);
  }
  Result<std::vector<std::string>> children() const override { return std::vector<std::string>{}; }
  Result<bool> remove_if_empty() override { return true; }

 private:
  Error invalid() const { return Error(fmt::format("cgroup id '{}' is not a single path component", id()), EINVAL); }
};

Result<cd::SelfCgroup> parse_self_line(std::string_view line) {
  size_t first = line.find(':');
  size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
  if (second == std::string_view::npos) {
    return make_error("'{}' is not of the form ID:CONTROLLERS:PATH", line);
  }
  cd::SelfCgroup entry;
  auto id = parse_u64(line.substr(0, first));
  if (!id.ok() || *id > 0xffffffffu) {
    return make_error("'{}': hierarchy id is not a number", line);
  }
  entry.hierarchy_id = static_cast<unsigned>(*id);
  std::string_view controllers = line.substr(first + 1, second - first - 1);
  if (!controllers.empty()) {
    entry.controllers = split(controllers, ',');
  }
  auto path = cd::normalize_cgroup_path(line.substr(second + 1));
  if (!path.ok()) {
    return std::move(path).error().context(fmt::format("'{}'", line));
  }
  entry.path = std::move(*path);
  return entry;
}

// Whether any of the directories was made after `since` (a cgroup directory's mtime is its creation time: cgroupfs
// never updates it).
bool created_within(const std::vector<std::string>& dirs, std::chrono::system_clock::time_point since) {
  for (const std::string& dir : dirs) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
      auto made = std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
      if (made > since) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

Result<void> validate_cgroup_limits(const CgroupLimits& limits) {
  if (limits.memory_max && *limits.memory_max < kMinMemory) {
    return make_error("limits.memory: {} is below the minimum of 4 MiB ({})", *limits.memory_max, kMinMemory);
  }
  if (limits.vcpus) {
    SBX_TRY(validate_vcpus(*limits.vcpus));
  }
  if (limits.cpu_weight && (*limits.cpu_weight < 1 || *limits.cpu_weight > kMaxCpuWeight)) {
    return make_error("limits.cpu_weight: {} is outside 1..{}", *limits.cpu_weight, kMaxCpuWeight);
  }
  if (limits.pids_max && *limits.pids_max < 1) {
    return make_error("limits.pids: {} is below the minimum of 1", *limits.pids_max);
  }
  if (limits.pids_max && *limits.pids_max > kMaxPids) {
    return make_error("limits.pids: {} is above the maximum of {}", *limits.pids_max, kMaxPids);
  }
  SBX_TRY(validate_io(limits.io));
  return validate_device_rules(limits.devices, "limits.devices");
}

Result<size_t> Cgroup::remove_empty_children(std::string_view prefix, std::chrono::milliseconds min_age) {
  SBX_ASSIGN(std::vector<std::string> names, children());
  const auto now = std::chrono::system_clock::now();
  size_t removed = 0;
  for (const std::string& name : names) {
    if (!name.starts_with(prefix)) {
      continue;
    }
    std::unique_ptr<Cgroup> child = attach_child(name);
    if (min_age.count() > 0 && created_within(child->paths(), now - min_age)) {
      continue;
    }
    auto gone = child->remove_if_empty();
    if (!gone.ok()) {
      return std::move(gone).error().context(fmt::format("sweep child cgroups of '{}'", id()));
    }
    removed += *gone ? 1 : 0;
  }
  return removed;
}

Result<std::unique_ptr<CgroupManager>> CgroupManager::open(const CgroupConfig& config) {
  CgroupMode mode = config.mode;
  if (mode == CgroupMode::kAuto) {
    auto v2 = cd::is_cgroup2_mount(config.root);
    if (!v2.ok()) {
      return std::move(v2).error().context("open cgroups");
    }
    mode = *v2 ? CgroupMode::kV2 : CgroupMode::kV1;
  }
  auto self = cd::read_self_cgroup(config.self_cgroup_file);
  if (!self.ok()) {
    return std::move(self).error().context("open cgroups");
  }
  auto manager = mode == CgroupMode::kV2 ? cd::open_v2(config, *self) : cd::open_v1(config, *self);
  if (!manager.ok()) {
    return std::move(manager).error().context(
        fmt::format("open cgroup {} hierarchy under '{}'", mode == CgroupMode::kV2 ? "v2" : "v1", config.root));
  }
  return manager;
}

namespace cgroup_detail {

Result<std::vector<SelfCgroup>> parse_self_cgroup(std::string_view text) {
  std::vector<SelfCgroup> out;
  size_t number = 0;
  for (const std::string& raw : split(text, '\n')) {
    ++number;
    std::string line = trim(raw);
    if (line.empty()) {
      continue;
    }
    auto entry = parse_self_line(line);
    if (!entry.ok()) {
      return std::move(entry).error().context(fmt::format("line {}", number));
    }
    out.push_back(std::move(*entry));
  }
  return out;
}

Result<std::vector<SelfCgroup>> read_self_cgroup(const std::string& file) {
  SBX_ASSIGN(std::string text, read_file(file));
  auto entries = parse_self_cgroup(text);
  if (!entries.ok()) {
    return std::move(entries).error().context(fmt::format("parse '{}'", file));
  }
  return entries;
}

std::optional<std::string> own_cgroup(const std::vector<SelfCgroup>& entries, std::string_view controller) {
  for (const SelfCgroup& e : entries) {
    bool match = controller.empty()
                     ? (e.hierarchy_id == 0 && e.controllers.empty())
                     : std::find(e.controllers.begin(), e.controllers.end(), controller) != e.controllers.end();
    if (match) {
      return e.path;
    }
  }
  return std::nullopt;
}

Result<std::string> normalize_cgroup_path(std::string_view path) {
  if (path.empty()) {
    return std::string("/");
  }
  if (path.front() != '/') {
    return make_error("cgroup path '{}' is not absolute", path);
  }
  std::string out;
  for (const std::string& part : split(path.substr(1), '/')) {
    if (part.empty()) {
      continue;
    }
    if (part == "." || part == "..") {
      return make_error("cgroup path '{}' has a '{}' component", path, part);
    }
    out += "/" + part;
  }
  return out.empty() ? std::string("/") : out;
}

std::string cgroup_dir(const std::string& root, const std::string& path) {
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') {
    base.pop_back();
  }
  return path == "/" ? base : base + path;
}

std::vector<std::string> path_prefixes(const std::string& path) {
  std::vector<std::string> out;
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    out.push_back(path.substr(0, pos));
  }
  if (path != "/") {
    out.push_back(path);
  }
  return out;
}

Result<std::string> resolve_parent(const CgroupConfig& config, const std::optional<std::string>& own,
                                   std::string_view hierarchy) {
  std::string parent;
  if (!config.parent.empty()) {
    SBX_ASSIGN(parent, normalize_cgroup_path(config.parent));
  } else {
    const std::string& name = config.parent_name;
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      return make_error("cgroup parent name '{}' is not a single path component", name);
    }
    if (!own) {
      return make_error("the caller's cgroup in the {} hierarchy is not listed in '{}'", hierarchy,
                        config.self_cgroup_file);
    }
    parent = *own == "/" ? "/" + name : *own + "/" + name;
  }
  if (parent == "/") {
    return make_error("cgroup parent '/' would put sandboxes at the root of the {} hierarchy", hierarchy);
  }
  if (own && (*own == parent || own->starts_with(parent + "/"))) {
    return make_error("cgroup parent '{}' is the caller's own cgroup '{}' in the {} hierarchy or one of its ancestors",
                      parent, *own, hierarchy);
  }
  return parent;
}

Result<void> check_id(std::string_view id) {
  if (id.empty() || id == "." || id == ".." || id.find('/') != std::string_view::npos ||
      id.find('\0') != std::string_view::npos) {
    return make_error("cgroup id '{}' is not a single path component", id);
  }
  return ok();
}

std::unique_ptr<Cgroup> invalid_cgroup(const std::string& id) { return std::make_unique<InvalidCgroup>(id); }

uint64_t cpu_quota_us(double vcpus) {
  auto quota = static_cast<uint64_t>(std::llround(vcpus * static_cast<double>(kCpuPeriodUs)));
  return std::max(quota, kMinCpuQuotaUs);
}

uint64_t cpu_shares_from_weight(uint32_t weight) {
  uint64_t w = std::clamp<uint32_t>(weight, 1, kMaxCpuWeight);
  return 2 + ((w - 1) * 262142) / 9999;
}

std::string io_max_line(const IoLimit& io) {
  std::string line = io.device;
  const std::pair<const char*, const std::optional<uint64_t>*> values[] = {
      {"rbps", &io.rbps}, {"wbps", &io.wbps}, {"riops", &io.riops}, {"wiops", &io.wiops}};
  for (const auto& [name, value] : values) {
    if (value->has_value()) {
      line += fmt::format(" {}={}", name, **value);
    }
  }
  return line;
}

std::vector<std::string> v2_controllers_for(const CgroupLimits& limits) {
  std::vector<std::string> out;
  if (limits.memory_max || limits.memory_swap_max) {
    out.emplace_back("memory");
  }
  if (limits.vcpus || limits.cpu_weight) {
    out.emplace_back("cpu");
  }
  if (limits.pids_max) {
    out.emplace_back("pids");
  }
  if (!limits.io.empty()) {
    out.emplace_back("io");
  }
  return out;
}

std::string limit_field_for(const CgroupLimits& limits, std::string_view controller) {
  if (controller == "memory") {
    return limits.memory_max ? "limits.memory" : "limits.swap";
  }
  if (controller == "cpu") {
    return limits.vcpus ? "limits.vcpus" : "limits.cpu_weight";
  }
  if (controller == "pids") {
    return "limits.pids";
  }
  return "limits.io";
}

Result<bool> is_cgroup2_mount(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) < 0) {
    return sys_error("statfs '{}'", path);
  }
  return st.f_type == static_cast<decltype(st.f_type)>(CGROUP2_SUPER_MAGIC);
}

Result<std::vector<std::string>> read_delegate_files(const std::string& file) {
  auto text = read_file(file);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT) {
      return std::vector<std::string>{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"};
    }
    return std::move(text).error();
  }
  std::vector<std::string> out;
  for (const std::string& line : split(*text, '\n')) {
    std::string name = trim(line);
    if (name.empty()) {
      continue;
    }
    if (name == "." || name == ".." || name.find('/') != std::string::npos) {
      return make_error("parse '{}': '{}' is not a file name", file, name);
    }
    out.push_back(std::move(name));
  }
  return out;
}

Result<void> chown_for_delegation(int dirfd, const std::string& dir, const std::vector<std::string>& files, uid_t uid,
                                  gid_t gid) {
  if (::fchown(dirfd, uid, gid) < 0) {
    return sys_error("chown '{}' to {}:{}", dir, uid, gid);
  }
  for (const std::string& name : files) {
    if (::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT) {
      return sys_error("chown '{}/{}' to {}:{}", dir, name, uid, gid);
    }
  }
  return ok();
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::vector<std::string>> read_words(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT) {
      return std::vector<std::string>{};
    }
    return std::move(text).error();
  }
  std::vector<std::string> out;
  for (std::string& word : split(*text, ' ')) {
    std::string w = trim(word);
    if (!w.empty()) {
      out.push_back(std::move(w));
    }
  }
  return out;
}

Result<std::optional<uint64_t>> read_keyed_u64(const std::string& path, std::string_view key) {
  auto text = read_file(path);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT) {
      return std::optional<uint64_t>{};
    }
    return std::move(text).error();
  }
  for (const std::string& line : split(*text, '\n')) {
    size_t space = line.find(' ');
    if (space == std::string::npos || std::string_view(line).substr(0, space) != key) {
      continue;
    }
    auto value = parse_u64(std::string_view(line).substr(space + 1));
    if (!value.ok()) {
      return std::move(value).error().context(fmt::format("parse '{}' in '{}'", key, path));
    }
    return std::optional<uint64_t>(*value);
  }
  return std::optional<uint64_t>{};
}

Result<std::optional<uint64_t>> read_single_u64(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT) {
      return std::optional<uint64_t>{};
    }
    return std::move(text).error();
  }
  auto value = parse_u64(*text);
  if (!value.ok()) {
    return std::move(value).error().context(fmt::format("parse '{}'", path));
  }
  return std::optional<uint64_t>(*value);
}

Result<std::vector<pid_t>> read_pids(const std::string& procs_file) {
  SBX_ASSIGN(std::string text, read_file(procs_file, 64 << 20));
  std::vector<pid_t> out;
  for (const std::string& line : split(text, '\n')) {
    if (trim(line).empty()) {
      continue;
    }
    auto pid = parse_u64(line);
    if (!pid.ok() || *pid == 0 || *pid > 0x7fffffff) {
      return make_error("parse '{}': '{}' is not a pid", procs_file, trim(line));
    }
    out.push_back(static_cast<pid_t>(*pid));
  }
  return out;
}

Result<std::vector<std::string>> list_subdirs(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) {
      return std::vector<std::string>{};
    }
    return sys_error("open directory '{}'", dir);
  }
  std::vector<std::string> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    bool dir_entry = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st {};
      dir_entry = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (dir_entry) {
      out.push_back(std::move(name));
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<bool> make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0) {
    return true;
  }
  if (errno == EEXIST && is_directory(path)) {
    return false;
  }
  return sys_error("mkdir '{}'", path);
}

Result<void> remove_cgroup_dir(const std::string& path) {
  SBX_ASSIGN(std::vector<std::string> children, list_subdirs(path));
  for (const std::string& child : children) {
    SBX_TRY(remove_cgroup_dir(path + "/" + child));
  }
  constexpr int kAttempts = 100;  // 10 ms apart: about a second
  for (int attempt = 0;; ++attempt) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) {
      return ok();
    }
    if (errno != EBUSY || attempt + 1 == kAttempts) {
      return sys_error("rmdir '{}'", path);
    }
    sleep_for(std::chrono::milliseconds(10));
  }
}

Result<std::vector<pid_t>> pids_in_tree(const std::string& dir) {
  std::vector<pid_t> pids;
  auto own = read_pids(dir + "/cgroup.procs");
  if (own.ok()) {
    pids = std::move(*own);
  } else if (own.error().sys_errno() != ENOENT) {
    return std::move(own).error();
  }
  SBX_ASSIGN(std::vector<std::string> children, list_subdirs(dir));
  for (const std::string& child : children) {
    SBX_ASSIGN(std::vector<pid_t> more, pids_in_tree(dir + "/" + child));
    pids.insert(pids.end(), more.begin(), more.end());
  }
  return pids;
}

Result<bool> remove_cgroup_dir_if_empty(const std::string& path) {
  SBX_ASSIGN(std::vector<std::string> children, list_subdirs(path));
  for (const std::string& child : children) {
    SBX_ASSIGN(bool gone, remove_cgroup_dir_if_empty(path + "/" + child));
    if (!gone) {
      return false;
    }
  }
  constexpr int kAttempts = 20;  // 5 ms apart
  for (int attempt = 0;; ++attempt) {
    SBX_ASSIGN(std::vector<pid_t> pids, pids_in_tree(path));
    if (!pids.empty()) {
      return false;
    }
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) {
      return true;
    }
    if (errno != EBUSY) {
      return sys_error("rmdir '{}'", path);
    }
    if (attempt + 1 == kAttempts) {
      return false;
    }
    sleep_for(std::chrono::milliseconds(5));
  }
}

void rollback_dirs(const std::vector<std::string>& created) {
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    ::rmdir(it->c_str());
  }
}

void kill_pids(const std::vector<pid_t>& pids) {
  pid_t self = ::getpid();
  for (pid_t pid : pids) {
    if (pid > 0 && pid != self) {
      ::kill(pid, SIGKILL);
    }
  }
}

void sleep_for(std::chrono::milliseconds ms) { std::this_thread::sleep_for(ms); }

}  // namespace cgroup_detail

}  // namespace sbx::rt
