#pragma once
// The user-namespace ranges sbxd hands out. [userns] in sbxd.toml makes `count` slots of `size` host ids each: slot N
// is host ids first + N * size onwards, mapped to ids 0..size-1 inside the sandbox, for uids and gids alike. A
// sandbox with a user namespace holds its slot from create to remove, recorded in the store, so that a re-adopted
// sandbox (and every later run of a stopped one) keeps it, and no slot is ever held by two sandboxes.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "daemon/config.h"
#include "daemon/store.h"
#include "runtime/plan.h"

namespace sbx::daemon {

// A range of host ids: [first, first + count).
struct IdRange {
  uint64_t first = 0;
  uint64_t count = 0;
};

// The numeric ids of an /etc/passwd or /etc/group text (the third field, and the fourth where there is one: passwd's
// gid; group's member list is not a number and is skipped). Malformed lines are skipped.
std::vector<uint32_t> parse_account_ids(std::string_view text);
// The ranges of an /etc/subuid or /etc/subgid text ("name:first:count" lines; malformed lines are skipped, as
// shadow-utils does).
std::vector<IdRange> parse_subid_ranges(std::string_view text);
// The pool against what the host already uses: subordinate id ranges, and the uids and gids of its users and
// groups. Pure; errors name the collision.
Result<void> check_userns_pool(const DaemonConfig& config, const std::vector<IdRange>& subuids,
                               const std::vector<IdRange>& subgids, const std::vector<uint32_t>& host_ids);
// check_userns_pool with this host's /etc/subuid, /etc/subgid, /etc/passwd and /etc/group (files only: users that
// exist only in another NSS source, LDAP say, are not seen; keep the pool away from their ranges).
Result<void> check_userns_pool_on_host(const DaemonConfig& config);

class UsernsPool {
 public:
  UsernsPool(const DaemonConfig& config, Store& store) : config_(config), store_(store) {}

  // Loads the slots from the store and frees those of sandboxes that are gone or have no user namespace.
  Result<void> start(const std::vector<const SandboxRow*>& sandboxes);
  // A new sandbox whose spec asks for a user namespace takes the lowest free slot (kLimitExceeded when none is).
  Result<void> attach(const SandboxRow& row);
  // Its slot goes; a sandbox without one is not an error.
  Result<void> detach(const SandboxRow& row);
  // The user namespace of a run's plan; nullopt for a sandbox without one.
  Result<std::optional<rt::UserNamespacePlan>> plan(const SandboxRow& row) const;
  // {uid, gid, size} of the host ids inside maps to, for inspect; null without a user namespace.
  nlohmann::json describe(const SandboxRow& row) const;
  size_t in_use() const { return slots_.size(); }

 private:
  uint32_t host_first(uint32_t slot) const { return config_.userns_first + slot * config_.userns_size; }

  const DaemonConfig& config_;
  Store& store_;
  std::map<std::string, uint32_t> slots_;  // sandbox id -> slot
};

// Whether a stored spec asks for a user namespace (specs from before user namespaces have no "userns": they ran
// without one and keep doing so).
bool spec_wants_userns(const nlohmann::json& spec);

}  // namespace sbx::daemon
