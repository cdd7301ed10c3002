#include "cli/image_args.h"

#include <cerrno>

namespace sbx::cli {

namespace {

Result<int64_t> parse_ttl(const std::string& text) {
  if (text == "0") {
    return int64_t{0};
  }
  SBX_ASSIGN(double secs, parse_seconds("--ttl", text, false));
  return static_cast<int64_t>(secs);
}

// The limits of an update: those given over the previous version's.
Result<json> merged_limits(const EnvironmentOptions& o, const json& previous) {
  SBX_ASSIGN(json given, parse_limits(o.memory, o.cpus, o.pids, o.disk));
  if (given.empty() || !previous.is_object()) {
    return given;
  }
  json limits = json::object();
  if (auto it = previous.find("limits"); it != previous.end() && it->is_object()) {
    for (const auto& [key, value] : it->items()) {
      if (!value.is_null()) {
        limits[key] = value;
      }
    }
  }
  for (const auto& [key, value] : given.items()) {
    limits[key] = value;
  }
  return limits;
}

}  // namespace

Result<ImportMode> import_mode(const ImportOptions& o, bool root, bool source_is_dir) {
  if (root && o.source != "-" && !o.stream) {
    return ImportMode::kPath;
  }
  if (source_is_dir) {
    const char* why = root ? "with --stream" : "without root (only root may have the daemon read a path)";
    return Error(fmt::format("'{}' is a directory, which cannot be streamed {}: make a tarball of it, e.g. "
                             "tar -C {} -cf - . | sbxctl image import - --name {}",
                             o.source, why, o.source, o.name.empty() ? "NAME" : o.name),
                 EISDIR);
  }
  return ImportMode::kStream;
}

json import_params(const ImportOptions& o, ImportMode mode, const std::string& cwd) {
  json p = {{"name", o.name}};
  if (mode == ImportMode::kPath) {
    p["source"] = absolute_path(o.source, cwd);
  } else {
    p["stream"] = true;
  }
  if (!o.ref.empty()) {
    p["ref"] = o.ref;
  }
  if (o.replace) {
    p["replace"] = true;
  }
  if (o.quiet) {
    p["progress"] = false;
  }
  return p;
}

std::string default_image_name(std::string_view definition) {
  std::string name = base_name(definition);
  size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    name.resize(dot);
  }
  return name;
}

std::vector<std::string> build_argv(const std::string& builder, const BuildOptions& o, const std::string& output) {
  std::vector<std::string> argv = {builder, o.definition, "--output", output};
  if (!o.cache.empty()) {
    argv.insert(argv.end(), {"--cache", o.cache});
  }
  for (const auto& s : o.sources) {
    argv.insert(argv.end(), {"--sources", s});
  }
  if (o.quiet) {
    argv.push_back("--quiet");
  }
  return argv;
}

std::string builder_path(const EnvLookup& lookup, const std::string& installed) {
  if (auto v = lookup ? lookup("SBX_BUILD_IMAGE") : std::nullopt; v && !v->empty()) {
    return *v;
  }
  return installed;
}

Result<json> environment_params(const EnvironmentOptions& o, const EnvLookup& lookup, const json& previous) {
  json p = {{"name", o.name}};
  if (!o.image.empty()) {
    p["image"] = o.image;
  } else if (previous.is_null()) {
    return Error("--image: required: the image sandboxes of this environment start from", EINVAL);
  }
  SBX_ASSIGN(json limits, merged_limits(o, previous));
  if (!limits.empty()) {
    p["limits"] = std::move(limits);
  }
  if (!o.env.empty()) {
    SBX_ASSIGN(p["env"], parse_env(o.env, lookup));
  }
  if (!o.seccomp.empty()) {
    p["seccomp"] = o.seccomp;
  }
  if (!o.network.empty()) {
    p["network"] = o.network;
  }
  if (!o.ttl.empty()) {
    SBX_ASSIGN(p["ttl"], parse_ttl(o.ttl));
  }
  if (o.read_only) {
    p["read_only"] = *o.read_only;
  }
  if (!o.cap_drop.empty()) {
    p["cap_drop"] = o.cap_drop;
  }
  if (!o.devices.empty()) {
    p["devices"] = o.devices;
  }
  SBX_ASSIGN(std::optional<bool> userns, parse_userns(o.userns));
  if (userns) {
    p["userns"] = *userns;
  }
  if (o.description) {
    p["description"] = *o.description;
  }
  return p;
}

}  // namespace sbx::cli
