#include "daemon/environment_spec.h"

#include <cstdlib>

#include "api/protocol.h"
#include "daemon/network_spec.h"
#include "daemon/plan_builder.h"
#include "runtime/caps.h"
#include "runtime/cdi.h"

namespace sbx::daemon {

namespace {

using api::param_error;

constexpr int64_t kMaxTtl = 10LL * 365 * 24 * 3600;
constexpr size_t kMaxDescription = 1024;

// cap_drop entries are capability names or ALL, devices entries CDI names: checked here so that a typo fails the
// environment, not each sandbox made from it (whether a device exists is checked when one is made).
Result<json> check_names(const std::string& key, const json& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    std::string field = fmt::format("{}[{}]", key, i);
    const std::string name = list[i].get<std::string>();
    if (key == "devices") {
      if (auto r = rt::parse_cdi_device_name(name); !r.ok()) {
        return param_error(field, r.error().message());
      }
    } else if (name != "ALL" && !rt::parse_capabilities({name}, field).ok()) {
      return param_error(field, fmt::format("unknown capability '{}'", name));
    }
  }
  return list;
}

// One field of a template, checked; the value stored.
Result<json> check_field(const std::string& key, const json& v) {
  if (key == "limits") {
    return check_limits(v);
  }
  if (key == "env") {
    SBX_TRY(check_env(v, "env"));
    return v;
  }
  if (key == "seccomp") {
    SBX_TRY(check_name(v.get<std::string>(), "seccomp"));
    return v;
  }
  if (key == "network") {
    return normalize_network(v, DaemonConfig{});
  }
  if (key == "cap_drop" || key == "devices") {
    return check_names(key, v);
  }
  if (key == "read_only" || key == "userns") {
    return v;  // booleans, typed by the method table; who may use userns: false is decided at sandbox.create
  }
  if (key == "ttl") {
    if (v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTtl) {
      return param_error("ttl", fmt::format("must be between 0 and {} seconds (10 years)", kMaxTtl));
    }
    return v;
  }
  if (v.get<std::string>().size() > kMaxDescription) {
    return param_error("description", fmt::format("longer than {} bytes", kMaxDescription));
  }
  return v;
}

}  // namespace

Result<EnvironmentRef> parse_environment_ref(std::string_view text, std::string_view field) {
  EnvironmentRef ref;
  size_t at = text.find('@');
  ref.name = std::string(text.substr(0, at));
  SBX_TRY(check_name(ref.name, field));
  if (at != std::string_view::npos) {
    std::string v(text.substr(at + 1));
    char* end = nullptr;
    long n = v.empty() || v[0] < '1' || v[0] > '9' ? 0 : std::strtol(v.c_str(), &end, 10);
    if (n <= 0 || n > 1000000000 || end == nullptr || *end != '\0') {
      return param_error(field, fmt::format("'{}' is not NAME or NAME@VERSION (a version is a number from 1)", text));
    }
    ref.version = static_cast<int>(n);
  }
  return ref;
}

Result<json> next_environment_spec(const json& params, const json& base, const json& image) {
  json spec = base.is_object() ? base : json::object();
  if (image.is_object()) {
    spec["image"] = image;
  }
  if (!spec.contains("image")) {
    return param_error("image", "an environment needs an image");
  }
  for (const char* key : kEnvironmentFields) {
    if (params.contains(key)) {
      SBX_ASSIGN(spec[key], check_field(key, params[key]));
    }
  }
  const json defaults = {{"limits", json::object()}, {"env", json::array()}, {"network", "none"},
                         {"ttl", 0},                  {"description", ""}};
  for (const auto& [key, value] : defaults.items()) {
    if (!spec.contains(key)) {
      spec[key] = value;
    }
  }
  return spec;
}

json apply_environment(const json& params, const json& spec) {
  json out = params;
  out.erase("environment");
  json limits = spec.value("limits", json::object());
  const json own_limits = params.value("limits", json::object());
  for (const auto& [key, value] : own_limits.items()) {
    limits[key] = value;
  }
  if (!limits.empty()) {
    out["limits"] = limits;
  }
  std::vector<std::string> env = merge_env(spec.value("env", std::vector<std::string>()),
                                           params.value("env", std::vector<std::string>()));
  if (!env.empty()) {
    out["env"] = env;
  }
  for (const char* key : kEnvironmentDefaults) {
    if (!out.contains(key) && spec.contains(key)) {
      out[key] = spec[key];
    }
  }
  return out;
}

json describe_environment(const EnvironmentRow& row, const std::vector<int>& versions) {
  json image = row.spec.value("image", json::object());
  json out = {{"name", row.name},
              {"version", row.version},
              {"ref", fmt::format("{}@{}", row.name, row.version)},
              {"created_at", api::format_time_ms(row.created_at)},
              {"created_by", row.created_by},
              {"image", {{"name", image.value("name", "")}, {"id", image.value("id", "")}}},
              {"versions", versions}};
  for (const char* key : kEnvironmentFields) {
    out[key] = row.spec.value(key, json());
  }
  return out;
}

}  // namespace sbx::daemon
