#include "runtime/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "runtime/rlimit.h"

namespace sbx::rt {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kMaxReport = 4096;

std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

std::string env_path(const std::vector<std::string>& env) {
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) {
      return e.substr(5);
    }
  }
  return kDefaultPath;
}

// execve with a PATH search in the sandbox's environment (not the runtime's). Returns the most telling errno.
int exec_searching_path(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::vector<char*> cargv = c_strings(argv);
  std::vector<char*> cenv = c_strings(env);
  if (argv[0].find('/') != std::string::npos) {
    ::execve(argv[0].c_str(), cargv.data(), cenv.data());
    return errno;
  }
  std::string path = env_path(env);
  int best = ENOENT;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find(':', pos);
    std::string dir = path.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + argv[0];
    ::execve(candidate.c_str(), cargv.data(), cenv.data());
    if (errno != ENOENT && errno != ENOTDIR) {
      best = errno;
      if (errno != EACCES) {
        break;
      }
    }
    if (end == std::string::npos) {
      break;
    }
    pos = end + 1;
  }
  return best;
}

// Moves the caller's stdio fds into 0, 1, 2 (-1: the runtime's /dev/null), and the status fd to 3. Nothing is opened
// by path inside the sandbox: its root may have replaced /dev/null with a FIFO that would block the open forever.
int place_fds(const FinalExec& fx) noexcept {
  int wanted[4] = {fx.proc->stdin_fd, fx.proc->stdout_fd, fx.proc->stderr_fd, fx.status_fd};
  int high[4] = {-1, -1, -1, -1};
  for (int i = 0; i < 4; ++i) {
    if (wanted[i] >= 0) {
      high[i] = ::fcntl(wanted[i], F_DUPFD_CLOEXEC, 10);
    } else if (i < 3) {
      high[i] = ::fcntl(fx.null_fd, F_DUPFD_CLOEXEC, 10);
    } else {
      continue;
    }
    if (high[i] < 0) {
      return errno;
    }
  }
  for (int i = 0; i < 4; ++i) {
    if (high[i] >= 0 && ::dup2(high[i], i) < 0) {
      return errno;
    }
  }
  return 0;
}

// execve keeps the signal mask and ignored signals: a sandboxed program must not inherit the runtime's (a daemon
// blocks signals for signalfd and ignores SIGPIPE).
int reset_signals() noexcept {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::signal(sig, SIG_DFL);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  return ::sigprocmask(SIG_SETMASK, &none, nullptr) < 0 ? errno : 0;
}

Identity identity_of(const ProcessSpec& proc) {
  Identity id;
  id.uid = proc.uid;
  id.gid = proc.gid;
  id.groups.assign(proc.groups.begin(), proc.groups.end());
  return id;
}

}  // namespace

Result<SyncPair> make_sync_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0) {
    return sys_error("create sync socket pair");
  }
  return SyncPair{Fd(fds[0]), Fd(fds[1])};
}

pid_t clone3_process(unsigned long flags, int* pidfd, int cgroup_fd) noexcept {
  struct clone_args args {};
  args.flags = flags;
  args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
  if (flags & CLONE_PIDFD) {
    args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  }
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

Result<void> send_go(int sync_fd) {
  if (::send(sync_fd, "G", 1, MSG_NOSIGNAL) != 1) {
    return sys_error("signal the child to go on");
  }
  return ok();
}

Result<void> send_pid(int sync_fd, pid_t pid) {
  std::string msg = fmt::format("P{}", pid);
  if (::send(sync_fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
    return sys_error("report the exec'd pid");
  }
  return ok();
}

Result<void> read_child_reports(int sync_fd, pid_t* pid) {
  char buf[kMaxReport];
  for (;;) {
    ssize_t n = ::recv(sync_fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("read the child's report");
    }
    if (n == 0) {
      return ok();
    }
    std::string msg(buf, static_cast<size_t>(n));
    if (msg[0] == 'P' && pid != nullptr) {
      *pid = static_cast<pid_t>(std::atoi(msg.c_str() + 1));
      continue;
    }
    if (msg[0] == 'E') {
      int err = std::atoi(msg.c_str() + 1);
      size_t space = msg.find(' ');
      return Error(space == std::string::npos ? msg.substr(1) : msg.substr(space + 1), err);
    }
    return make_error("unexpected message from the child: '{}'", msg);
  }
}

bool wait_for_go(int sync_fd) noexcept {
  char c = 0;
  for (;;) {
    ssize_t n = ::recv(sync_fd, &c, 1, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return n == 1 && c == 'G';
  }
}

void fail_child(int sync_fd, const Error& error) noexcept {
  char buf[kMaxReport];
  int n = std::snprintf(buf, sizeof buf, "E%d %s", error.sys_errno(), error.message().c_str());
  if (n > 0) {
    ::send(sync_fd, buf, std::min(static_cast<size_t>(n), sizeof buf - 1), MSG_NOSIGNAL);
  }
  ::_exit(1);
}

void fail_child_errno(int sync_fd, int err, const char* step) noexcept {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, "E%d %s: %s (%s)", err, step, std::strerror(err), errno_name(err).c_str());
  if (n > 0) {
    ::send(sync_fd, buf, std::min(static_cast<size_t>(n), sizeof buf - 1), MSG_NOSIGNAL);
  }
  ::_exit(1);
}

void finish_child(int sync_fd, const FinalExec& fx) noexcept {
  // A session of its own: no signal sent to the runtime's process group or session may reach it, nor one of its
  // signals leave the sandbox that way.
  if (::setsid() < 0) {
    fail_child_errno(sync_fd, errno, "start a new session");
  }
  // The fd to exec may sit where stdio or the status fd go (0..3): move it out of the way first.
  int exec_fd = fx.exec_fd >= 0 ? ::fcntl(fx.exec_fd, F_DUPFD_CLOEXEC, 10) : -1;
  if (fx.exec_fd >= 0 && exec_fd < 0) {
    fail_child_errno(sync_fd, errno, "duplicate the init fd");
  }
  if (int err = reset_signals()) {
    fail_child_errno(sync_fd, err, "reset the signal mask");
  }
  const char* step = "set up stdio";
  if (int err = place_fds(fx)) {
    fail_child_errno(sync_fd, err, step);
  }
  ::umask(022);
  if (int err = apply_rlimits(*fx.rlimits, &step)) {
    fail_child_errno(sync_fd, err, step);
  }
  if (int err = drop_privileges(identity_of(*fx.proc), *fx.keep_caps, &step)) {
    fail_child_errno(sync_fd, err, step);
  }
  if (::chdir(fx.proc->cwd.c_str()) < 0) {
    fail_child(sync_fd, sys_error("chdir to '{}' in the sandbox", fx.proc->cwd));
  }
  // Nothing of the runtime's may reach the sandbox: every fd above the ones placed is closed on exec.
  unsigned first_free = fx.status_fd >= 0 ? 4 : 3;
  if (::syscall(SYS_close_range, first_free, UINT_MAX, CLOSE_RANGE_CLOEXEC) < 0) {
    fail_child_errno(sync_fd, errno, "mark fds close-on-exec");
  }
  if (fx.seccomp != nullptr) {
    if (int err = apply_seccomp_filter(*fx.seccomp)) {
      fail_child_errno(sync_fd, err, "install the seccomp filter");
    }
  }
  int err = 0;
  if (exec_fd >= 0) {
    std::vector<char*> cargv = c_strings(fx.argv);
    std::vector<char*> cenv = c_strings(fx.proc->env);
    ::syscall(SYS_execveat, exec_fd, "", cargv.data(), cenv.data(), AT_EMPTY_PATH);
    err = errno;
  } else {
    err = exec_searching_path(fx.argv, fx.proc->env);
  }
  fail_child(sync_fd, Error::from_errno(fmt::format("exec '{}' in the sandbox", fx.argv[0]), err));
}

}  // namespace sbx::rt
