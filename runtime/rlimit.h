#pragma once
// rlimits of sandboxed processes (nofile, nproc, core, fsize), set in the child before it drops privileges.
#include "runtime/plan.h"

namespace sbx::rt {

Result<void> validate_rlimits(const Rlimits& limits);

// Child side: returns 0 or an errno; *step names the failing limit. Allocates nothing.
int apply_rlimits(const Rlimits& limits, const char** step) noexcept;

}  // namespace sbx::rt
