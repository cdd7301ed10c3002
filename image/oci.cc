#include "image/oci.h"

#include <algorithm>
#include <set>

#include "image/sha256.h"

namespace sbx::image {

namespace {

constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";

constexpr std::string_view kLayerTypes[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
};
constexpr std::string_view kForeignLayerTypes[] = {
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    out += out.empty() ? "" : ", ";
    out += s;
  }
  return out;
}

std::string shown_name(const std::string& name) { return name.empty() ? "<unnamed>" : name; }

Result<std::string> string_field(const json& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) {
      return make_error("'{}' missing", key);
    }
    return std::string();
  }
  if (!it->is_string()) {
    return make_error("'{}' is not a string", key);
  }
  return it->get<std::string>();
}

Result<std::vector<std::string>> string_array(const json& j, const char* key, bool required) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) {
      return make_error("'{}' missing", key);
    }
    return out;
  }
  if (!it->is_array()) {
    return make_error("'{}' is not an array", key);
  }
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return make_error("'{}' holds a non-string", key);
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<Platform> parse_platform(const json& j) {
  if (!j.is_object()) {
    return make_error("'platform' is not an object");
  }
  Platform p;
  SBX_ASSIGN(p.os, string_field(j, "os", true));
  SBX_ASSIGN(p.architecture, string_field(j, "architecture", true));
  SBX_ASSIGN(p.variant, string_field(j, "variant", false));
  return p;
}

Result<std::map<std::string, std::string>> parse_annotations(const json& j) {
  std::map<std::string, std::string> out;
  if (j.is_null()) {
    return out;
  }
  if (!j.is_object()) {
    return make_error("'annotations' is not an object");
  }
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) {
      return make_error("annotation '{}' is not a string", key);
    }
    out[key] = value.get<std::string>();
  }
  return out;
}

std::string platform_str(const Descriptor& d) {
  if (!d.platform) {
    return "<no platform>";
  }
  std::string s = d.platform->os + "/" + d.platform->architecture;
  return d.platform->variant.empty() ? s : s + "/" + d.platform->variant;
}

}  // namespace

Result<std::string> parse_digest(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (text.substr(0, kPrefix.size()) != kPrefix) {
    return make_error("digest '{}' is not sha256", text);
  }
  std::string_view hex = text.substr(kPrefix.size());
  if (!is_sha256_hex(hex)) {
    return make_error("digest '{}' is not 64 lowercase hex digits", text);
  }
  return std::string(hex);
}

Result<json> parse_json(std::string_view text, std::string_view what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return make_error("{} is not valid JSON", what);
  }
  return j;
}

std::string Descriptor::ref_name() const {
  for (auto key : {kRefNameAnnotation, kContainerdNameAnnotation}) {
    auto it = annotations.find(std::string(key));
    if (it != annotations.end() && !it->second.empty()) {
      return it->second;
    }
  }
  return {};
}

bool Descriptor::has_name(std::string_view name) const {
  for (auto key : {kRefNameAnnotation, kContainerdNameAnnotation}) {
    auto it = annotations.find(std::string(key));
    if (it != annotations.end() && it->second == name) {
      return true;
    }
  }
  return false;
}

Result<Descriptor> parse_descriptor(const json& j) {
  if (!j.is_object()) {
    return make_error("descriptor is not an object");
  }
  Descriptor d;
  SBX_ASSIGN(d.media_type, string_field(j, "mediaType", false));
  SBX_ASSIGN(std::string digest, string_field(j, "digest", true));
  SBX_ASSIGN(d.digest_hex, parse_digest(digest));
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return make_error("descriptor of '{}': 'size' is not a non-negative integer", digest);
  }
  d.size = size->get<uint64_t>();
  SBX_ASSIGN(d.annotations, parse_annotations(j.value("annotations", json())));
  if (j.contains("platform")) {
    SBX_ASSIGN(d.platform, parse_platform(j["platform"]));
  }
  return d;
}

Result<std::vector<Descriptor>> parse_index(const json& j) {
  if (!j.is_object()) {
    return make_error("index is not an object");
  }
  auto manifests = j.find("manifests");
  if (manifests == j.end() || !manifests->is_array()) {
    return make_error("index has no 'manifests' array");
  }
  std::vector<Descriptor> out;
  for (const auto& m : *manifests) {
    auto d = parse_descriptor(m);
    if (!d.ok()) {
      return std::move(d).error().context(fmt::format("index entry {}", out.size() + 1));
    }
    out.push_back(std::move(d).value());
  }
  return out;
}

bool is_index_media_type(std::string_view media_type) {
  return media_type == kOciIndex || media_type == kDockerList;
}

bool is_manifest_media_type(std::string_view media_type) {
  return media_type == kOciManifest || media_type == kDockerManifest;
}

Result<Descriptor> select_platform(const std::vector<Descriptor>& manifests, std::string_view arch) {
  if (manifests.empty()) {
    return make_error("the index lists no manifest");
  }
  bool any_platform = std::any_of(manifests.begin(), manifests.end(), [](const auto& d) { return d.platform; });
  if (!any_platform) {
    if (manifests.size() == 1) {
      return manifests.front();
    }
    return make_error("the index lists {} manifests and no platforms", manifests.size());
  }
  std::vector<std::string> seen;
  for (const auto& d : manifests) {
    if (d.platform && d.platform->os == "linux" && d.platform->architecture == arch) {
      return d;
    }
    seen.push_back(platform_str(d));
  }
  return make_error("no manifest for linux/{} (the index has: {})", arch, join(seen));
}

Result<Descriptor> select_image(const std::vector<Descriptor>& entries, std::string_view ref, std::string_view arch) {
  if (entries.empty()) {
    return make_error("index.json lists no image");
  }
  std::vector<std::string> names;
  for (const auto& d : entries) {
    std::string name = shown_name(d.ref_name());
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  }
  std::vector<Descriptor> chosen;
  if (!ref.empty()) {
    std::copy_if(entries.begin(), entries.end(), std::back_inserter(chosen),
                 [&](const Descriptor& d) { return d.has_name(ref); });
    if (chosen.empty()) {
      return make_error("no image named '{}' in the archive (it holds: {})", ref, join(names));
    }
  } else if (names.size() > 1) {
    return make_error("the archive holds several images ({}): choose one with --ref", join(names));
  } else {
    chosen = entries;
  }
  if (chosen.size() == 1) {
    return chosen.front();
  }
  return select_platform(chosen, arch);
}

Result<Manifest> parse_manifest(const json& j) {
  if (!j.is_object()) {
    return make_error("manifest is not an object");
  }
  if (j.contains("schemaVersion") && j["schemaVersion"] != 2) {
    return make_error("manifest schemaVersion is not 2");
  }
  SBX_ASSIGN(std::string media_type, string_field(j, "mediaType", false));
  if (!media_type.empty() && !is_manifest_media_type(media_type)) {
    return make_error("media type '{}' is not an image manifest", media_type);
  }
  if (!j.contains("config") || !j.contains("layers") || !j["layers"].is_array()) {
    return make_error("manifest without 'config' and 'layers'");
  }
  Manifest m;
  auto config = parse_descriptor(j["config"]);
  if (!config.ok()) {
    return std::move(config).error().context("manifest config");
  }
  m.config = std::move(config).value();
  if (!m.config.media_type.empty() && m.config.media_type != kOciConfig && m.config.media_type != kDockerConfig) {
    return make_error("not a container image: config media type '{}'", m.config.media_type);
  }
  for (const auto& l : j["layers"]) {
    auto d = parse_descriptor(l);
    if (!d.ok()) {
      return std::move(d).error().context(fmt::format("manifest layer {}", m.layers.size() + 1));
    }
    m.layers.push_back(std::move(d).value());
  }
  if (m.layers.empty()) {
    return make_error("the manifest lists no layers");
  }
  return m;
}

Result<void> check_layer_media_type(std::string_view media_type) {
  for (auto t : kLayerTypes) {
    if (media_type == t) {
      return ok();
    }
  }
  for (auto t : kForeignLayerTypes) {
    if (media_type == t) {
      return make_error("foreign (non-distributable) layer of type '{}' is not supported", media_type);
    }
  }
  return make_error("unsupported layer media type '{}'", media_type);
}

Result<ImageConfig> parse_image_config(const json& j) {
  if (!j.is_object()) {
    return make_error("image config is not an object");
  }
  ImageConfig c;
  auto config = j.find("config");
  if (config != j.end() && !config->is_null()) {
    if (!config->is_object()) {
      return make_error("image config: 'config' is not an object");
    }
    c.config = *config;
    auto user = string_field(*config, "User", false);
    if (!user.ok()) {
      return std::move(user).error().context("image config");
    }
    c.user = std::move(user).value();
  }
  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object() || !rootfs->contains("type") || (*rootfs)["type"] != "layers") {
    return make_error("image config: no rootfs of type 'layers'");
  }
  auto ids = string_array(*rootfs, "diff_ids", true);
  if (!ids.ok()) {
    return std::move(ids).error().context("image config rootfs");
  }
  for (const auto& id : *ids) {
    SBX_ASSIGN(std::string hex, parse_digest(id));
    c.diff_ids.push_back(std::move(hex));
  }
  return c;
}

Result<std::vector<DockerImage>> parse_docker_manifest(const json& j) {
  if (!j.is_array() || j.empty()) {
    return make_error("manifest.json is not a non-empty array");
  }
  std::vector<DockerImage> out;
  for (const auto& item : j) {
    if (!item.is_object()) {
      return make_error("manifest.json: entry {} is not an object", out.size() + 1);
    }
    DockerImage img;
    auto config = string_field(item, "Config", true);
    auto tags = string_array(item, "RepoTags", false);
    auto layers = string_array(item, "Layers", true);
    for (Error* e : {config.ok() ? nullptr : &config.error(), tags.ok() ? nullptr : &tags.error(),
                     layers.ok() ? nullptr : &layers.error()}) {
      if (e != nullptr) {
        return std::move(*e).context(fmt::format("manifest.json entry {}", out.size() + 1));
      }
    }
    img.config = std::move(config).value();
    img.repo_tags = std::move(tags).value();
    img.layers = std::move(layers).value();
    if (img.layers.empty()) {
      return make_error("manifest.json entry {}: no layers", out.size() + 1);
    }
    out.push_back(std::move(img));
  }
  return out;
}

Result<DockerImage> select_docker_image(const std::vector<DockerImage>& images, std::string_view ref) {
  std::vector<std::string> names;
  for (const auto& img : images) {
    if (img.repo_tags.empty()) {
      names.emplace_back("<untagged>");
    }
    names.insert(names.end(), img.repo_tags.begin(), img.repo_tags.end());
  }
  if (ref.empty()) {
    if (images.size() == 1) {
      return images.front();
    }
    return make_error("the archive holds several images ({}): choose one with --ref", join(names));
  }
  for (const auto& img : images) {
    if (std::find(img.repo_tags.begin(), img.repo_tags.end(), ref) != img.repo_tags.end()) {
      return img;
    }
  }
  return make_error("no image tagged '{}' in the archive (it holds: {})", ref, join(names));
}

std::optional<std::string> digest_in_path(std::string_view path) {
  constexpr std::string_view kBlobs = "blobs/sha256/";
  if (path.substr(0, kBlobs.size()) == kBlobs && is_sha256_hex(path.substr(kBlobs.size()))) {
    return std::string(path.substr(kBlobs.size()));
  }
  for (std::string_view ext : {".json", ".tar"}) {
    if (path.size() == 64 + ext.size() && path.substr(64) == ext && is_sha256_hex(path.substr(0, 64))) {
      return std::string(path.substr(0, 64));
    }
  }
  return std::nullopt;
}

std::string host_architecture() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__arm__)
  return "arm";
#elif defined(__i386__)
  return "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

json synthetic_config(const std::vector<std::string>& diff_ids, std::string_view arch) {
  json ids = json::array();
  for (const auto& hex : diff_ids) {
    ids.push_back("sha256:" + hex);
  }
  return json{{"architecture", std::string(arch)},
              {"os", "linux"},
              {"config", json::object()},
              {"rootfs", {{"type", "layers"}, {"diff_ids", ids}}}};
}

}  // namespace sbx::image
