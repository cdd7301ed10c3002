// The two image archive layouts, once the outer archive is unpacked into the work directory: an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) and a docker-save archive (manifest.json, a config, layer tars).
#include <fcntl.h>

#include "image/fs.h"
#include "image/import_internal.h"
#include "image/path.h"
#include "image/sha256.h"

namespace sbx::image {

namespace {

constexpr size_t kMaxJsonFile = 16 << 20;
constexpr int kMaxIndexDepth = 4;

std::string blob_path(const std::string& hex) { return "blobs/sha256/" + hex; }

Result<json> read_json_file(int outer, const std::string& path) {
  SBX_ASSIGN(std::string text, read_regular_beneath(outer, path, kMaxJsonFile, Symlinks::kFollowBeneath));
  return parse_json(text, path);
}

Result<void> check_oci_layout(int outer) {
  SBX_ASSIGN(json layout, read_json_file(outer, "oci-layout"));
  if (!layout.is_object() || !layout.contains("imageLayoutVersion") || !layout["imageLayoutVersion"].is_string()) {
    return make_error("oci-layout has no imageLayoutVersion");
  }
  return ok();
}

// A path from manifest.json, checked like an entry's path (relative, no "..").
Result<std::string> archive_path(const std::string& raw) {
  auto p = normalize_entry_path(raw);
  if (!p.ok() || p->is_root()) {
    return make_error("manifest.json names '{}': {}", raw, p.ok() ? "the archive's root" : p.error().message());
  }
  return p->str();
}

}  // namespace

// A blob named by a descriptor: read whole, then checked against the descriptor's size and digest.
Result<std::string> Importer::read_blob(int outer, const Descriptor& d, size_t limit, std::string_view what) {
  if (d.size > limit) {
    return make_error("{} sha256:{} is {} bytes, more than {}", what, d.digest_hex, d.size, limit);
  }
  SBX_ASSIGN(std::string data, read_regular_beneath(outer, blob_path(d.digest_hex), limit, Symlinks::kFollowBeneath));
  if (data.size() != d.size) {
    return make_error("{} sha256:{} is {} bytes, its descriptor says {}", what, d.digest_hex, data.size(), d.size);
  }
  std::string actual = sha256_hex(data);
  if (actual != d.digest_hex) {
    return make_error("{} blob does not match its digest: it hashes to sha256:{}, the descriptor says sha256:{}", what,
                      actual, d.digest_hex);
  }
  return data;
}

// Follows (nested) indexes down to the manifest for this machine's platform.
Result<Manifest> Importer::resolve_manifest(int outer, Descriptor d) {
  for (int depth = 0; depth < kMaxIndexDepth; ++depth) {
    SBX_ASSIGN(std::string text, read_blob(outer, d, kMaxJsonFile, "manifest"));
    SBX_ASSIGN(json j, parse_json(text, "manifest sha256:" + d.digest_hex));
    bool index = is_index_media_type(d.media_type) || (d.media_type.empty() && j.contains("manifests"));
    if (!index) {
      return parse_manifest(j);
    }
    SBX_ASSIGN(std::vector<Descriptor> manifests, parse_index(j));
    SBX_ASSIGN(d, select_platform(manifests, host_architecture()));
  }
  return make_error("image indexes nested more than {} deep", kMaxIndexDepth);
}

Result<void> Importer::import_oci(int outer) {
  report("verify", 0, 0, 0, 0);
  SBX_TRY(check_oci_layout(outer));
  SBX_ASSIGN(json index_json, read_json_file(outer, "index.json"));
  auto entries = parse_index(index_json);
  if (!entries.ok()) {
    return std::move(entries).error().context("index.json");
  }
  SBX_ASSIGN(Descriptor chosen, select_image(*entries, opts_.ref, host_architecture()));
  result_.ref = opts_.ref.empty() ? chosen.ref_name() : opts_.ref;
  SBX_ASSIGN(Manifest manifest, resolve_manifest(outer, chosen));
  SBX_ASSIGN(std::string config_text, read_blob(outer, manifest.config, kMaxJsonFile, "config"));
  SBX_ASSIGN(json config_json, parse_json(config_text, "image config"));
  SBX_ASSIGN(ImageConfig config, parse_image_config(config_json));
  result_.config_digest_hex = manifest.config.digest_hex;
  if (config.diff_ids.size() != manifest.layers.size()) {
    return make_error("the manifest lists {} layers, the image config {} diff_ids", manifest.layers.size(),
                      config.diff_ids.size());
  }
  std::vector<LayerBlob> blobs;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    const Descriptor& d = manifest.layers[i];
    auto checked = check_layer_media_type(d.media_type);
    if (!checked.ok()) {
      return std::move(checked).error().context(fmt::format("layer {}", i + 1));
    }
    blobs.push_back(LayerBlob{i, manifest.layers.size(), blob_path(d.digest_hex), d.digest_hex, d.size,
                              config.diff_ids[i]});
  }
  return import_layers(outer, blobs, config);
}

Result<void> Importer::import_docker(int outer) {
  report("verify", 0, 0, 0, 0);
  SBX_ASSIGN(json manifest_json, read_json_file(outer, "manifest.json"));
  SBX_ASSIGN(std::vector<DockerImage> images, parse_docker_manifest(manifest_json));
  SBX_ASSIGN(DockerImage image, select_docker_image(images, opts_.ref));
  result_.ref = !opts_.ref.empty() ? opts_.ref : image.repo_tags.empty() ? "" : image.repo_tags.front();
  SBX_ASSIGN(std::string config_path, archive_path(image.config));
  SBX_ASSIGN(std::string config_text, read_regular_beneath(outer, config_path, kMaxJsonFile, Symlinks::kFollowBeneath));
  std::string config_hex = sha256_hex(config_text);
  auto named = digest_in_path(config_path);
  if (named && *named != config_hex) {
    return make_error("config '{}' does not match its name: it hashes to sha256:{}", config_path, config_hex);
  }
  SBX_ASSIGN(json config_json, parse_json(config_text, config_path));
  SBX_ASSIGN(ImageConfig config, parse_image_config(config_json));
  result_.config_digest_hex = config_hex;
  if (config.diff_ids.size() != image.layers.size()) {
    return make_error("manifest.json lists {} layers, the image config {} diff_ids", image.layers.size(),
                      config.diff_ids.size());
  }
  std::vector<LayerBlob> blobs;
  for (size_t i = 0; i < image.layers.size(); ++i) {
    SBX_ASSIGN(std::string path, archive_path(image.layers[i]));
    std::optional<std::string> raw_hex = digest_in_path(path);
    blobs.push_back(LayerBlob{i, image.layers.size(), path, raw_hex, std::nullopt, config.diff_ids[i]});
  }
  return import_layers(outer, blobs, config);
}

Result<void> Importer::import_layers(int outer, const std::vector<LayerBlob>& blobs, const ImageConfig& config) {
  result_.config = config.config;
  for (const auto& blob : blobs) {
    auto imported = import_layer(outer, blob);
    if (!imported.ok()) {
      return std::move(imported).error().context(fmt::format("layer {}", blob.index + 1));
    }
  }
  SBX_TRY(resolve_image_user(config.user));
  return commit();
}

}  // namespace sbx::image
