#include "runtime/exec.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "runtime/namespaces.h"
#include "runtime/spawn.h"

namespace sbx::rt {

namespace {

[[noreturn]] void run_process(int sync_fd, const ExecContext& ctx, const ProcessSpec& proc) {
  // v1: before anything else, while it is the only process of the exec, into the exec's cgroup, where every
  // descendant will be born. (finish_child closes the fd.)
  if (ctx.exec_cgroup_entry >= 0 && ::write(ctx.exec_cgroup_entry, "0", 1) != 1) {
    fail_child_errno(sync_fd, errno, "enter the exec's cgroup");
  }
  FinalExec fx;
  fx.proc = &proc;
  fx.argv = {"sbx-init", "--exec", "--"};
  fx.argv.insert(fx.argv.end(), proc.argv.begin(), proc.argv.end());
  fx.exec_fd = ctx.init_memfd;
  fx.status_fd = sync_fd;  // sbx-init --exec reports a failed exec on fd 3
  fx.null_fd = ctx.null_fd;
  fx.rlimits = ctx.rlimits;
  fx.keep_caps = ctx.keep_caps;
  fx.seccomp = ctx.seccomp;
  finish_child(sync_fd, fx);
}

unsigned long long micros(const struct timeval& tv) {
  return static_cast<unsigned long long>(tv.tv_sec) * 1000000ull + static_cast<unsigned long long>(tv.tv_usec);
}

// Waits for the exec'd process and writes how it ended, and what it used, on the status pipe:
// "exited N USER_US SYSTEM_US MAXRSS_KIB" or "signaled N ...".
[[noreturn]] void supervise(pid_t pid, int status_fd) {
  int st = 0;
  struct rusage ru {};
  while (::wait4(pid, &st, 0, &ru) < 0) {
    if (errno != EINTR) {
      ::_exit(1);
    }
  }
  char line[128];
  bool signaled = WIFSIGNALED(st);
  int n = std::snprintf(line, sizeof line, "%s %d %llu %llu %llu\n", signaled ? "signaled" : "exited",
                        signaled ? WTERMSIG(st) : WEXITSTATUS(st), micros(ru.ru_utime), micros(ru.ru_stime),
                        static_cast<unsigned long long>(ru.ru_maxrss));
  ssize_t ignored = ::write(status_fd, line, static_cast<size_t>(n));
  (void)ignored;
  ::_exit(0);
}

// The middle process: joins the sandbox, starts the real process, hands its pidfd to the runtime, supervises it.
[[noreturn]] void run_middle(int sync_fd, int status_fd, const ExecContext& ctx, const ProcessSpec& proc) {
  if (!wait_for_go(sync_fd)) {
    ::_exit(1);
  }
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (int err = reset_signals()) {
    fail_child_errno(sync_fd, err, "reset signals");
  }
  // Only what the exec needs may enter the sandbox's namespaces.
  if (int err = close_fds_except({sync_fd, status_fd, ctx.init_pidfd, ctx.null_fd, ctx.init_memfd,
                                  ctx.exec_cgroup_dir, ctx.exec_cgroup_entry, proc.stdin_fd, proc.stdout_fd,
                                  proc.stderr_fd})) {
    fail_child_errno(sync_fd, err, "close the runtime's fds");
  }
  if (int err = join_namespaces(ctx.init_pidfd, ctx.userns)) {
    fail_child_errno(sync_fd, err, "join the sandbox's namespaces");
  }
  int pidfd = -1;
  pid_t pid = clone3_process(CLONE_PIDFD, &pidfd, ctx.exec_cgroup_dir);
  if (pid < 0) {
    fail_child_errno(sync_fd, errno, "start the process in the sandbox's pid namespace");
  }
  if (pid == 0) {
    ::close(status_fd);
    run_process(sync_fd, ctx, proc);
  }
  auto sent = send_pidfd(sync_fd, pid, pidfd);
  ::close(pidfd);
  ::close(sync_fd);
  if (!sent.ok()) {
    ::kill(pid, SIGKILL);
  }
  supervise(pid, status_fd);
}

}  // namespace

Result<Process> exec_process(const ExecContext& ctx, const ProcessSpec& proc) {
  SBX_ASSIGN(SyncPair sync, make_sync_pair());
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) < 0) {
    return sys_error("create the exec's status pipe");
  }
  Fd status_read(status_pipe[0]);
  Fd status_write(status_pipe[1]);
  int middle_pidfd = -1;
  pid_t middle = clone3_process(CLONE_PIDFD, &middle_pidfd, ctx.cgroup->clone_into_fd());
  if (middle < 0) {
    return sys_error("start the exec's supervisor process");
  }
  if (middle == 0) {
    sync.parent.reset();
    status_read.reset();
    run_middle(sync.child.get(), status_write.get(), ctx, proc);
  }
  sync.child.reset();
  status_write.reset();
  // Owns the middle from here: every early return kills and reaps it.
  Process supervisor(middle, Fd(middle_pidfd));
  if (ctx.cgroup->clone_into_fd() < 0) {
    SBX_TRY_CTX(ctx.cgroup->add_process(middle), "place the exec in the sandbox's cgroup");
  }
  SBX_TRY(send_go(sync.parent.get()));
  ChildReports reports;
  auto report = read_child_reports(sync.parent.get(), &reports, ctx.timeout_ms);
  if (!report.ok()) {
    if (reports.pidfd.valid()) {
      // Killed, it is reaped by the middle, which then reports and exits: nothing is left behind.
      ::syscall(SYS_pidfd_send_signal, reports.pidfd.get(), SIGKILL, nullptr, 0);
      supervisor.set_channels(std::move(status_read), Fd());
      (void)supervisor.wait();
    }
    return std::move(report).error();
  }
  if (!reports.pidfd.valid()) {
    return make_error("the exec's supervisor exited without starting the process");
  }
  supervisor.set_channels(std::move(status_read), std::move(reports.pidfd), reports.pid);
  return supervisor;
}

}  // namespace sbx::rt
