#pragma once
// Environments as pure functions: parsing "NAME@VERSION", checking a template's fields, making the next version
// from the last one, and laying a template under a sandbox.create request (explicit params win).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "daemon/store.h"

namespace sbx::daemon {

using json = nlohmann::json;

struct EnvironmentRef {
  std::string name;
  std::optional<int> version;  // none: the latest
};
// "py" or "py@3"; errors are kInvalidParams naming `field`.
Result<EnvironmentRef> parse_environment_ref(std::string_view text, std::string_view field);

// The template fields environment.create and .update take, besides name and image.
inline constexpr const char* kEnvironmentFields[] = {"limits",    "env",      "seccomp", "network", "ttl",
                                                     "read_only", "cap_drop", "devices", "userns",  "description"};
// What a sandbox takes from its environment when its own request leaves it out (limits and env are merged).
inline constexpr const char* kEnvironmentDefaults[] = {"seccomp", "network",  "ttl",     "read_only",
                                                       "cap_drop", "devices", "userns"};

// A version's spec: `base` (the previous version's spec; an empty object for the first) with the request's
// fields over it, and `image` (the snapshot the request's image resolved to, or null to keep base's).
Result<json> next_environment_spec(const json& params, const json& base, const json& image);

// sandbox.create params with the environment's defaults under the request's own: limits key by key, env by
// variable name, seccomp, network and ttl when the request leaves them out. The image is the caller's business
// (the environment's snapshot unless the request names an image or a rootfs).
json apply_environment(const json& params, const json& spec);

// The environment object of the API; `versions` lists every version of that name.
json describe_environment(const EnvironmentRow& row, const std::vector<int>& versions);

}  // namespace sbx::daemon
