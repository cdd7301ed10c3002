#pragma once
// Process creation for sandboxes: clone3 into namespaces, a sync channel between parent and child, and the child's
// last steps before execve.
//
// Protocol on the sync channel (a SOCK_SEQPACKET pair, close-on-exec on both ends):
//   parent -> child  "G"                    placement done (cgroup), go on
//   parent -> child  "N"                    (bridge networking) eth0 is in the child's namespace: configure it
//   child  -> parent "E<errno> <message>"   a step failed; the child exits
//   child  -> parent "P<pid>" + SCM_RIGHTS   (exec's middle process) the pid and a pidfd of the process it started
//   EOF                                      every child end is closed: the last one exec'd, so setup succeeded
#include <sys/types.h>

#include <optional>
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

// What the children reported: the first error, and the process an exec's middle started.
struct ChildReports {
  pid_t pid = -1;
  Fd pidfd;
};

// Parent side.
Result<void> send_go(int sync_fd);
Result<void> send_network_ready(int sync_fd);
// The error a child has reported and not yet been read, without waiting: for a parent whose own step failed, to tell
// whether the child had failed first (and what broke the parent's step was the child being gone).
std::optional<Error> queued_child_error(int sync_fd);
// Reads until EOF (every child end closed: the last child exec'd or died) or until `timeout_ms` passes (ETIMEDOUT:
// a child that never finishes, e.g. one a sandboxed process stopped with SIGSTOP). A child's error becomes an Error
// with its errno; it is returned only after EOF, so that every report, and the pidfd to reap with, is read.
Result<void> read_child_reports(int sync_fd, ChildReports* reports, int timeout_ms);

// Child side.
Result<void> send_pidfd(int sync_fd, pid_t pid, int pidfd);
// Wait for "G" / "N"; false when anything else comes (the parent gone: EOF).
bool wait_for_go(int sync_fd) noexcept;
bool wait_for_network(int sync_fd) noexcept;
// Really closes every fd but those in `keep` (negative entries are ignored): what a child must do before it resolves
// any path inside a sandbox, where /proc/self/fd/N would lead back to whatever N is.
int close_fds_except(std::vector<int> keep) noexcept;
// Default dispositions and an empty mask: neither survives execve otherwise.
int reset_signals() noexcept;
[[noreturn]] void fail_child(int sync_fd, const Error& error) noexcept;
[[noreturn]] void fail_child_errno(int sync_fd, int err, const char* step) noexcept;

// What the child does last, after its namespaces and root are in place: stdio, close every other fd, rlimits,
// identity and capabilities, no_new_privs, cwd (resolved inside the root, magic links refused), seccomp, and
// execveat of sbx-init's sealed memfd: nothing inside a sandbox is ever exec'd from a host binary's process image.
struct FinalExec {
  const ProcessSpec* proc = nullptr;   // stdio, identity, cwd, env
  std::vector<std::string> argv;       // sbx-init's argv
  int exec_fd = -1;                    // sbx-init's memfd
  int status_fd = -1;                  // kept open as fd 3 (init's status channel, or exec's sync channel)
  int null_fd = -1;                    // the runtime's /dev/null, for stdio the ProcessSpec leaves unset
  const Rlimits* rlimits = nullptr;
  const std::vector<int>* keep_caps = nullptr;
  const SeccompFilter* seccomp = nullptr;  // null: none
};
[[noreturn]] void finish_child(int sync_fd, const FinalExec& fx) noexcept;

}  // namespace sbx::rt
