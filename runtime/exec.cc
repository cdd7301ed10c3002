#include "runtime/exec.h"

#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/namespaces.h"
#include "runtime/spawn.h"

namespace sbx::rt {

namespace {

// The middle process: joins the sandbox, starts the real process as the runtime's child, reports its pid, exits.
[[noreturn]] void run_middle(int sync_fd, const ExecContext& ctx, const ProcessSpec& proc) {
  if (!wait_for_go(sync_fd)) {
    ::_exit(1);
  }
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (int err = join_namespaces(ctx.init_pidfd)) {
    fail_child_errno(sync_fd, err, "join the sandbox's namespaces");
  }
  pid_t pid = clone3_process(CLONE_PARENT, nullptr, -1);
  if (pid < 0) {
    fail_child_errno(sync_fd, errno, "start the process in the sandbox's pid namespace");
  }
  if (pid == 0) {
    FinalExec fx;
    fx.proc = &proc;
    fx.argv = proc.argv;
    fx.rlimits = ctx.rlimits;
    fx.keep_caps = ctx.keep_caps;
    fx.seccomp = ctx.seccomp;
    fx.null_fd = ctx.null_fd;
    finish_child(sync_fd, fx);
  }
  auto sent = send_pid(sync_fd, pid);
  ::_exit(sent.ok() ? 0 : 1);
}

void reap(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<Process> exec_process(const ExecContext& ctx, const ProcessSpec& proc) {
  SBX_ASSIGN(SyncPair sync, make_sync_pair());
  pid_t middle = clone3_process(0, nullptr, ctx.cgroup->clone_into_fd());
  if (middle < 0) {
    return sys_error("start the exec helper process");
  }
  if (middle == 0) {
    sync.parent.reset();
    run_middle(sync.child.get(), ctx, proc);
  }
  sync.child.reset();
  Result<void> placed = ctx.cgroup->clone_into_fd() >= 0 ? ok() : ctx.cgroup->add_process(middle);
  if (!placed.ok()) {
    ::kill(middle, SIGKILL);
    reap(middle);
    return std::move(placed).error().context("place the exec in the sandbox's cgroup");
  }
  pid_t pid = -1;
  Result<void> report = send_go(sync.parent.get());
  if (report.ok()) {
    report = read_child_reports(sync.parent.get(), &pid);
  }
  reap(middle);
  if (!report.ok()) {
    if (pid > 0) {
      reap(pid);
    }
    return std::move(report).error();
  }
  if (pid <= 0) {
    return make_error("the exec helper exited without starting the process");
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    Error e = sys_error("open a pidfd for process {}", pid);
    ::kill(pid, SIGKILL);
    reap(pid);
    return e;
  }
  return Process(pid, Fd(pidfd));
}

}  // namespace sbx::rt
