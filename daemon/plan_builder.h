#pragma once
// From a sandbox.create request to what the runtime is given. Pure functions (no kernel calls beyond looking at
// paths), unit-tested without root.
//   request params --normalize_create--> spec (stored; what inspect shows) --build_plan--> rt::Plan
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "daemon/config.h"
#include "runtime/plan.h"

namespace sbx::daemon {

using json = nlohmann::json;

struct UserIds {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// What the caller is allowed beyond its own sandboxes: host paths (rootfs anywhere, bind mounts, unconfined
// seccomp) are for root only.
struct CreatePolicy {
  bool host_paths = false;
};

// Checks and completes a create request with the daemon's defaults. Errors are kInvalidParams (naming the field)
// or kPermissionDenied. `image` is what the request's image (or its environment's) resolved to in the store, as
// image_snapshot() makes it: its layers become the root, its config the defaults of cmd, env, cwd and user.
Result<json> normalize_create(const json& params, const DaemonConfig& config, const CreatePolicy& policy,
                              const json& image = json());

// The runtime plan for one run of a sandbox. `main_stdout` is the fd the main command writes to (the monitor's
// log pipe is set by the monitor itself: here it is left -1).
Result<rt::Plan> build_plan(const std::string& id, const json& spec, const DaemonConfig& config);

// A limits object ({vcpus, memory, pids, disk}) checked, sizes in bytes; no defaults added.
Result<json> check_limits(const json& limits);
// Each entry NAME=value; errors name `field`[i].
Result<void> check_env(const json& env, std::string_view field);
// "1000", "1000:1000", 1000.
Result<UserIds> parse_user(const json& value, std::string_view field);
// "TERM", "SIGTERM", "15", 15.
Result<int> parse_signal(const json& value, std::string_view field);
// Names: [a-z0-9][a-z0-9_.-]{0,63} (also the rule for ids).
Result<void> check_name(std::string_view name, std::string_view field);
// The environment a process gets: the base (PATH, HOME) under the sandbox's env under the exec's.
std::vector<std::string> merge_env(const std::vector<std::string>& base, const std::vector<std::string>& over);
std::vector<std::string> default_env(uint32_t uid);

}  // namespace sbx::daemon
