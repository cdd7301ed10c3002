#pragma once
// One image import, as `sbx-image import` runs it: the source (an OCI archive, a docker-save archive, a rootfs
// tarball or a directory) is read once, every layer unpacked into the work directory with the safe unpacker and
// verified against its digests, and only then moved into the store (DIR/<diff_id hex>) with rename(2). On failure
// the store is as it was and the work directory is emptied.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "image/limits.h"
#include "image/passwd.h"
#include "image/unpack.h"

namespace sbx::image {

struct ImportOptions {
  std::string source;
  std::string store;
  std::string work;
  std::string ref;
  Limits limits;
};

// Where the import stands. `bytes` of the input being read so far and its `total` size (0 if unknown); layers count
// from 1, and are 0 while the outer archive is read (before it is known what it holds).
struct Progress {
  std::string_view phase;  // "read", "verify", "unpack", "commit"
  size_t layer = 0;
  size_t layers = 0;
  uint64_t bytes = 0;
  uint64_t total = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

struct LayerResult {
  std::string diff_id_hex;
  uint64_t size = 0;     // bytes of the uncompressed tar stream (0 for a layer reused without reading it)
  uint64_t entries = 0;  // archive entries (0 for a layer reused without reading it)
  bool reused = false;   // already in the store (or earlier in this image): not unpacked again
};

struct ImportResult {
  std::string format;  // "oci", "docker", "tarball", "directory"
  std::string config_digest_hex;
  nlohmann::json config = nlohmann::json::object();
  std::vector<LayerResult> layers;  // bottom first
  std::string ref;
  UserIds user;
  Dropped dropped;
};

Result<ImportResult> import_image(const ImportOptions& options, const ProgressFn& progress);

// The "done" line's object for a result.
nlohmann::json result_to_json(const ImportResult& result);

}  // namespace sbx::image
