#pragma once
// What sbxd keeps of an image, as pure functions: where its layers live, the snapshot a sandbox or an environment
// version pins (so that a later import under the same name changes neither), and the defaults its config gives a
// sandbox (entrypoint/cmd, env, working directory, user), resolved the way docker and podman resolve them.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "daemon/config.h"
#include "daemon/store.h"

namespace sbx::daemon {

using json = nlohmann::json;

// <state_dir>/layers: one directory per layer, named by the hex of its diff_id.
std::string layers_dir(const DaemonConfig& config);
// "sha256:<64 hex>" -> the hex; anything else is an error.
Result<std::string> digest_hex(std::string_view digest);
// The overlay lower dirs of a snapshot, top layer first (overlayfs order).
Result<std::vector<std::string>> image_lower_dirs(const DaemonConfig& config, const json& snapshot);

// A stored image from what `sbx-image import` reported on its last line.
Result<ImageRow> image_row_from_import(const std::string& name, const std::string& source, const json& done,
                                       int64_t now_ms);
// {name, id, layers: ["sha256:…" bottom first], config, user: {uid, gid}}: what a sandbox spec and an environment
// version keep of their image.
json image_snapshot(const ImageRow& row);
// The diff_ids a snapshot holds (the garbage collector keeps these).
void collect_layers(const json& snapshot, std::set<std::string>* out);

// The image an `image` param names: a name, a full id ("sha256:<hex>") or an id prefix of at least 12 hex digits.
// kNotFound when none matches; kInvalidParams when a prefix matches several.
Result<const ImageRow*> find_image(const std::vector<ImageRow>& images, std::string_view key);

// Who uses an image: sandbox ids and environment refs ("py@2").
struct ImageUsers {
  std::vector<std::string> sandboxes;
  std::vector<std::string> environments;
};
// The image object of the API.
json describe_image(const ImageRow& row, const ImageUsers& users);

// The main command docker would run: the request's entrypoint (or the image's) then the request's cmd (or, when
// neither the request's entrypoint nor its cmd is given, the image's cmd). Empty: the sandbox idles.
std::vector<std::string> image_command(const json& image_config, const json& params);

}  // namespace sbx::daemon
