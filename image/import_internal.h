#pragma once
// The Importer shared by import.cc (sources, layers, user, commit) and image_archive.cc (OCI and docker-save).
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/fd.h"
#include "image/archive_source.h"
#include "image/import.h"
#include "image/oci.h"

namespace sbx::image {

// One layer blob of an image archive, beneath the unpacked outer archive.
struct LayerBlob {
  size_t index = 0;  // 0-based, bottom first
  size_t count = 0;
  std::string path;
  std::optional<std::string> raw_hex;  // the blob's digest, when the manifest or its name gives one
  std::optional<uint64_t> raw_size;
  std::string diff_hex;                // from the image config
};

class Importer {
 public:
  Importer(const ImportOptions& options, const ProgressFn& progress)
      : opts_(options), progress_(progress), budget_(options.limits) {}

  Result<ImportResult> run();

 private:
  // import.cc
  Result<void> open_dirs();
  Result<void> run_source();
  Result<void> import_archive(Fd fd, uint64_t size);
  Result<void> import_directory();
  Result<Fd> make_work_dir(const std::string& name);
  Result<void> finish_single_layer(const std::string& work_name, const StreamDigests& digests,
                                   const UnpackStats& stats);
  Result<void> import_layer(int outer, const LayerBlob& blob);
  Result<void> resolve_image_user(const std::string& user);
  Result<std::optional<std::string>> read_image_file(const std::vector<int>& layers_top_first,
                                                     const std::string& path);
  bool in_store(const std::string& hex) const;
  Result<void> commit();
  void rollback_commit();
  void report(std::string_view phase, size_t layer, size_t layers, uint64_t bytes, uint64_t total) const;

  // image_archive.cc
  Result<void> import_oci(int outer);
  Result<void> import_docker(int outer);
  Result<std::string> read_blob(int outer, const Descriptor& d, size_t limit, std::string_view what);
  Result<Manifest> resolve_manifest(int outer, Descriptor d);
  Result<void> import_layers(int outer, const std::vector<LayerBlob>& blobs, const ImageConfig& config);

  struct Pending {
    std::string work_name;
    size_t index = 0;  // in result_.layers
  };

  const ImportOptions& opts_;
  const ProgressFn& progress_;
  Budget budget_;
  Fd store_;
  Fd work_;
  ImportResult result_;
  std::vector<Pending> pending_;
  std::set<std::string> seen_;  // diff_ids of this import
  std::vector<std::string> committed_;
};

}  // namespace sbx::image
