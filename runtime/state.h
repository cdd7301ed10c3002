#pragma once
// A sandbox's state file (<run_dir>/state.json): what exec() and a later process (a restarted daemon) need to find
// and enter a running sandbox: its init's pid and start time (so a recycled pid is never mistaken for it) and the
// security settings every process in it gets.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/plan.h"

namespace sbx::rt {

struct SandboxState {
  std::string id;
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;  // /proc/<pid>/stat field 22, clock ticks since boot
  SecurityPlan security;
  // The sandbox's own user namespace, if it has one: execs join it, and file access translates ids through it.
  std::optional<UserNamespacePlan> userns;
};

Result<void> write_state(const std::string& path, const SandboxState& state);
Result<SandboxState> read_state(const std::string& path);

// Field 22 of /proc/<pid>/stat.
Result<uint64_t> process_start_time(pid_t pid);

// A pidfd for the sandbox's init, verified to be the same process the state describes.
Result<Fd> open_init_pidfd(const SandboxState& state);

}  // namespace sbx::rt
