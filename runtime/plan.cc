#include "runtime/plan.h"

#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "runtime/caps.h"
#include "runtime/rlimit.h"
#include "runtime/userns.h"

namespace sbx::rt {

namespace {

// What runc and crun hide or freeze by default.
const std::vector<std::string> kMaskedPaths = {
    "/proc/acpi",       "/proc/asound",        "/proc/kcore",     "/proc/keys",       "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats",   "/proc/sched_debug", "/proc/scsi",     "/sys/firmware",
    "/sys/devices/virtual/powercap"};
const std::vector<std::string> kReadonlyPaths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                 "/proc/sysrq-trigger"};

constexpr size_t kMaxIdLength = 64;
constexpr size_t kMaxHostname = 64;
constexpr size_t kMaxIfname = 15;  // IFNAMSIZ - 1
constexpr uint32_t kMinMtu = 576;   // what IPv4 requires every link to carry
constexpr uint32_t kMaxMtu = 65535;
constexpr uint64_t kMinTmpfs = 1 << 20;

bool is_id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

bool is_hostname_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

// An absolute path with no "." or ".." component and no NUL.
Result<void> check_sandbox_path(const std::string& path, std::string_view field) {
  if (path.empty() || path.front() != '/') {
    return make_error("{}: '{}' must be an absolute path", field, path);
  }
  if (path.find('\0') != std::string::npos) {
    return make_error("{}: contains a NUL byte", field);
  }
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    std::string part = path.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    if (part == "." || part == "..") {
      return make_error("{}: '{}' must not contain '.' or '..' components", field, path);
    }
    pos = next;
  }
  return ok();
}

Result<void> check_host_path(const std::string& path, std::string_view field, bool want_dir) {
  SBX_TRY(check_sandbox_path(path, field));
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) {
    return sys_error("{}: '{}'", field, path);
  }
  if (want_dir && !S_ISDIR(st.st_mode)) {
    return make_error("{}: '{}' is not a directory", field, path);
  }
  return ok();
}

Result<void> validate_root(const RootfsPlan& root) {
  if (root.lower_dirs.empty()) {
    return make_error("root.lower_dirs: at least one root filesystem directory is required");
  }
  if (root.read_only && root.upper_tmpfs_size) {
    return make_error("root.upper_tmpfs_size: a read-only root has no upper layer");
  }
  if (root.upper_tmpfs_size && *root.upper_tmpfs_size < kMinTmpfs) {
    return make_error("root.upper_tmpfs_size: {} is below the minimum of 1 MiB", *root.upper_tmpfs_size);
  }
  for (size_t i = 0; i < root.lower_dirs.size(); ++i) {
    SBX_TRY(check_host_path(root.lower_dirs[i], fmt::format("root.lower_dirs[{}]", i), true));
  }
  return ok();
}

Result<void> validate_mounts(const std::vector<BindMount>& mounts) {
  for (size_t i = 0; i < mounts.size(); ++i) {
    SBX_TRY(check_host_path(mounts[i].source, fmt::format("mounts[{}].source", i), false));
    SBX_TRY(check_sandbox_path(mounts[i].destination, fmt::format("mounts[{}].destination", i)));
    if (mounts[i].destination == "/") {
      return make_error("mounts[{}].destination: cannot bind over the root", i);
    }
  }
  return ok();
}

Result<void> validate_hostname(const std::string& name) {
  if (name.empty() || name.size() > kMaxHostname) {
    return make_error("hostname: must be 1 to {} characters", kMaxHostname);
  }
  for (char c : name) {
    if (!is_hostname_char(c)) {
      return make_error("hostname: '{}' may contain only letters, digits, '-' and '.'", name);
    }
  }
  return ok();
}

Result<void> validate_devices(const std::vector<DeviceNodePlan>& devices) {
  for (size_t i = 0; i < devices.size(); ++i) {
    const DeviceNodePlan& d = devices[i];
    std::string field = fmt::format("devices[{}]", i);
    SBX_TRY(check_sandbox_path(d.path, field + ".path"));
    if (!d.path.starts_with("/dev/")) {
      return make_error("{}.path: '{}' is not under /dev", field, d.path);
    }
    SBX_TRY(check_sandbox_path(d.host_path, field + ".host_path"));
    struct stat st {};
    if (::stat(d.host_path.c_str(), &st) < 0) {
      return sys_error("{}.host_path: '{}'", field, d.host_path);
    }
    bool is_char = S_ISCHR(st.st_mode);
    if ((d.type == 'c' && !is_char) || (d.type == 'b' && !S_ISBLK(st.st_mode)) || (d.type != 'c' && d.type != 'b')) {
      return make_error("{}.host_path: '{}' is not a {} device", field, d.host_path,
                        d.type == 'b' ? "block" : "character");
    }
    if (major(st.st_rdev) != d.major || minor(st.st_rdev) != d.minor) {
      return make_error("{}.host_path: '{}' is device {}:{}, not {}:{}", field, d.host_path, major(st.st_rdev),
                        minor(st.st_rdev), d.major, d.minor);
    }
    if (d.access.empty() || d.access.find_first_not_of("rwm") != std::string::npos) {
      return make_error("{}.access: '{}' must be some of \"rwm\"", field, d.access);
    }
  }
  return ok();
}

}  // namespace

Plan default_plan(std::string id, std::vector<std::string> lower_dirs) {
  Plan plan;
  plan.hostname = id.substr(0, std::min(id.size(), kMaxHostname));
  plan.id = std::move(id);
  plan.root.lower_dirs = std::move(lower_dirs);
  plan.masked_paths = kMaskedPaths;
  plan.readonly_paths = kReadonlyPaths;
  return plan;
}

Result<void> validate_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) {
    return make_error("id: must be 1 to {} characters", kMaxIdLength);
  }
  if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9'))) {
    return make_error("id: '{}' must start with a lowercase letter or digit", id);
  }
  for (char c : id) {
    if (!is_id_char(c)) {
      return make_error("id: '{}' may contain only a-z, 0-9, '-', '_' and '.'", id);
    }
  }
  return ok();
}

Result<void> validate_process(const ProcessSpec& proc, std::string_view field) {
  if (proc.argv.empty() || proc.argv[0].empty()) {
    return make_error("{}.argv: must name a program", field);
  }
  for (size_t i = 0; i < proc.argv.size(); ++i) {
    if (proc.argv[i].find('\0') != std::string::npos) {
      return make_error("{}.argv[{}]: contains a NUL byte", field, i);
    }
  }
  for (size_t i = 0; i < proc.env.size(); ++i) {
    const auto& e = proc.env[i];
    if (e.find('=') == std::string::npos || e.front() == '=' || e.find('\0') != std::string::npos) {
      return make_error("{}.env[{}]: '{}' is not NAME=value", field, i, e);
    }
  }
  SBX_TRY_CTX(check_sandbox_path(proc.cwd, "cwd"), "{}", field);
  return ok();
}

Result<void> validate_plan(const Plan& plan) {
  SBX_TRY(validate_id(plan.id));
  SBX_TRY(validate_hostname(plan.hostname));
  SBX_TRY(validate_root(plan.root));
  SBX_TRY(validate_mounts(plan.mounts));
  if (plan.dev_shm_size < kMinTmpfs) {
    return make_error("dev_shm_size: {} is below the minimum of 1 MiB", plan.dev_shm_size);
  }
  if (plan.tmp_size < kMinTmpfs) {
    return make_error("tmp_size: {} is below the minimum of 1 MiB", plan.tmp_size);
  }
  for (size_t i = 0; i < plan.masked_paths.size(); ++i) {
    SBX_TRY(check_sandbox_path(plan.masked_paths[i], fmt::format("masked_paths[{}]", i)));
  }
  for (size_t i = 0; i < plan.readonly_paths.size(); ++i) {
    SBX_TRY(check_sandbox_path(plan.readonly_paths[i], fmt::format("readonly_paths[{}]", i)));
  }
  SBX_TRY(validate_cgroup_limits(plan.limits));
  SBX_TRY(validate_rlimits(plan.security.rlimits));
  SBX_ASSIGN(std::vector<int> caps, parse_capabilities(plan.security.keep_caps, "security.keep_caps"));
  for (size_t i = 0; i < caps.size(); ++i) {
    // /dev is a writable tmpfs without nodev (it holds our nodes): with CAP_MKNOD a sandbox without a user namespace
    // could make a node for any host device there, and a v1 host without the devices controller has no device
    // policy to refuse opening it. Devices are passed in by CDI instead.
    if (caps[i] == CAP_MKNOD) {
      return make_error("security.keep_caps[{}]: CAP_MKNOD cannot be kept: pass devices in through CDI instead", i);
    }
  }
  if (plan.main) {
    SBX_TRY(validate_process(*plan.main, "main"));
  }
  if (plan.network) {
    SBX_TRY(validate_network(*plan.network));
  }
  if (plan.userns) {
    SBX_TRY(validate_userns(*plan.userns));
  }
  SBX_TRY(validate_devices(plan.devices));
  return ok();
}

Result<void> validate_userns(const UserNamespacePlan& userns) {
  SBX_TRY(validate_id_map(userns.uid_map, "userns.uid_map"));
  SBX_TRY(validate_id_map(userns.gid_map, "userns.gid_map"));
  return ok();
}

Result<void> validate_network(const NetworkPlan& net) {
  for (const auto& [field, name] : {std::pair{"network.host_ifname", &net.host_ifname}, {"network.bridge", &net.bridge}}) {
    if (name->empty() || name->size() > kMaxIfname || name->find_first_of("/: \t\n") != std::string::npos ||
        *name == "." || *name == "..") {
      return make_error("{}: '{}' is not an interface name (1 to {} bytes, no '/', ':' or spaces)", field, *name,
                        kMaxIfname);
    }
  }
  const Ipv4Net& a = net.address;
  if (a.prefix < 1 || a.prefix > 30 || a.address == a.first() || a.address == a.last()) {
    return make_error("network.address: {} is not a host address in a /1 to /30 network", format_ipv4_net(a));
  }
  if (!a.contains(net.gateway) || net.gateway == a.address || net.gateway == a.first() || net.gateway == a.last()) {
    return make_error("network.gateway: {} is not another host address of {}", format_ipv4(net.gateway),
                      format_ipv4_net({a.first(), a.prefix}));
  }
  if (net.mtu < kMinMtu || net.mtu > kMaxMtu) {
    return make_error("network.mtu: {} is outside {}..{}", net.mtu, kMinMtu, kMaxMtu);
  }
  return ok();
}

}  // namespace sbx::rt
