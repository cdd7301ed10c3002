#pragma once
// exec: a new process inside a running sandbox. The runtime forks a middle process, placed in the sandbox's cgroup;
// it joins all the sandbox's namespaces through init's pidfd and clones the real process with CLONE_PARENT, so that
// the new process is in the sandbox's pid namespace yet a child of the runtime (which reaps it and gets its exit
// status). The new process then takes the sandbox's rlimits, identity, capabilities, no_new_privs and seccomp filter,
// and execs. Its root and cwd are the sandbox's: setns into the mount namespace sets both.
#include "runtime/cgroup.h"
#include "runtime/runtime.h"

namespace sbx::rt {

struct ExecContext {
  int init_pidfd = -1;
  Cgroup* cgroup = nullptr;
  const SeccompFilter* seccomp = nullptr;
  const std::vector<int>* keep_caps = nullptr;
  const Rlimits* rlimits = nullptr;
  int null_fd = -1;  // the runtime's /dev/null
};

Result<Process> exec_process(const ExecContext& ctx, const ProcessSpec& proc);

}  // namespace sbx::rt
