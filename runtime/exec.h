#pragma once
// exec: a new process inside a running sandbox.
//
// The runtime clones a supervisor ("middle") into the sandbox's cgroup. The middle closes every fd it does not need,
// joins all the sandbox's namespaces through init's pidfd and clones the real process, which lands in the sandbox's
// pid namespace. The middle hands the runtime a pidfd of it (SCM_RIGHTS: no pid can be reused in between), reaps it
// when it ends and reports how on a status pipe: the middle lives outside the sandbox's pid namespace, so no zombie
// of the runtime's ever holds up that namespace's teardown. The middle is in the sandbox's cgroup: destroy kills it,
// and it counts against the pids limit. The real process starts in the exec's child cgroup (cloned into it on v2;
// on v1 it moves itself there first thing), so it and every descendant, daemonized or not, can be killed as one tree
// while the middle lives on to reap it and report. It takes the sandbox's rlimits, identity, capabilities, no_new_privs and seccomp filter, chdirs inside the root
// and execs sbx-init's sealed memfd in its --exec mode, which execs the program: no process inside the sandbox ever
// has a host binary as its exe.
#include "runtime/cgroup.h"
#include "runtime/runtime.h"

namespace sbx::rt {

struct ExecContext {
  int init_pidfd = -1;
  Cgroup* cgroup = nullptr;  // the sandbox's: where the middle goes
  // The exec's child cgroup, where the process goes: v2, cloned into it (the child cgroup's clone_into_fd); v1, the
  // process enters it first thing by writing "0" to its cgroup.procs (Cgroup::open_entry).
  int exec_cgroup_dir = -1;
  int exec_cgroup_entry = -1;
  const SeccompFilter* seccomp = nullptr;
  const std::vector<int>* keep_caps = nullptr;
  const Rlimits* rlimits = nullptr;
  int null_fd = -1;     // the runtime's /dev/null
  int init_memfd = -1;  // sbx-init
  int timeout_ms = 30000;
  bool userns = false;  // the sandbox has a user namespace of its own: join it too
};

Result<Process> exec_process(const ExecContext& ctx, const ProcessSpec& proc);

}  // namespace sbx::rt
