#pragma once
// OCI image layouts and docker-save manifests as data: parsing, validation and the choice of one image, as pure
// functions on JSON (the file reading and digest checks are in import.cc).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace sbx::image {

using json = nlohmann::json;

inline constexpr std::string_view kRefNameAnnotation = "org.opencontainers.image.ref.name";
inline constexpr std::string_view kContainerdNameAnnotation = "io.containerd.image.name";

// "sha256:<64 lowercase hex>" -> the hex; any other algorithm or shape is refused.
Result<std::string> parse_digest(std::string_view text);

// Parses text as JSON (no exceptions); `what` names the document in errors.
Result<json> parse_json(std::string_view text, std::string_view what);

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
};

struct Descriptor {
  std::string media_type;
  std::string digest_hex;
  uint64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;

  // The image name the entry is known by: its ref.name annotation, else containerd's image name, else "".
  std::string ref_name() const;
  bool has_name(std::string_view name) const;
};

Result<Descriptor> parse_descriptor(const json& j);
// An image index's (index.json's) "manifests".
Result<std::vector<Descriptor>> parse_index(const json& j);

bool is_index_media_type(std::string_view media_type);
bool is_manifest_media_type(std::string_view media_type);

// The image named `ref` among a top-level index's entries, or the only image when `ref` is empty. Several entries
// of one name are told apart by platform. Refuses (listing the names) several images without a ref.
Result<Descriptor> select_image(const std::vector<Descriptor>& entries, std::string_view ref, std::string_view arch);
// The manifest for linux/`arch` among a (nested) index's manifests; the only one when none names a platform.
Result<Descriptor> select_platform(const std::vector<Descriptor>& manifests, std::string_view arch);

struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};
Result<Manifest> parse_manifest(const json& j);

// Accepts tar, tar+gzip and tar+zstd layers (OCI and docker names); refuses foreign/non-distributable and unknown
// media types.
Result<void> check_layer_media_type(std::string_view media_type);

struct ImageConfig {
  json config = json::object();     // the config's "config" object (Env, Cmd, User...)
  std::vector<std::string> diff_ids;  // hex, bottom layer first
  std::string user;
};
Result<ImageConfig> parse_image_config(const json& j);

// One image of a docker-save manifest.json.
struct DockerImage {
  std::string config;                  // path in the archive
  std::vector<std::string> repo_tags;
  std::vector<std::string> layers;     // paths in the archive, bottom first
};
Result<std::vector<DockerImage>> parse_docker_manifest(const json& j);
// The image tagged `ref`, or the only image when `ref` is empty; refuses several images without a ref.
Result<DockerImage> select_docker_image(const std::vector<DockerImage>& images, std::string_view ref);

// The hex digest a docker-save path names, if it names one: "blobs/sha256/<hex>" or "<hex>.json" / "<hex>.tar".
std::optional<std::string> digest_in_path(std::string_view path);

// The OCI name of the machine's architecture (amd64, arm64, ...).
std::string host_architecture();

// The config document made for a tarball or directory import: same layers, same document, same digest.
json synthetic_config(const std::vector<std::string>& diff_ids, std::string_view arch);

}  // namespace sbx::image
