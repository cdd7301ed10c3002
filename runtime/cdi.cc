// CDI devices resolved against the spec directories into the plan's device nodes, bind mounts and environment.
#include "runtime/cdi.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include <fmt/ranges.h>

#include "base/file.h"
#include "runtime/cdi_internal.h"

namespace sbx::rt {

namespace {

using nlohmann::json;

constexpr size_t kMaxSpecBytes = 4 << 20;

// ---------------------------------------------------------------------------------------------------------------
// The spec directories

struct LoadedSpec {
  CdiSpec spec;
  size_t priority = 0;  // the index of its directory: higher wins
};

// A spec file that could not be used, with the kind it declares when that much could be read.
struct BrokenSpec {
  std::string kind;  // empty: unknown, so it might define any device
  Error error;
};

struct SpecSet {
  std::vector<LoadedSpec> specs;
  std::vector<BrokenSpec> broken;
  std::vector<std::string> unread_yaml;  // *.yaml files whose text is not JSON
};

enum class SpecFormat { kNone, kJson, kYaml };

SpecFormat spec_format(std::string_view name) {
  if (name.ends_with(".json")) {
    return SpecFormat::kJson;
  }
  return name.ends_with(".yaml") ? SpecFormat::kYaml : SpecFormat::kNone;
}

std::string declared_kind(const json& spec) {
  if (!spec.is_object()) {
    return {};
  }
  auto kind = spec.find("kind");
  return kind != spec.end() && kind->is_string() ? kind->get<std::string>() : std::string();
}

void load_spec_file(const std::string& path, SpecFormat format, size_t priority, SpecSet& set) {
  auto text = read_file(path, kMaxSpecBytes);
  if (!text.ok()) {
    set.broken.push_back({"", std::move(text).error().context(path)});
    return;
  }
  json spec = json::parse(*text, nullptr, false);
  if (spec.is_discarded() && format == SpecFormat::kYaml) {
    set.unread_yaml.push_back(path);
    return;
  }
  if (spec.is_discarded()) {
    set.broken.push_back({"", Error(fmt::format("{}: not valid JSON", path), EINVAL)});
    return;
  }
  auto parsed = cdi_spec_from_json(spec, path);
  if (!parsed.ok()) {
    set.broken.push_back({declared_kind(spec), std::move(parsed).error().context(path)});
    return;
  }
  set.specs.push_back({std::move(*parsed), priority});
}

Result<void> load_spec_dir(const std::string& dir, size_t priority, SpecSet& set) {
  auto names = list_dir(dir);
  if (!names.ok() && names.error().sys_errno() == ENOENT) {
    return ok();
  }
  if (!names.ok()) {
    return std::move(names).error().context("read the CDI spec directory");
  }
  std::sort(names->begin(), names->end());
  for (const std::string& name : *names) {
    SpecFormat format = spec_format(name);
    if (format == SpecFormat::kNone) {
      continue;
    }
    const std::string path = dir.ends_with('/') ? dir + name : fmt::format("{}/{}", dir, name);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      continue;
    }
    load_spec_file(path, format, priority, set);
  }
  return ok();
}

Result<SpecSet> load_specs(const std::vector<std::string>& dirs) {
  SpecSet set;
  for (size_t i = 0; i < dirs.size(); ++i) {
    SBX_TRY(load_spec_dir(dirs[i], i, set));
  }
  return set;
}

// ---------------------------------------------------------------------------------------------------------------
// Finding a device

struct Found {
  const LoadedSpec* spec = nullptr;
  const CdiDevice* device = nullptr;
};

std::string join(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

Error unknown_device(const SpecSet& set, const CdiDeviceName& name, const std::vector<std::string>& dirs) {
  std::set<std::string> names;
  for (const LoadedSpec& loaded : set.specs) {
    for (const CdiDevice& device : loaded.spec.devices) {
      if (loaded.spec.kind() == name.kind()) {
        names.insert(device.name);
      }
    }
  }
  std::string what =
      names.empty()
          ? fmt::format("unknown device: no spec in {} is of kind '{}'", join(dirs), name.kind())
          : fmt::format("unknown device: the specs of kind '{}' define {}", name.kind(), fmt::join(names, ", "));
  if (!set.unread_yaml.empty()) {
    what += fmt::format("; only JSON specs are read, not {}", join(set.unread_yaml));
  }
  return Error(what, ENOENT);
}

Result<Found> find_device(const SpecSet& set, const CdiDeviceName& name, const std::vector<std::string>& dirs) {
  for (const BrokenSpec& broken : set.broken) {
    if (broken.kind.empty() || broken.kind == name.kind()) {
      return Error(broken.error);
    }
  }
  Found best;
  const LoadedSpec* conflict = nullptr;
  for (const LoadedSpec& loaded : set.specs) {  // in the order of their directories
    for (const CdiDevice& device : loaded.spec.devices) {
      if (loaded.spec.kind() != name.kind() || device.name != name.name) {
        continue;
      }
      if (best.spec != nullptr && loaded.priority == best.spec->priority) {
        conflict = &loaded;
        continue;
      }
      best = Found{&loaded, &device};
      conflict = nullptr;
    }
  }
  if (conflict != nullptr) {
    return Error(fmt::format("defined by both {} and {}", best.spec->spec.path, conflict->spec.path), EINVAL);
  }
  if (best.spec == nullptr) {
    return unknown_device(set, name, dirs);
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------------
// Applying edits

void set_env(std::vector<std::string>& env, const std::string& entry) {
  std::string_view name = std::string_view(entry).substr(0, entry.find('=') + 1);  // with the '='
  for (std::string& existing : env) {
    if (existing.starts_with(name)) {
      existing = entry;
      return;
    }
  }
  env.push_back(entry);
}

template <typename T, typename Key>
void set_by(std::vector<T>& items, T item, Key key) {
  for (T& existing : items) {
    if (existing.*key == item.*key) {
      existing = std::move(item);
      return;
    }
  }
  items.push_back(std::move(item));
}

// The host node `node` names, checked against what the spec says of it.
Result<DeviceNodePlan> resolve_node(const CdiDeviceNode& node, const std::string& field) {
  struct stat st {};
  if (::lstat(node.host_path.c_str(), &st) != 0) {
    return sys_error("{}: host node '{}'", field, node.host_path);
  }
  if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return Error(fmt::format("{}: host node '{}' is not a character or block device", field, node.host_path), EINVAL);
  }
  DeviceNodePlan plan;
  plan.path = node.path;
  plan.host_path = node.host_path;
  plan.type = S_ISCHR(st.st_mode) ? 'c' : 'b';
  plan.major = ::major(st.st_rdev);
  plan.minor = ::minor(st.st_rdev);
  plan.access = node.access;
  if (node.type != 0 && node.type != plan.type) {
    return Error(fmt::format("{}.type: '{}' but host node '{}' is of type '{}'", field, node.type, node.host_path,
                             plan.type),
                 EINVAL);
  }
  if (node.major && (*node.major != plan.major || node.minor.value_or(0) != plan.minor)) {
    return Error(fmt::format("{}.major: {}:{} but host node '{}' is {}:{}", field, *node.major,
                             node.minor.value_or(0), node.host_path, plan.major, plan.minor),
                 EINVAL);
  }
  return plan;
}

Result<void> apply_edits(const CdiContainerEdits& edits, CdiEdits& out) {
  if (!edits.unsupported.empty()) {
    return Error(edits.unsupported.front(), EOPNOTSUPP);
  }
  for (const std::string& entry : edits.env) {
    set_env(out.env, entry);
  }
  for (size_t i = 0; i < edits.device_nodes.size(); ++i) {
    SBX_ASSIGN(DeviceNodePlan node,
               resolve_node(edits.device_nodes[i], fmt::format("{}.deviceNodes[{}]", edits.field, i)));
    set_by(out.device_nodes, std::move(node), &DeviceNodePlan::path);
  }
  for (const BindMount& mount : edits.mounts) {
    set_by(out.mounts, mount, &BindMount::destination);
  }
  for (uint32_t gid : edits.additional_gids) {
    if (gid != 0 && std::find(out.additional_gids.begin(), out.additional_gids.end(), gid) ==
                        out.additional_gids.end()) {
      out.additional_gids.push_back(gid);
    }
  }
  return ok();
}

// One requested device: its spec's edits the first time that spec is used, then its own.
Result<void> apply_device(const SpecSet& set, const CdiDeviceName& name, const std::vector<std::string>& dirs,
                          std::set<const LoadedSpec*>& applied, CdiEdits& out) {
  SBX_ASSIGN(Found found, find_device(set, name, dirs));
  const std::string& path = found.spec->spec.path;
  if (applied.insert(found.spec).second) {
    SBX_TRY_CTX(apply_edits(found.spec->spec.edits, out), "{}", path);
  }
  SBX_TRY_CTX(apply_edits(found.device->edits, out), "{}", path);
  return ok();
}

// The requested names, parsed, each once.
Result<std::vector<CdiDeviceName>> parse_requests(const std::vector<std::string>& names) {
  std::vector<CdiDeviceName> out;
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (!seen.insert(name).second) {
      continue;
    }
    SBX_ASSIGN(CdiDeviceName parsed, parse_cdi_device_name(name));
    out.push_back(std::move(parsed));
  }
  return out;
}

size_t depth(std::string_view path) {
  size_t parts = 0;
  for (size_t i = 0; i < path.size(); ++i) {
    parts += path[i] != '/' && (i == 0 || path[i - 1] == '/') ? 1 : 0;
  }
  return parts;
}

}  // namespace

std::vector<std::string> default_cdi_spec_dirs() { return {"/etc/cdi", "/var/run/cdi"}; }

Result<CdiEdits> resolve_cdi_devices(const std::vector<std::string>& names, const std::vector<std::string>& dirs) {
  SBX_ASSIGN(std::vector<CdiDeviceName> wanted, parse_requests(names));
  CdiEdits out;
  if (wanted.empty()) {
    return out;
  }
  SBX_ASSIGN(SpecSet set, load_specs(dirs));
  std::set<const LoadedSpec*> applied;
  for (const CdiDeviceName& name : wanted) {
    SBX_TRY_CTX(apply_device(set, name, dirs, applied, out), "CDI device '{}'", name.qualified());
  }
  std::stable_sort(out.mounts.begin(), out.mounts.end(),
                   [](const BindMount& a, const BindMount& b) { return depth(a.destination) < depth(b.destination); });
  return out;
}

}  // namespace sbx::rt
