#include "runtime/plan_json.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "runtime/json_describe.h"

namespace sbx::rt {

namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------------------------
// Reading values: each overload checks the JSON type (and range) and names the field when it is wrong.

Error wrong_type(const std::string& field, std::string_view expected, const json& j) {
  return Error(fmt::format("{}: expected {}, got {}", field, expected, describe_json(j)), EINVAL);
}

Result<void> read_value(const json& j, const std::string& field, std::string& out) {
  if (!j.is_string()) {
    return wrong_type(field, "a string", j);
  }
  out = j.get<std::string>();
  return ok();
}

Result<void> read_value(const json& j, const std::string& field, bool& out) {
  if (!j.is_boolean()) {
    return wrong_type(field, "true or false", j);
  }
  out = j.get<bool>();
  return ok();
}

// Built in C++ from a signed type, a non-negative number is stored signed: both count.
bool is_non_negative_integer(const json& j) {
  return j.is_number_unsigned() || (j.is_number_integer() && j.get<int64_t>() >= 0);
}

Result<void> read_value(const json& j, const std::string& field, uint64_t& out) {
  if (!is_non_negative_integer(j)) {
    return wrong_type(field, "a non-negative integer", j);
  }
  out = j.get<uint64_t>();
  return ok();
}

Result<void> read_value(const json& j, const std::string& field, uint32_t& out) {
  if (!is_non_negative_integer(j) || j.get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
    return wrong_type(field, "an integer in 0..4294967295", j);
  }
  out = j.get<uint32_t>();
  return ok();
}

Result<void> read_value(const json& j, const std::string& field, int& out) {
  if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > std::numeric_limits<int>::max()) {
    return wrong_type(field, "a non-negative integer", j);
  }
  out = j.get<int>();
  return ok();
}

Result<void> read_value(const json& j, const std::string& field, double& out) {
  if (!j.is_number() || !std::isfinite(j.get<double>())) {
    return wrong_type(field, "a number", j);
  }
  out = j.get<double>();
  return ok();
}

Result<void> read_value(const json& j, const std::string& field, CgroupMode& out) {
  std::string mode;
  SBX_TRY(read_value(j, field, mode));
  if (mode == "auto") {
    out = CgroupMode::kAuto;
  } else if (mode == "v1") {
    out = CgroupMode::kV1;
  } else if (mode == "v2") {
    out = CgroupMode::kV2;
  } else {
    return Error(fmt::format("{}: '{}' is not one of auto, v1, v2", field, mode), EINVAL);
  }
  return ok();
}

// The objects, declared before the templates that read them inside optionals, arrays and members.
Result<void> read_value(const json& j, const std::string& field, IoLimit& out);
Result<void> read_value(const json& j, const std::string& field, BindMount& out);
Result<void> read_value(const json& j, const std::string& field, RootfsPlan& out);
Result<void> read_value(const json& j, const std::string& field, CgroupLimits& out);
Result<void> read_value(const json& j, const std::string& field, Rlimits& out);
Result<void> read_value(const json& j, const std::string& field, SecurityPlan& out);
Result<void> read_value(const json& j, const std::string& field, ProcessSpec& out);
Result<void> read_value(const json& j, const std::string& field, CgroupConfig& out);
Result<void> read_value(const json& j, const std::string& field, NetworkPlan& out);
Result<void> read_value(const json& j, const std::string& field, IdMapping& out);
Result<void> read_value(const json& j, const std::string& field, UserNamespacePlan& out);
Result<void> read_value(const json& j, const std::string& field, DeviceNodePlan& out);
Result<void> read_value(const json& j, const std::string& field, DeviceRule& out);

template <typename T>
Result<void> read_value(const json& j, const std::string& field, std::optional<T>& out) {
  if (j.is_null()) {
    out.reset();
    return ok();
  }
  T value{};
  SBX_TRY(read_value(j, field, value));
  out = std::move(value);
  return ok();
}

template <typename T>
Result<void> read_value(const json& j, const std::string& field, std::vector<T>& out) {
  if (!j.is_array()) {
    return wrong_type(field, "an array", j);
  }
  std::vector<T> items(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    SBX_TRY(read_value(j[i], fmt::format("{}[{}]", field, i), items[i]));
  }
  out = std::move(items);
  return ok();
}

// One JSON object being read: refuses unknown members, reads the known ones into their fields when present.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string field) : j_(j), field_(std::move(field)) {}

  Result<void> check(std::initializer_list<std::string_view> known) const {
    if (!j_.is_object()) {
      return wrong_type(field_, "an object", j_);
    }
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
        return Error(fmt::format("{}: unknown field '{}'", field_, it.key()), EINVAL);
      }
    }
    return ok();
  }

  template <typename T>
  Result<void> get(const char* key, T& out) const {
    auto it = j_.find(key);
    if (it == j_.end()) {
      return ok();
    }
    return read_value(*it, at(key), out);
  }

  // The member `key` for a nested reader; nullptr when absent.
  const json* member(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string at(const char* key) const { return field_ + "." + key; }

 private:
  const json& j_;
  std::string field_;
};

Result<void> read_value(const json& j, const std::string& field, IoLimit& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"device", "rbps", "wbps", "riops", "wiops"}));
  SBX_TRY(r.get("device", out.device));
  SBX_TRY(r.get("rbps", out.rbps));
  SBX_TRY(r.get("wbps", out.wbps));
  SBX_TRY(r.get("riops", out.riops));
  return r.get("wiops", out.wiops);
}

Result<void> read_value(const json& j, const std::string& field, BindMount& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"source", "destination", "read_only"}));
  SBX_TRY(r.get("source", out.source));
  SBX_TRY(r.get("destination", out.destination));
  return r.get("read_only", out.read_only);
}

Result<void> read_value(const json& j, const std::string& field, RootfsPlan& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"lower_dirs", "read_only", "upper_tmpfs_size"}));
  SBX_TRY(r.get("lower_dirs", out.lower_dirs));
  SBX_TRY(r.get("read_only", out.read_only));
  return r.get("upper_tmpfs_size", out.upper_tmpfs_size);
}

// A device type is one letter: "c", "b" (or "a", all, in a rule).
Result<void> read_device_type(const ObjectReader& r, char& out) {
  std::string type(1, out);
  SBX_TRY(r.get("type", type));
  if (type.size() != 1) {
    return Error(fmt::format("{}: expected \"c\", \"b\" or \"a\", got '{}'", r.at("type"), type), EINVAL);
  }
  out = type[0];
  return ok();
}

Result<void> read_value(const json& j, const std::string& field, IdMapping& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"inside", "host", "count"}));
  SBX_TRY(r.get("inside", out.inside));
  SBX_TRY(r.get("host", out.host));
  return r.get("count", out.count);
}

Result<void> read_value(const json& j, const std::string& field, UserNamespacePlan& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"uid_map", "gid_map"}));
  SBX_TRY(r.get("uid_map", out.uid_map));
  return r.get("gid_map", out.gid_map);
}

Result<void> read_value(const json& j, const std::string& field, DeviceNodePlan& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"path", "host_path", "type", "major", "minor", "access"}));
  SBX_TRY(r.get("path", out.path));
  SBX_TRY(r.get("host_path", out.host_path));
  SBX_TRY(read_device_type(r, out.type));
  SBX_TRY(r.get("major", out.major));
  SBX_TRY(r.get("minor", out.minor));
  return r.get("access", out.access);
}

// A device number, or -1 for "any".
Result<void> read_device_number(const json* j, const std::string& field, int64_t& out) {
  if (j == nullptr) {
    return ok();
  }
  if (!j->is_number_integer() || j->get<int64_t>() < -1) {
    return wrong_type(field, "a device number or -1", *j);
  }
  out = j->get<int64_t>();
  return ok();
}

Result<void> read_value(const json& j, const std::string& field, DeviceRule& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"type", "major", "minor", "access"}));
  SBX_TRY(read_device_type(r, out.type));
  SBX_TRY(read_device_number(r.member("major"), r.at("major"), out.major));
  SBX_TRY(read_device_number(r.member("minor"), r.at("minor"), out.minor));
  return r.get("access", out.access);
}

Result<void> read_value(const json& j, const std::string& field, CgroupLimits& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"memory_max", "memory_swap_max", "vcpus", "cpu_weight", "pids_max", "io", "devices"}));
  SBX_TRY(r.get("devices", out.devices));
  SBX_TRY(r.get("memory_max", out.memory_max));
  SBX_TRY(r.get("memory_swap_max", out.memory_swap_max));
  SBX_TRY(r.get("vcpus", out.vcpus));
  SBX_TRY(r.get("cpu_weight", out.cpu_weight));
  SBX_TRY(r.get("pids_max", out.pids_max));
  return r.get("io", out.io);
}

Result<void> read_value(const json& j, const std::string& field, Rlimits& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"nofile", "nproc", "fsize", "core"}));
  SBX_TRY(r.get("nofile", out.nofile));
  SBX_TRY(r.get("nproc", out.nproc));
  SBX_TRY(r.get("fsize", out.fsize));
  return r.get("core", out.core);
}

Result<void> read_value(const json& j, const std::string& field, SecurityPlan& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"keep_caps", "seccomp_profile", "rlimits"}));
  SBX_TRY(r.get("keep_caps", out.keep_caps));
  SBX_TRY(r.get("seccomp_profile", out.seccomp_profile));
  return r.get("rlimits", out.rlimits);
}

Result<void> read_value(const json& j, const std::string& field, ProcessSpec& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"argv", "env", "cwd", "uid", "gid", "groups"}));
  SBX_TRY(r.get("argv", out.argv));
  SBX_TRY(r.get("env", out.env));
  SBX_TRY(r.get("cwd", out.cwd));
  SBX_TRY(r.get("uid", out.uid));
  SBX_TRY(r.get("gid", out.gid));
  return r.get("groups", out.groups);
}

Result<void> read_value(const json& j, const std::string& field, CgroupConfig& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"mode", "root", "parent", "parent_name", "self_cgroup_file"}));
  SBX_TRY(r.get("mode", out.mode));
  SBX_TRY(r.get("root", out.root));
  SBX_TRY(r.get("parent", out.parent));
  SBX_TRY(r.get("parent_name", out.parent_name));
  return r.get("self_cgroup_file", out.self_cgroup_file);
}

// Addresses are dotted text: "10.66.0.5/16" (with the subnet's prefix), "10.66.0.1".
Result<void> read_value(const json& j, const std::string& field, NetworkPlan& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"host_ifname", "bridge", "address", "gateway", "mtu"}));
  SBX_TRY(r.get("host_ifname", out.host_ifname));
  SBX_TRY(r.get("bridge", out.bridge));
  std::string address;
  std::string gateway;
  SBX_TRY(r.get("address", address));
  SBX_TRY(r.get("gateway", gateway));
  SBX_ASSIGN_CTX(out.address, parse_ipv4_net(address, false), "{}", r.at("address"));
  SBX_ASSIGN_CTX(out.gateway, parse_ipv4(gateway), "{}", r.at("gateway"));
  return r.get("mtu", out.mtu);
}

json network_to_json(const std::optional<NetworkPlan>& net) {
  if (!net) {
    return nullptr;
  }
  return {{"host_ifname", net->host_ifname},
          {"bridge", net->bridge},
          {"address", format_ipv4_net(net->address)},
          {"gateway", format_ipv4(net->gateway)},
          {"mtu", net->mtu}};
}

Result<void> read_value(const json& j, const std::string& field, Plan& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"id", "hostname", "root", "mounts", "dev_shm_size", "tmp_size", "masked_paths", "readonly_paths",
                   "limits", "security", "main", "network", "userns", "devices"}));
  SBX_TRY(r.get("userns", out.userns));
  SBX_TRY(r.get("devices", out.devices));
  SBX_TRY(r.get("id", out.id));
  SBX_TRY(r.get("hostname", out.hostname));
  SBX_TRY(r.get("root", out.root));
  SBX_TRY(r.get("mounts", out.mounts));
  SBX_TRY(r.get("dev_shm_size", out.dev_shm_size));
  SBX_TRY(r.get("tmp_size", out.tmp_size));
  SBX_TRY(r.get("masked_paths", out.masked_paths));
  SBX_TRY(r.get("readonly_paths", out.readonly_paths));
  SBX_TRY(r.get("limits", out.limits));
  SBX_TRY(r.get("security", out.security));
  SBX_TRY(r.get("network", out.network));
  return r.get("main", out.main);
}

Result<void> read_value(const json& j, const std::string& field, RuntimeConfig& out) {
  ObjectReader r(j, field);
  SBX_TRY(r.check({"run_root", "cgroup", "setup_timeout_ms", "seccomp_cache_dir"}));
  SBX_TRY(r.get("run_root", out.run_root));
  SBX_TRY(r.get("cgroup", out.cgroup));
  SBX_TRY(r.get("setup_timeout_ms", out.setup_timeout_ms));
  return r.get("seccomp_cache_dir", out.seccomp_cache_dir);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing.

template <typename T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json limits_to_json(const CgroupLimits& l) {
  json io = json::array();
  for (const IoLimit& i : l.io) {
    io.push_back({{"device", i.device},
                  {"rbps", optional_json(i.rbps)},
                  {"wbps", optional_json(i.wbps)},
                  {"riops", optional_json(i.riops)},
                  {"wiops", optional_json(i.wiops)}});
  }
  json devices = json::array();
  for (const DeviceRule& d : l.devices) {
    devices.push_back({{"type", std::string(1, d.type)}, {"major", d.major}, {"minor", d.minor}, {"access", d.access}});
  }
  return {{"memory_max", optional_json(l.memory_max)}, {"memory_swap_max", optional_json(l.memory_swap_max)},
          {"vcpus", optional_json(l.vcpus)},           {"cpu_weight", optional_json(l.cpu_weight)},
          {"pids_max", optional_json(l.pids_max)},     {"io", std::move(io)},
          {"devices", std::move(devices)}};
}

json id_map_to_json(const std::vector<IdMapping>& map) {
  json lines = json::array();
  for (const IdMapping& m : map) {
    lines.push_back({{"inside", m.inside}, {"host", m.host}, {"count", m.count}});
  }
  return lines;
}

json userns_to_json(const std::optional<UserNamespacePlan>& userns) {
  if (!userns) {
    return nullptr;
  }
  return {{"uid_map", id_map_to_json(userns->uid_map)}, {"gid_map", id_map_to_json(userns->gid_map)}};
}

json devices_to_json(const std::vector<DeviceNodePlan>& devices) {
  json out = json::array();
  for (const DeviceNodePlan& d : devices) {
    out.push_back({{"path", d.path}, {"host_path", d.host_path}, {"type", std::string(1, d.type)},
                   {"major", d.major}, {"minor", d.minor}, {"access", d.access}});
  }
  return out;
}

json security_to_json(const SecurityPlan& s) {
  const Rlimits& r = s.rlimits;
  return {{"keep_caps", s.keep_caps},
          {"seccomp_profile", s.seccomp_profile},
          {"rlimits",
           {{"nofile", optional_json(r.nofile)},
            {"nproc", optional_json(r.nproc)},
            {"fsize", optional_json(r.fsize)},
            {"core", r.core}}}};
}

const char* mode_name(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::kV1:
      return "v1";
    case CgroupMode::kV2:
      return "v2";
    case CgroupMode::kAuto:
      break;
  }
  return "auto";
}

template <typename T>
Result<T> from_json(const json& j, std::string_view field) {
  T out{};
  SBX_TRY(read_value(j, std::string(field), out));
  return out;
}

}  // namespace

json plan_to_json(const Plan& plan) {
  json mounts = json::array();
  for (const BindMount& m : plan.mounts) {
    mounts.push_back({{"source", m.source}, {"destination", m.destination}, {"read_only", m.read_only}});
  }
  return {{"id", plan.id},
          {"hostname", plan.hostname},
          {"root",
           {{"lower_dirs", plan.root.lower_dirs},
            {"read_only", plan.root.read_only},
            {"upper_tmpfs_size", optional_json(plan.root.upper_tmpfs_size)}}},
          {"mounts", std::move(mounts)},
          {"dev_shm_size", plan.dev_shm_size},
          {"tmp_size", plan.tmp_size},
          {"masked_paths", plan.masked_paths},
          {"readonly_paths", plan.readonly_paths},
          {"limits", limits_to_json(plan.limits)},
          {"security", security_to_json(plan.security)},
          {"main", plan.main ? process_to_json(*plan.main) : json(nullptr)},
          {"network", network_to_json(plan.network)},
          {"userns", userns_to_json(plan.userns)},
          {"devices", devices_to_json(plan.devices)}};
}

Result<Plan> plan_from_json(const json& j, std::string_view field) { return from_json<Plan>(j, field); }

json process_to_json(const ProcessSpec& proc) {
  return {{"argv", proc.argv}, {"env", proc.env}, {"cwd", proc.cwd},
          {"uid", proc.uid},   {"gid", proc.gid}, {"groups", proc.groups}};
}

Result<ProcessSpec> process_from_json(const json& j, std::string_view field) {
  return from_json<ProcessSpec>(j, field);
}

json runtime_config_to_json(const RuntimeConfig& config) {
  const CgroupConfig& c = config.cgroup;
  return {{"run_root", config.run_root},
          {"cgroup",
           {{"mode", mode_name(c.mode)},
            {"root", c.root},
            {"parent", c.parent},
            {"parent_name", c.parent_name},
            {"self_cgroup_file", c.self_cgroup_file}}},
          {"setup_timeout_ms", config.setup_timeout_ms},
          {"seccomp_cache_dir", config.seccomp_cache_dir}};
}

Result<RuntimeConfig> runtime_config_from_json(const json& j, std::string_view field) {
  return from_json<RuntimeConfig>(j, field);
}

std::string plan_to_json_text(const Plan& plan) { return plan_to_json(plan).dump(); }

Result<Plan> plan_from_json_text(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return Error("plan: not valid JSON", EINVAL);
  }
  return plan_from_json(j, "plan");
}

}  // namespace sbx::rt
