#include "daemon/image_spec.h"

#include <algorithm>

#include "api/protocol.h"

namespace sbx::daemon {

namespace {

bool is_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::vector<std::string> string_array(const json& v) {
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const auto& e : v) {
      if (e.is_string()) {
        out.push_back(e.get<std::string>());
      }
    }
  }
  return out;
}

// The importer's layer list, checked: [{diff_id: "sha256:<hex>", size}].
Result<json> checked_layers(const json& layers) {
  if (!layers.is_array() || layers.empty()) {
    return make_error("the importer reported no layers");
  }
  json out = json::array();
  for (const auto& l : layers) {
    if (!l.is_object() || !l.contains("diff_id") || !l["diff_id"].is_string()) {
      return make_error("the importer reported a layer without a diff_id");
    }
    SBX_TRY(digest_hex(l["diff_id"].get<std::string>()));
    out.push_back({{"diff_id", l["diff_id"]}, {"size", l.value("size", uint64_t(0))}});
  }
  return out;
}

}  // namespace

std::string layers_dir(const DaemonConfig& config) { return config.state_dir + "/layers"; }

Result<std::string> digest_hex(std::string_view digest) {
  constexpr std::string_view kPrefix = "sha256:";
  if (digest.substr(0, kPrefix.size()) != kPrefix || digest.size() != kPrefix.size() + 64 ||
      !is_hex(digest.substr(kPrefix.size()))) {
    return make_error("'{}' is not a sha256 digest", digest);
  }
  return std::string(digest.substr(kPrefix.size()));
}

Result<std::vector<std::string>> image_lower_dirs(const DaemonConfig& config, const json& snapshot) {
  std::vector<std::string> dirs;
  const json& layers = snapshot.contains("layers") ? snapshot["layers"] : json::array();
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    if (!it->is_string()) {
      return make_error("image snapshot: a layer is not a digest");
    }
    SBX_ASSIGN(std::string hex, digest_hex(it->get<std::string>()));
    dirs.push_back(layers_dir(config) + "/" + hex);
  }
  if (dirs.empty()) {
    return make_error("image snapshot: no layers");
  }
  return dirs;
}

Result<ImageRow> image_row_from_import(const std::string& name, const std::string& source, const json& done,
                                       int64_t now_ms) {
  ImageRow row;
  row.name = name;
  row.id = done.value("config_digest", "");
  SBX_TRY_CTX(digest_hex(row.id), "the importer's config_digest");
  row.created_at = now_ms;
  SBX_ASSIGN(json layers, checked_layers(done.value("layers", json())));
  uint64_t size = 0;
  for (const auto& l : layers) {
    size += l["size"].get<uint64_t>();
  }
  json user = done.value("user", json::object());
  row.record = {{"format", done.value("format", "")},
                {"source", source},
                {"ref", done.value("ref", "")},
                {"config", done.value("config", json::object())},
                {"user", {{"uid", user.value("uid", 0u)}, {"gid", user.value("gid", 0u)}}},
                {"layers", layers},
                {"size", size}};
  return row;
}

json image_snapshot(const ImageRow& row) {
  json layers = json::array();
  for (const auto& l : row.record.value("layers", json::array())) {
    layers.push_back(l.value("diff_id", ""));
  }
  return {{"name", row.name},
          {"id", row.id},
          {"layers", layers},
          {"config", row.record.value("config", json::object())},
          {"user", row.record.value("user", json{{"uid", 0}, {"gid", 0}})}};
}

void collect_layers(const json& snapshot, std::set<std::string>* out) {
  if (!snapshot.is_object() || !snapshot.contains("layers") || !snapshot["layers"].is_array()) {
    return;
  }
  for (const auto& l : snapshot["layers"]) {
    if (l.is_string()) {
      out->insert(l.get<std::string>());
    }
  }
}

Result<const ImageRow*> find_image(const std::vector<ImageRow>& images, std::string_view key) {
  for (const auto& row : images) {
    if (row.name == key || row.id == key) {
      return &row;
    }
  }
  std::string_view prefix = key.substr(0, 7) == "sha256:" ? key.substr(7) : key;
  const ImageRow* found = nullptr;
  if (prefix.size() >= 12 && is_hex(prefix)) {
    for (const auto& row : images) {
      if (row.id.compare(7, prefix.size(), prefix) == 0) {
        if (found != nullptr && found->id != row.id) {
          return api::param_error("image", fmt::format("'{}' matches several images", key));
        }
        found = &row;
      }
    }
  }
  if (found == nullptr) {
    return api::api_error(api::kNotFound, "no image '{}'", key);
  }
  return found;
}

json describe_image(const ImageRow& row, const ImageUsers& users) {
  json out = row.record;
  out["id"] = row.id;
  out["name"] = row.name;
  out["created_at"] = api::format_time_ms(row.created_at);
  out["used_by"] = {{"sandboxes", users.sandboxes}, {"environments", users.environments}};
  return out;
}

std::vector<std::string> image_command(const json& image_config, const json& params) {
  const json config = image_config.is_object() ? image_config : json::object();
  bool own_entrypoint = params.contains("entrypoint");
  std::vector<std::string> argv = string_array(own_entrypoint ? params["entrypoint"] : config.value("Entrypoint", json()));
  std::vector<std::string> cmd;
  if (params.contains("cmd") && params["cmd"].is_array()) {
    cmd = string_array(params["cmd"]);
  } else if (!own_entrypoint) {
    cmd = string_array(config.value("Cmd", json()));
  }
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  return argv;
}

}  // namespace sbx::daemon
