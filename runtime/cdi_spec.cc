// CDI spec files and qualified device names, read as the spec (SPEC.md) and its reference implementation read them.
// Pure: no file is opened here (runtime/cdi.cc reads the spec directories).
#include "runtime/cdi.h"

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "runtime/cdi_internal.h"
#include "runtime/json_describe.h"

namespace sbx::rt {

namespace {

using nlohmann::json;

constexpr size_t kMaxVendorLength = 253;  // a DNS subdomain
constexpr size_t kMaxClassLength = 63;    // a DNS label

// A spec version as a comparable number: major * 10000 + minor * 100 + patch.
struct SpecVersion {
  std::string_view text;
  int number;
};

// The released versions whose format sbx reads (0.1.0 and 0.2.0 had another layout; the reference reads neither).
constexpr SpecVersion kVersions[] = {{"0.3.0", 300}, {"0.4.0", 400}, {"0.5.0", 500},   {"0.6.0", 600},
                                     {"0.7.0", 700}, {"0.8.0", 800}, {"1.0.0", 10000}, {"1.1.0", 10100}};
// The first versions with a field (the reference implementation's requiresV0x0 checks).
constexpr SpecVersion kMountType = {"0.4.0", 400};
constexpr SpecVersion kHostPathAndDigitNames = {"0.5.0", 500};
constexpr SpecVersion kAnnotationsAndDottedClass = {"0.6.0", 600};
constexpr SpecVersion kIntelRdtAndGids = {"0.7.0", 700};
constexpr SpecVersion kNetDevices = {"1.1.0", 10100};

// What the fields being read depend on: the spec's declared version.
struct SpecContext {
  std::string version;
  int number = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Names

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_letter(c) || is_digit(c); }

// A vendor or a class: a letter first, a letter or digit last, letters, digits, '_', '-', '.' between.
Result<void> check_label(std::string_view what, std::string_view s, size_t max_length) {
  if (s.empty()) {
    return Error(fmt::format("the {} is empty", what), EINVAL);
  }
  if (s.size() > max_length) {
    return Error(fmt::format("{} '{}' is longer than {} bytes", what, s, max_length), EINVAL);
  }
  for (char c : s) {
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.') {
      return Error(fmt::format("{} '{}' may contain only letters, digits, '_', '-' and '.'", what, s), EINVAL);
    }
  }
  if (!is_letter(s.front()) || !is_alnum(s.back())) {
    return Error(fmt::format("{} '{}' must start with a letter and end with a letter or digit", what, s), EINVAL);
  }
  return ok();
}

// A device name: a letter or digit first and last, letters, digits, '_', '-', '.', ':' between.
Result<void> check_device_name(std::string_view s) {
  if (s.empty()) {
    return Error("the device name is empty", EINVAL);
  }
  for (char c : s) {
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.' && c != ':') {
      return Error(fmt::format("device name '{}' may contain only letters, digits, '_', '-', '.' and ':'", s), EINVAL);
    }
  }
  if (!is_alnum(s.front()) || !is_alnum(s.back())) {
    return Error(fmt::format("device name '{}' must start and end with a letter or digit", s), EINVAL);
  }
  return ok();
}

// "vendor/class" as {vendor, class}.
Result<std::pair<std::string, std::string>> parse_kind(std::string_view kind) {
  size_t slash = kind.find('/');
  if (slash == std::string_view::npos) {
    return Error(fmt::format("'{}' is not vendor/class", kind), EINVAL);
  }
  std::string_view vendor = kind.substr(0, slash);
  std::string_view device_class = kind.substr(slash + 1);
  SBX_TRY(check_label("vendor", vendor, kMaxVendorLength));
  SBX_TRY(check_label("class", device_class, kMaxClassLength));
  return std::pair{std::string(vendor), std::string(device_class)};
}

// ---------------------------------------------------------------------------------------------------------------
// Reading JSON: each helper checks the type and names the field when it is wrong.

// "<field>: <what>", or just <what> at the top of the document.
Error field_error(std::string_view field, std::string_view what, int err = EINVAL) {
  return Error(field.empty() ? std::string(what) : fmt::format("{}: {}", field, what), err);
}

std::string join_field(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

Error wrong_type(std::string_view field, std::string_view expected, const json& j) {
  return field_error(field, fmt::format("expected {}, got {}", expected, describe_json(j)));
}

// A member of an object, or nullptr when it is absent or null (Go's zero value, as the reference reads it).
const json* member(const json& object, std::string_view key) {
  auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

Result<void> check_object(const json& j, std::string_view field, std::initializer_list<std::string_view> known) {
  if (!j.is_object()) {
    return wrong_type(field, "an object", j);
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return field_error(field, fmt::format("unknown field '{}'", it.key()));
    }
  }
  return ok();
}

Result<std::string> read_string(const json& j, std::string_view field) {
  if (!j.is_string()) {
    return wrong_type(field, "a string", j);
  }
  return j.get<std::string>();
}

// A member that must be there and be a string.
Result<std::string> required_string(const json& object, std::string_view parent, std::string_view key) {
  const json* j = member(object, key);
  if (j == nullptr) {
    return field_error(join_field(parent, key), "required");
  }
  return read_string(*j, join_field(parent, key));
}

// A member that may be absent (or null, or ""): an empty string then.
Result<std::string> optional_string(const json& object, std::string_view parent, std::string_view key) {
  const json* j = member(object, key);
  if (j == nullptr) {
    return std::string();
  }
  return read_string(*j, join_field(parent, key));
}

// A member that may be absent (nullptr) or must be an array.
Result<const json*> optional_array(const json& object, std::string_view parent, std::string_view key) {
  const json* j = member(object, key);
  if (j != nullptr && !j->is_array()) {
    return wrong_type(join_field(parent, key), "an array", *j);
  }
  return j;
}

Result<uint32_t> read_u32(const json& j, std::string_view field) {
  bool in_range = j.is_number_unsigned() ? j.get<uint64_t>() <= std::numeric_limits<uint32_t>::max()
                                         : j.is_number_integer() && j.get<int64_t>() >= 0 &&
                                               j.get<int64_t>() <= std::numeric_limits<uint32_t>::max();
  if (!in_range) {
    return wrong_type(field, "an integer in 0..4294967295", j);
  }
  return j.get<uint32_t>();
}

// An absolute path with no "." or ".." component and no NUL byte (what validate_plan also asks of paths).
Result<std::string> read_path(const json& j, std::string_view field) {
  SBX_ASSIGN(std::string path, read_string(j, field));
  if (path.empty() || path.front() != '/') {
    return field_error(field, fmt::format("'{}' must be an absolute path", path));
  }
  if (path.find('\0') != std::string::npos) {
    return field_error(field, "contains a NUL byte");
  }
  for (size_t start = 1; start <= path.size();) {
    size_t end = std::min(path.find('/', start), path.size());
    std::string_view part = std::string_view(path).substr(start, end - start);
    if (part == "." || part == "..") {
      return field_error(field, fmt::format("'{}' must not contain '.' or '..' components", path));
    }
    start = end + 1;
  }
  return path;
}

Result<void> require_version(const SpecContext& ctx, std::string_view field, const SpecVersion& first) {
  if (ctx.number >= first.number) {
    return ok();
  }
  return field_error(field, fmt::format("needs cdiVersion {} or later, the spec declares {}", first.text, ctx.version));
}

// ---------------------------------------------------------------------------------------------------------------
// containerEdits

Result<void> read_env(const json& edits, const std::string& field, CdiContainerEdits& out) {
  SBX_ASSIGN(const json* env, optional_array(edits, field, "env"));
  for (size_t i = 0; env != nullptr && i < env->size(); ++i) {
    const std::string item_field = fmt::format("{}.env[{}]", field, i);
    SBX_ASSIGN(std::string entry, read_string((*env)[i], item_field));
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0 || entry.find('\0') != std::string::npos) {
      return field_error(item_field, fmt::format("'{}' is not NAME=value", entry));
    }
    out.env.push_back(std::move(entry));
  }
  return ok();
}

Result<void> read_node_type(const json& node, const std::string& field, CdiDeviceNode& out,
                            std::vector<std::string>& unsupported) {
  SBX_ASSIGN(std::string type, optional_string(node, field, "type"));
  if (type.empty()) {
    return ok();
  }
  if (type == "c" || type == "u") {
    out.type = 'c';
  } else if (type == "b") {
    out.type = 'b';
  } else if (type == "p") {
    unsupported.push_back(fmt::format("{}.type: FIFO nodes are not supported", field));
  } else {
    return field_error(field + ".type", fmt::format("'{}' is not one of b, c, u, p", type));
  }
  return ok();
}

// major and minor, kept only with a non-zero major as the reference implementation does.
Result<void> read_node_numbers(const json& node, const std::string& field, CdiDeviceNode& out) {
  std::optional<uint32_t> major;
  uint32_t minor = 0;
  if (const json* j = member(node, "major")) {
    SBX_ASSIGN(major, read_u32(*j, field + ".major"));
  }
  if (const json* j = member(node, "minor")) {
    SBX_ASSIGN(minor, read_u32(*j, field + ".minor"));
  }
  if (major && *major != 0) {
    out.major = *major;
    out.minor = minor;
  }
  return ok();
}

Result<void> read_permissions(const json& node, const std::string& field, CdiDeviceNode& out) {
  SBX_ASSIGN(std::string permissions, optional_string(node, field, "permissions"));
  if (permissions.find_first_not_of("rwm") != std::string::npos) {
    return field_error(field + ".permissions", fmt::format("'{}' may contain only r, w and m", permissions));
  }
  if (permissions.empty()) {
    return ok();  // the default, "rwm"
  }
  out.access.clear();
  for (char bit : {'r', 'w', 'm'}) {
    if (permissions.find(bit) != std::string::npos) {
      out.access += bit;
    }
  }
  return ok();
}

// fileMode, uid and gid shape a node made inside the container; sbx binds the host's node instead.
Result<void> read_node_ownership(const json& node, const std::string& field, std::vector<std::string>& unsupported) {
  for (std::string_view key : {"fileMode", "uid", "gid"}) {
    if (const json* j = member(node, key)) {
      SBX_TRY(read_u32(*j, join_field(field, key)));
      unsupported.push_back(
          fmt::format("{}.{}: not supported: sbx binds the host's node, whose mode and owner stay the host's", field,
                      key));
    }
  }
  return ok();
}

Result<CdiDeviceNode> read_device_node(const json& node, const std::string& field, const SpecContext& ctx,
                                       std::vector<std::string>& unsupported) {
  SBX_TRY(check_object(node, field,
                       {"path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid"}));
  CdiDeviceNode out;
  const json* path = member(node, "path");
  if (path == nullptr) {
    return field_error(field + ".path", "required");
  }
  SBX_ASSIGN(out.path, read_path(*path, field + ".path"));
  out.host_path = out.path;
  SBX_ASSIGN(std::string host_path, optional_string(node, field, "hostPath"));
  if (!host_path.empty()) {
    SBX_TRY(require_version(ctx, field + ".hostPath", kHostPathAndDigitNames));
    SBX_ASSIGN(out.host_path, read_path(*member(node, "hostPath"), field + ".hostPath"));
  }
  SBX_TRY(read_node_type(node, field, out, unsupported));
  SBX_TRY(read_node_numbers(node, field, out));
  SBX_TRY(read_permissions(node, field, out));
  SBX_TRY(read_node_ownership(node, field, unsupported));
  return out;
}

// Options a sbx bind mount honours (it is always recursive, nosuid and nodev, and private).
void read_mount_option(const std::string& option, const std::string& field, BindMount& out,
                       std::vector<std::string>& unsupported) {
  static const std::set<std::string> kHonoured = {"bind", "rbind", "nosuid", "nodev", "private", "rprivate"};
  if (option == "ro") {
    out.read_only = true;
  } else if (option == "rw") {
    out.read_only = false;
  } else if (kHonoured.count(option) == 0) {
    unsupported.push_back(fmt::format("{}: mount option '{}' is not supported (sbx binds are recursive, private, "
                                      "nosuid and nodev; ro and rw choose the rest)",
                                      field, option));
  }
}

Result<BindMount> read_mount(const json& mount, const std::string& field, const SpecContext& ctx,
                             std::vector<std::string>& unsupported) {
  SBX_TRY(check_object(mount, field, {"hostPath", "containerPath", "options", "type"}));
  BindMount out;
  out.read_only = false;  // CDI mounts are read-write unless their options say "ro"
  for (auto [key, target] : {std::pair{"hostPath", &out.source}, std::pair{"containerPath", &out.destination}}) {
    const json* j = member(mount, key);
    if (j == nullptr) {
      return field_error(join_field(field, key), "required");
    }
    SBX_ASSIGN(*target, read_path(*j, join_field(field, key)));
  }
  SBX_ASSIGN(std::string type, optional_string(mount, field, "type"));
  if (!type.empty()) {
    SBX_TRY(require_version(ctx, field + ".type", kMountType));
  }
  if (!type.empty() && type != "bind" && type != "none") {
    unsupported.push_back(fmt::format("{}.type: '{}' mounts are not supported, only bind mounts", field, type));
  }
  SBX_ASSIGN(const json* options, optional_array(mount, field, "options"));
  for (size_t i = 0; options != nullptr && i < options->size(); ++i) {
    const std::string option_field = fmt::format("{}.options[{}]", field, i);
    SBX_ASSIGN(std::string option, read_string((*options)[i], option_field));
    read_mount_option(option, option_field, out, unsupported);
  }
  return out;
}

Result<void> read_nodes_and_mounts(const json& edits, const std::string& field, const SpecContext& ctx,
                                   CdiContainerEdits& out) {
  SBX_ASSIGN(const json* nodes, optional_array(edits, field, "deviceNodes"));
  for (size_t i = 0; nodes != nullptr && i < nodes->size(); ++i) {
    SBX_ASSIGN(CdiDeviceNode node,
               read_device_node((*nodes)[i], fmt::format("{}.deviceNodes[{}]", field, i), ctx, out.unsupported));
    out.device_nodes.push_back(std::move(node));
  }
  SBX_ASSIGN(const json* mounts, optional_array(edits, field, "mounts"));
  for (size_t i = 0; mounts != nullptr && i < mounts->size(); ++i) {
    SBX_ASSIGN(BindMount mount, read_mount((*mounts)[i], fmt::format("{}.mounts[{}]", field, i), ctx, out.unsupported));
    out.mounts.push_back(std::move(mount));
  }
  return ok();
}

// additionalGids (the spec's own example spells it additionalGIDs; both are read).
Result<void> read_additional_gids(const json& edits, const std::string& field, const SpecContext& ctx,
                                  CdiContainerEdits& out) {
  for (std::string_view key : {"additionalGids", "additionalGIDs"}) {
    SBX_ASSIGN(const json* gids, optional_array(edits, field, key));
    if (gids == nullptr || gids->empty()) {
      continue;
    }
    SBX_TRY(require_version(ctx, join_field(field, key), kIntelRdtAndGids));
    for (size_t i = 0; i < gids->size(); ++i) {
      SBX_ASSIGN(uint32_t gid, read_u32((*gids)[i], fmt::format("{}.{}[{}]", field, key, i)));
      out.additional_gids.push_back(gid);
    }
  }
  return ok();
}

// Edits sbx cannot apply: well-typed, they make a valid spec, and are refused only when a request needs them.
Result<void> read_unsupported_edits(const json& edits, const std::string& field, const SpecContext& ctx,
                                    CdiContainerEdits& out) {
  SBX_ASSIGN(const json* hooks, optional_array(edits, field, "hooks"));
  if (hooks != nullptr && !hooks->empty()) {
    out.unsupported.push_back(fmt::format("{}.hooks: CDI hooks are not supported", field));
  }
  if (const json* rdt = member(edits, "intelRdt")) {
    if (!rdt->is_object()) {
      return wrong_type(field + ".intelRdt", "an object", *rdt);
    }
    SBX_TRY(require_version(ctx, field + ".intelRdt", kIntelRdtAndGids));
    out.unsupported.push_back(fmt::format("{}.intelRdt: Intel RDT (resctrl) settings are not supported", field));
  }
  SBX_ASSIGN(const json* net, optional_array(edits, field, "netDevices"));
  if (net != nullptr) {
    SBX_TRY(require_version(ctx, field + ".netDevices", kNetDevices));
  }
  if (net != nullptr && !net->empty()) {
    out.unsupported.push_back(fmt::format("{}.netDevices: moving network devices into a sandbox is not supported",
                                          field));
  }
  return ok();
}

Result<CdiContainerEdits> read_edits(const json& edits, const std::string& field, const SpecContext& ctx) {
  SBX_TRY(check_object(edits, field,
                       {"env", "deviceNodes", "mounts", "hooks", "intelRdt", "additionalGids", "additionalGIDs",
                        "netDevices"}));
  CdiContainerEdits out;
  out.field = field;
  SBX_TRY(read_env(edits, field, out));
  SBX_TRY(read_nodes_and_mounts(edits, field, ctx, out));
  SBX_TRY(read_additional_gids(edits, field, ctx, out));
  SBX_TRY(read_unsupported_edits(edits, field, ctx, out));
  return out;
}

// The containerEdits member of a spec or a device; absent: none, named `field` all the same.
Result<CdiContainerEdits> optional_edits(const json& parent, const std::string& field, const SpecContext& ctx) {
  if (const json* edits = member(parent, "containerEdits")) {
    return read_edits(*edits, field, ctx);
  }
  CdiContainerEdits none;
  none.field = field;
  return none;
}

// ---------------------------------------------------------------------------------------------------------------
// The spec

// Annotations are for consumers that want them; sbx checks their shape and version only.
Result<void> read_annotations(const json& parent, std::string_view parent_field, const SpecContext& ctx) {
  const json* annotations = member(parent, "annotations");
  if (annotations == nullptr) {
    return ok();
  }
  const std::string field = join_field(parent_field, "annotations");
  if (!annotations->is_object()) {
    return wrong_type(field, "an object", *annotations);
  }
  for (auto it = annotations->begin(); it != annotations->end(); ++it) {
    SBX_TRY(read_string(it.value(), fmt::format("{}.{}", field, it.key())));
  }
  if (!annotations->empty()) {
    SBX_TRY(require_version(ctx, field, kAnnotationsAndDottedClass));
  }
  return ok();
}

Result<CdiDevice> read_device(const json& device, const std::string& field, const SpecContext& ctx) {
  SBX_TRY(check_object(device, field, {"name", "annotations", "containerEdits"}));
  CdiDevice out;
  SBX_ASSIGN(out.name, required_string(device, field, "name"));
  auto valid = check_device_name(out.name);
  if (!valid.ok()) {
    return field_error(field + ".name", valid.error().message());
  }
  if (is_digit(out.name.front())) {
    SBX_TRY(require_version(ctx, field + ".name", kHostPathAndDigitNames));
  }
  SBX_TRY(read_annotations(device, field, ctx));
  SBX_ASSIGN(out.edits, optional_edits(device, field + ".containerEdits", ctx));
  return out;
}

Result<void> read_devices(const json& spec, const SpecContext& ctx, CdiSpec& out) {
  SBX_ASSIGN(const json* devices, optional_array(spec, "", "devices"));
  if (devices == nullptr || devices->empty()) {
    return field_error("devices", "a spec must define at least one device");
  }
  for (size_t i = 0; i < devices->size(); ++i) {
    const std::string field = fmt::format("devices[{}]", i);
    SBX_ASSIGN(CdiDevice device, read_device((*devices)[i], field, ctx));
    for (const CdiDevice& other : out.devices) {
      if (other.name == device.name) {
        return field_error(field + ".name", fmt::format("device '{}' is defined twice", device.name));
      }
    }
    out.devices.push_back(std::move(device));
  }
  return ok();
}

Result<SpecContext> read_version(const json& spec) {
  SBX_ASSIGN(std::string version, required_string(spec, "", "cdiVersion"));
  std::string_view bare = version;
  if (bare.starts_with('v')) {
    bare.remove_prefix(1);
  }
  for (const SpecVersion& known : kVersions) {
    if (known.text == bare) {
      return SpecContext{version, known.number};
    }
  }
  return field_error("cdiVersion",
                     fmt::format("'{}' is not a supported CDI version (0.3.0 to 0.8.0, 1.0.0, 1.1.0)", version));
}

Result<void> read_kind(const json& spec, const SpecContext& ctx, CdiSpec& out) {
  SBX_ASSIGN(std::string kind, required_string(spec, "", "kind"));
  auto parsed = parse_kind(kind);
  if (!parsed.ok()) {
    return field_error("kind", parsed.error().message());
  }
  std::tie(out.vendor, out.device_class) = std::move(*parsed);
  if (out.device_class.find('.') != std::string::npos) {
    SBX_TRY(require_version(ctx, "kind", kAnnotationsAndDottedClass));
  }
  return ok();
}

}  // namespace

Result<CdiSpec> cdi_spec_from_json(const json& spec, const std::string& path) {
  SBX_TRY(check_object(spec, "", {"cdiVersion", "kind", "annotations", "devices", "containerEdits"}));
  CdiSpec out;
  out.path = path;
  SBX_ASSIGN(SpecContext ctx, read_version(spec));
  out.version = ctx.version;
  SBX_TRY(read_kind(spec, ctx, out));
  SBX_TRY(read_annotations(spec, "", ctx));
  SBX_ASSIGN(out.edits, optional_edits(spec, "containerEdits", ctx));
  SBX_TRY(read_devices(spec, ctx, out));
  return out;
}

Result<CdiDeviceName> parse_cdi_device_name(std::string_view qualified) {
  size_t eq = qualified.find('=');
  if (eq == std::string_view::npos) {
    return Error(fmt::format("'{}' is not a qualified CDI device name (vendor.com/class=name)", qualified), EINVAL);
  }
  SBX_ASSIGN_CTX(auto kind, parse_kind(qualified.substr(0, eq)), "CDI device name '{}'", qualified);
  SBX_TRY_CTX(check_device_name(qualified.substr(eq + 1)), "CDI device name '{}'", qualified);
  return CdiDeviceName{std::move(kind.first), std::move(kind.second), std::string(qualified.substr(eq + 1))};
}

Result<CdiSpec> parse_cdi_spec(std::string_view text, const std::string& path) {
  json spec = json::parse(text, nullptr, false);
  if (spec.is_discarded()) {
    return Error(fmt::format("{}: not valid JSON", path), EINVAL);
  }
  auto parsed = cdi_spec_from_json(spec, path);
  if (!parsed.ok()) {
    return std::move(parsed).error().context(path);
  }
  return parsed;
}

}  // namespace sbx::rt
