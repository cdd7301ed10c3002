#pragma once
// Process creation for sandboxes: clone3 into namespaces, a sync channel between parent and child, and the child's
// last steps before execve.
//
// Protocol on the sync channel (a SOCK_SEQPACKET pair, close-on-exec on both ends):
//   parent -> child  "G"                    placement done (cgroup), go on
//   child  -> parent "E<errno> <message>"   a step failed; the child exits
//   child  -> parent "P<pid>"               (exec's middle process) the pid of the process it started
//   EOF                                      every child end is closed: the last one exec'd, so setup succeeded
#include <sys/types.h>

#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/caps.h"
#include "runtime/plan.h"
#include "runtime/seccomp.h"

namespace sbx::rt {

struct SyncPair {
  Fd parent;
  Fd child;
};
Result<SyncPair> make_sync_pair();

// clone3(2) with the given flags, returning like fork(): 0 in the child, the pid in the parent, -1 with errno.
// With CLONE_PIDFD the pidfd lands in *pidfd; with a cgroup_fd >= 0 the child starts in that cgroup.
pid_t clone3_process(unsigned long flags, int* pidfd, int cgroup_fd) noexcept;

// Parent side.
Result<void> send_go(int sync_fd);
Result<void> send_pid(int sync_fd, pid_t pid);
// Reads until EOF. A child's error becomes an Error with its errno; "P" messages fill *pid when given.
Result<void> read_child_reports(int sync_fd, pid_t* pid = nullptr);

// Child side.
bool wait_for_go(int sync_fd) noexcept;
[[noreturn]] void fail_child(int sync_fd, const Error& error) noexcept;
[[noreturn]] void fail_child_errno(int sync_fd, int err, const char* step) noexcept;

// What the child does last, after its namespaces and root are in place: stdio, rlimits, identity and capabilities,
// no_new_privs, cwd, close every other fd, seccomp, execve.
struct FinalExec {
  const ProcessSpec* proc = nullptr;   // stdio, identity, cwd, env
  std::vector<std::string> argv;       // what to exec; argv[0] is looked up in env's PATH unless exec_fd is set
  int exec_fd = -1;                    // execveat this fd (our init's memfd) instead of a path
  int status_fd = -1;                  // kept open as fd 3 (init's status channel)
  int null_fd = -1;                    // the runtime's /dev/null, for stdio the ProcessSpec leaves unset
  const Rlimits* rlimits = nullptr;
  const std::vector<int>* keep_caps = nullptr;
  const SeccompFilter* seccomp = nullptr;  // null: none
};
[[noreturn]] void finish_child(int sync_fd, const FinalExec& fx) noexcept;

}  // namespace sbx::rt
