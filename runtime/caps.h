#pragma once
// Capabilities: parse names in the parent; in the child, drop everything but the kept set from the bounding set, and
// across the switch to the target uid/gid give root exactly the kept set (permitted, effective) and any other uid
// none at all (as under Docker). Inheritable and ambient are always empty.
#include <sys/types.h>

#include <string>
#include <vector>

#include "base/error.h"

namespace sbx::rt {

// "CAP_NET_BIND_SERVICE" (or "net_bind_service") -> its number. Errors name the field.
Result<std::vector<int>> parse_capabilities(const std::vector<std::string>& names, std::string_view field);

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// Child side, runs as root with full capabilities: switches to `id` and keeps only `keep`. Returns 0 or an errno, and
// sets *step to the name of the failing step. Allocates nothing.
int drop_privileges(const Identity& id, const std::vector<int>& keep, const char** step) noexcept;

}  // namespace sbx::rt
