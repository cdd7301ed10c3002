#include "daemon/plan_builder.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "api/protocol.h"
#include "daemon/image_spec.h"
#include "daemon/network_spec.h"
#include "runtime/caps.h"
#include "runtime/cdi.h"

namespace sbx::daemon {

namespace {

using api::param_error;

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : std::string();
}

bool is_under(const std::string& path, const std::string& dir) {
  return !dir.empty() && (path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                                          (dir.back() == '/' || path[dir.size()] == '/')));
}

// The host directory a rootfs request names; image requests have their snapshot instead (and "" here).
Result<std::string> resolve_rootfs(const json& params, const json& image, const DaemonConfig& config,
                                   const CreatePolicy& policy) {
  bool has_rootfs = params.contains("rootfs");
  if (has_rootfs == !image.is_null() || (has_rootfs && params.contains("image"))) {
    return param_error("rootfs", "give exactly one of rootfs and image (or an environment)");
  }
  if (!has_rootfs) {
    return std::string();
  }
  std::string rootfs = params["rootfs"].get<std::string>();
  if (rootfs.empty() || rootfs[0] != '/') {
    return param_error("rootfs", "must be an absolute host path");
  }
  std::string real = real_path(rootfs);
  if (real.empty() || !is_dir(real)) {
    return param_error("rootfs", fmt::format("'{}' is not a directory", rootfs));
  }
  if (!policy.host_paths) {
    bool allowed = false;
    for (const auto& dir : config.rootfs_dirs) {
      allowed = allowed || is_under(real, real_path(dir));
    }
    if (!allowed) {
      return api::api_error(api::kPermissionDenied, "rootfs '{}' is outside the directories this caller may use "
                            "(rootfs_dirs)", rootfs);
    }
  }
  return real;
}

Result<json> normalize_limits(const json& params, const DaemonConfig& config) {
  SBX_ASSIGN(json out, check_limits(params.value("limits", json::object())));
  if (!out.contains("vcpus") && config.vcpus) {
    out["vcpus"] = *config.vcpus;
  }
  if (!out.contains("memory") && config.memory) {
    out["memory"] = *config.memory;
  }
  if (!out.contains("disk") && config.disk) {
    out["disk"] = *config.disk;
  }
  if (!out.contains("pids") && config.pids) {
    out["pids"] = *config.pids;
  }
  return out;
}

Result<json> normalize_mounts(const json& params, const CreatePolicy& policy) {
  json out = json::array();
  if (!params.contains("mounts")) {
    return out;
  }
  if (!policy.host_paths && !params["mounts"].empty()) {
    return api::api_error(api::kPermissionDenied, "host bind mounts are for root only");
  }
  size_t i = 0;
  for (const auto& m : params["mounts"]) {
    std::string field = fmt::format("mounts[{}]", i++);
    if (!m.is_object() || !m.contains("source") || !m["source"].is_string() || !m.contains("destination") ||
        !m["destination"].is_string()) {
      return param_error(field, "must be {source, destination, read_only}");
    }
    bool ro = true;
    if (m.contains("read_only")) {
      if (!m["read_only"].is_boolean()) {
        return param_error(field + ".read_only", "must be a boolean");
      }
      ro = m["read_only"].get<bool>();
    }
    out.push_back({{"source", m["source"]}, {"destination", m["destination"]}, {"read_only", ro}});
  }
  return out;
}

Result<std::string> normalize_seccomp(const json& params, const DaemonConfig& config, const CreatePolicy& policy) {
  std::string name = params.value("seccomp", config.seccomp);
  SBX_TRY(check_name(name, "seccomp"));
  if (name == "unconfined" && !policy.host_paths) {
    return api::api_error(api::kPermissionDenied, "the unconfined seccomp profile is for root only");
  }
  return name;
}

// A user namespace of the sandbox's own unless the request or sbxd.toml says otherwise; asking for the host's is for
// root only (its root would be the host's root).
Result<bool> normalize_userns(const json& params, const DaemonConfig& config, const CreatePolicy& policy) {
  if (!params.contains("userns")) {
    return config.userns;
  }
  if (!params["userns"].is_boolean()) {
    return param_error("userns", "must be true or false");
  }
  bool userns = params["userns"].get<bool>();
  if (!userns && !policy.host_paths) {
    return api::api_error(api::kPermissionDenied, "userns: false (the host's user namespace, whose root is the host's "
                          "root) is for root only");
  }
  return userns;
}

Result<std::vector<std::string>> string_list(const json& params, const char* field) {
  if (!params.contains(field)) {
    return std::vector<std::string>();
  }
  const json& list = params[field];
  if (!list.is_array()) {
    return param_error(field, "must be an array of strings");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string()) {
      return param_error(fmt::format("{}[{}]", field, i), "must be a string");
    }
    out.push_back(list[i].get<std::string>());
  }
  return out;
}

// "CAP_NET_RAW", "net_raw" and "NET_RAW" are one capability: its canonical name, or an error naming the field.
Result<std::string> canonical_capability(const std::string& name, const std::string& field) {
  if (!rt::parse_capabilities({name}, field).ok()) {
    return param_error(field, fmt::format("unknown capability '{}'", name));
  }
  std::string upper;
  for (char c : name) {
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return upper.starts_with("CAP_") ? upper : "CAP_" + upper;
}

// The capabilities root in the sandbox keeps: sbxd.toml's set, less cap_drop ("ALL" drops every one), plus cap_add
// (root callers only: the default set is what a tenant may have at most).
Result<std::vector<std::string>> normalize_capabilities(const json& params, const DaemonConfig& config,
                                                        const CreatePolicy& policy) {
  SBX_ASSIGN(std::vector<std::string> drop, string_list(params, "cap_drop"));
  SBX_ASSIGN(std::vector<std::string> add, string_list(params, "cap_add"));
  if (!add.empty() && !policy.host_paths) {
    return api::api_error(api::kPermissionDenied, "cap_add is for root only; a sandbox keeps at most sbxd's "
                          "default capabilities");
  }
  std::vector<std::string> caps;
  bool drop_all = std::find(drop.begin(), drop.end(), "ALL") != drop.end();
  std::vector<std::string> dropped;
  for (size_t i = 0; i < drop.size(); ++i) {
    if (drop[i] != "ALL") {
      SBX_ASSIGN(std::string name, canonical_capability(drop[i], fmt::format("cap_drop[{}]", i)));
      dropped.push_back(name);
    }
  }
  for (const std::string& c : config.capabilities) {
    if (!drop_all && std::find(dropped.begin(), dropped.end(), c) == dropped.end()) {
      caps.push_back(c);
    }
  }
  for (size_t i = 0; i < add.size(); ++i) {
    SBX_ASSIGN(std::string name, canonical_capability(add[i], fmt::format("cap_add[{}]", i)));
    if (std::find(caps.begin(), caps.end(), name) == caps.end()) {
      caps.push_back(name);
    }
  }
  return caps;
}

// The CDI devices a request names, resolved against the operator's spec dirs (to fail the create on an unknown one);
// kInvalidParams naming the field.
Result<rt::CdiEdits> resolve_devices(const std::vector<std::string>& names, const DaemonConfig& config) {
  auto edits = rt::resolve_cdi_devices(names, config.cdi_spec_dirs);
  if (!edits.ok()) {
    return param_error("devices", edits.error().message());
  }
  if (!edits->additional_gids.empty()) {
    return param_error("devices", "the CDI spec gives additionalGids, which sbx does not apply yet");
  }
  return edits;
}

Result<bool> normalize_read_only(const json& params) {
  if (!params.contains("read_only")) {
    return false;
  }
  if (!params["read_only"].is_boolean()) {
    return param_error("read_only", "must be true or false");
  }
  return params["read_only"].get<bool>();
}

// The main command: the request's and the image's entrypoint and cmd (docker's rules); null for an idle sandbox.
Result<json> normalize_cmd(const json& params, const json& image) {
  if (params.contains("cmd") && params["cmd"].empty()) {
    return param_error("cmd", "must not be empty (leave it out for an idle sandbox)");
  }
  json config = image.is_object() ? image.value("config", json::object()) : json::object();
  std::vector<std::string> argv = image_command(config, params);
  return argv.empty() ? json() : json(argv);
}

// The image's Env entries that are NAME=value (a malformed one is left out rather than failing every create).
std::vector<std::string> image_env(const json& image) {
  std::vector<std::string> out;
  json env = image.is_object() ? image.value("config", json::object()).value("Env", json()) : json();
  if (env.is_array()) {
    for (const auto& e : env) {
      if (e.is_string() && e.get<std::string>().find('=') != std::string::npos && e.get<std::string>()[0] != '=') {
        out.push_back(e.get<std::string>());
      }
    }
  }
  return out;
}

std::string image_workdir(const json& image) {
  json wd = image.is_object() ? image.value("config", json::object()).value("WorkingDir", json()) : json();
  return wd.is_string() && !wd.get<std::string>().empty() && wd.get<std::string>()[0] == '/' ? wd.get<std::string>()
                                                                                               : "/";
}

}  // namespace

Result<json> check_limits(const json& in) {
  json out = json::object();
  for (const auto& [key, value] : in.items()) {
    if (key != "vcpus" && key != "memory" && key != "pids" && key != "disk") {
      return param_error("limits." + key, "unknown limit (vcpus, memory, pids, disk)");
    }
  }
  if (in.contains("vcpus")) {
    if (!in["vcpus"].is_number() || in["vcpus"].get<double>() <= 0 || in["vcpus"].get<double>() > 1024) {
      return param_error("limits.vcpus", "must be a number of CPUs, > 0");
    }
    out["vcpus"] = in["vcpus"].get<double>();
  }
  for (const char* key : {"memory", "disk"}) {
    if (in.contains(key)) {
      SBX_ASSIGN(uint64_t v, api::size_param(in[key], std::string("limits.") + key));
      if (v == 0) {
        return param_error(std::string("limits.") + key, "must be > 0");
      }
      out[key] = v;
    }
  }
  if (in.contains("pids")) {
    if (!in["pids"].is_number_unsigned() || in["pids"].get<uint64_t>() == 0) {
      return param_error("limits.pids", "must be a positive integer");
    }
    out["pids"] = in["pids"].get<uint64_t>();
  }
  return out;
}

Result<void> check_env(const json& env, std::string_view field) {
  size_t i = 0;
  for (const auto& e : env) {
    const std::string& s = e.get_ref<const std::string&>();
    size_t eq = s.find('=');
    if (eq == 0 || eq == std::string::npos || s.find('\0') != std::string::npos) {
      return param_error(fmt::format("{}[{}]", field, i), "must be NAME=value");
    }
    ++i;
  }
  return ok();
}


Result<void> check_name(std::string_view name, std::string_view field) {
  bool good = !name.empty() && name.size() <= 64 &&
              ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
  for (char c : name) {
    good = good && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-');
  }
  if (!good) {
    return param_error(field, fmt::format("'{}' is not a valid name: [a-z0-9][a-z0-9_.-]{{0,63}}", name));
  }
  return ok();
}

Result<UserIds> parse_user(const json& value, std::string_view field) {
  if (value.is_number_unsigned()) {
    uint64_t uid = value.get<uint64_t>();
    if (uid > 0xfffffffeULL) {
      return param_error(field, "uid out of range");
    }
    return UserIds{static_cast<uint32_t>(uid), static_cast<uint32_t>(uid)};
  }
  if (!value.is_string()) {
    return param_error(field, "must be \"uid[:gid]\"");
  }
  std::string s = value.get<std::string>();
  auto number = [&](const std::string& text, uint32_t* out) {
    char* end = nullptr;
    errno = 0;
    unsigned long v = std::strtoul(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v > 0xfffffffeUL || text[0] == '-') {
      return false;
    }
    *out = static_cast<uint32_t>(v);
    return true;
  };
  UserIds ids;
  size_t colon = s.find(':');
  if (!number(s.substr(0, colon), &ids.uid)) {
    return param_error(field, fmt::format("'{}' is not \"uid[:gid]\" (numeric ids)", s));
  }
  ids.gid = ids.uid;
  if (colon != std::string::npos && !number(s.substr(colon + 1), &ids.gid)) {
    return param_error(field, fmt::format("'{}' is not \"uid[:gid]\" (numeric ids)", s));
  }
  return ids;
}

Result<int> parse_signal(const json& value, std::string_view field) {
  if (value.is_number_integer()) {
    int sig = value.get<int>();
    if (sig < 1 || sig > SIGRTMAX) {
      return param_error(field, fmt::format("{} is not a signal number", sig));
    }
    return sig;
  }
  std::string name = value.get<std::string>();
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
    return parse_signal(json(std::atoi(name.c_str())), field);
  }
  if (name.rfind("SIG", 0) == 0) {
    name = name.substr(3);
  }
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev != nullptr && name == abbrev) {
      return sig;
    }
  }
  return param_error(field, fmt::format("unknown signal '{}'", value.get<std::string>()));
}

std::vector<std::string> default_env(uint32_t uid) {
  return {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", uid == 0 ? "HOME=/root" : "HOME=/",
          "LANG=C.UTF-8"};
}

std::vector<std::string> merge_env(const std::vector<std::string>& base, const std::vector<std::string>& over) {
  std::vector<std::string> out;
  auto name_of = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  for (const auto& kv : base) {
    bool replaced = false;
    for (const auto& o : over) {
      replaced = replaced || name_of(o) == name_of(kv);
    }
    if (!replaced) {
      out.push_back(kv);
    }
  }
  out.insert(out.end(), over.begin(), over.end());
  return out;
}

Result<json> normalize_create(const json& params, const DaemonConfig& config, const CreatePolicy& policy,
                              const json& image) {
  json spec = json::object();
  SBX_ASSIGN(spec["rootfs"], resolve_rootfs(params, image, config, policy));
  spec["image"] = image.is_object() ? image : json("");
  json labels = params.value("labels", json::object());
  for (const auto& [k, v] : labels.items()) {
    if (!v.is_string() || k.empty() || k.size() > 128 || v.get<std::string>().size() > 1024) {
      return param_error("labels." + k, "labels map non-empty names (up to 128 bytes) to strings");
    }
  }
  spec["labels"] = labels;
  SBX_ASSIGN(spec["limits"], normalize_limits(params, config));
  json env = params.value("env", json::array());
  SBX_TRY(check_env(env, "env"));
  SBX_ASSIGN(std::vector<std::string> devices, string_list(params, "devices"));
  SBX_ASSIGN(rt::CdiEdits cdi, resolve_devices(devices, config));
  spec["devices"] = devices;
  // A device's env (CDI's containerEdits.env) under the request's, over the image's.
  spec["env"] = merge_env(merge_env(image_env(image), cdi.env), env.get<std::vector<std::string>>());
  SBX_ASSIGN(spec["mounts"], normalize_mounts(params, policy));
  int64_t ttl = params.contains("ttl") ? params["ttl"].get<int64_t>() : config.ttl;
  constexpr int64_t kMaxTtl = 10LL * 365 * 24 * 3600;
  if (ttl < 0 || ttl > kMaxTtl) {
    return param_error("ttl", fmt::format("must be between 0 and {} seconds (10 years)", kMaxTtl));
  }
  spec["ttl"] = ttl;
  SBX_ASSIGN(spec["seccomp"], normalize_seccomp(params, config, policy));
  SBX_ASSIGN(spec["cmd"], normalize_cmd(params, image));
  SBX_ASSIGN(spec["network"], normalize_network(params.value("network", json()), config));
  SBX_ASSIGN(spec["userns"], normalize_userns(params, config, policy));
  SBX_ASSIGN(spec["capabilities"], normalize_capabilities(params, config, policy));
  SBX_ASSIGN(spec["read_only"], normalize_read_only(params));
  if (spec["read_only"].get<bool>()) {
    if (params.value("limits", json::object()).contains("disk")) {
      return param_error("read_only", "a read-only root has no writable layer to give limits.disk to");
    }
    spec["limits"].erase("disk");  // sbxd.toml's default disk is for writable roots
  }
  std::string cwd = params.value("cwd", image_workdir(image));
  if (cwd.empty() || cwd[0] != '/') {
    return param_error("cwd", "must be an absolute path");
  }
  spec["cwd"] = cwd;
  UserIds user;
  if (image.is_object()) {
    json u = image.value("user", json::object());
    user = {u.value("uid", 0u), u.value("gid", 0u)};
  }
  if (params.contains("user")) {
    SBX_ASSIGN(user, parse_user(params["user"], "user"));
  }
  spec["uid"] = user.uid;
  spec["gid"] = user.gid;
  std::string hostname = params.value("hostname", "");
  if (!hostname.empty()) {
    SBX_TRY(check_name(hostname, "hostname"));
  }
  spec["hostname"] = hostname;
  return spec;
}

// The CDI devices of a run: their nodes bound in and allowed by the device cgroup, their mounts.
Result<void> add_devices(rt::Plan& plan, const std::vector<std::string>& names, const DaemonConfig& config) {
  if (names.empty()) {
    return ok();
  }
  SBX_ASSIGN(rt::CdiEdits cdi, resolve_devices(names, config));
  for (const rt::DeviceNodePlan& node : cdi.device_nodes) {
    plan.devices.push_back(node);
    plan.limits.devices.push_back({node.type, node.major, node.minor, node.access});
  }
  plan.mounts.insert(plan.mounts.end(), cdi.mounts.begin(), cdi.mounts.end());
  return ok();
}

Result<rt::Plan> build_plan(const std::string& id, const json& spec, const DaemonConfig& config) {
  std::vector<std::string> lower_dirs = {spec["rootfs"].get<std::string>()};
  if (spec["image"].is_object()) {
    SBX_ASSIGN(lower_dirs, image_lower_dirs(config, spec["image"]));
  }
  rt::Plan plan = rt::default_plan(id, lower_dirs);
  if (!spec["hostname"].get<std::string>().empty()) {
    plan.hostname = spec["hostname"].get<std::string>();
  }
  const json& limits = spec["limits"];
  if (limits.contains("memory")) {
    plan.limits.memory_max = limits["memory"].get<uint64_t>();
    plan.limits.memory_swap_max = 0;
  }
  if (limits.contains("vcpus")) {
    plan.limits.vcpus = limits["vcpus"].get<double>();
  }
  if (limits.contains("pids")) {
    plan.limits.pids_max = limits["pids"].get<uint64_t>();
  }
  plan.root.read_only = spec.value("read_only", false);
  if (limits.contains("disk") && !plan.root.read_only) {
    plan.root.upper_tmpfs_size = limits["disk"].get<uint64_t>();
  }
  for (const auto& m : spec["mounts"]) {
    plan.mounts.push_back({m["source"].get<std::string>(), m["destination"].get<std::string>(),
                           m["read_only"].get<bool>()});
  }
  // Specs stored before capabilities were per sandbox keep sbxd's set.
  SBX_TRY(add_devices(plan, spec.value("devices", std::vector<std::string>()), config));
  plan.security.keep_caps = spec.contains("capabilities") ? spec["capabilities"].get<std::vector<std::string>>()
                                                          : config.capabilities;
  std::string dir = config.seccomp_dir.empty() ? default_seccomp_dir() : config.seccomp_dir;
  plan.security.seccomp_profile = dir + "/" + spec["seccomp"].get<std::string>() + ".json";
  if (spec["cmd"].is_array()) {
    rt::ProcessSpec main;
    main.argv = spec["cmd"].get<std::vector<std::string>>();
    uint32_t uid = spec["uid"].get<uint32_t>();
    main.env = merge_env(default_env(uid), spec["env"].get<std::vector<std::string>>());
    main.cwd = spec["cwd"].get<std::string>();
    main.uid = uid;
    main.gid = spec["gid"].get<uint32_t>();
    plan.main = std::move(main);
  }
  struct stat st {};
  if (::stat(plan.security.seccomp_profile.c_str(), &st) < 0) {
    return param_error("seccomp", fmt::format("no profile named '{}' in {}", spec["seccomp"].get<std::string>(),
                                              dir));
  }
  if (auto r = rt::validate_plan(plan); !r.ok()) {
    return std::move(r).error().with_code(api::kInvalidParams);
  }
  return plan;
}

}  // namespace sbx::daemon
