#include "runtime/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <poll.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <optional>
#include <cstring>

#include "runtime/rlimit.h"

namespace sbx::rt {

namespace {

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

// chdir to `cwd` resolved inside the sandbox's root, refusing magic links (/proc/self/fd/N could lead back to an fd
// of the runtime), and checking the result is inside the root.
Result<void> chdir_in_root(const std::string& cwd) {
  int root = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    return sys_error("open the sandbox's root");
  }
  Fd root_fd(root);
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int dir = static_cast<int>(::syscall(SYS_openat2, root, cwd.c_str(), &how, sizeof how));
  if (dir < 0) {
    return sys_error("chdir to '{}' in the sandbox", cwd);
  }
  Fd dir_fd(dir);
  if (::fchdir(dir) < 0) {
    return sys_error("chdir to '{}' in the sandbox", cwd);
  }
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof buf) == nullptr || buf[0] != '/') {
    return Error(fmt::format("chdir to '{}' in the sandbox: the directory is outside its root", cwd), EPERM);
  }
  return ok();
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

namespace {

Result<void> send_signal(int sync_fd, char c, const char* what) {
  if (::send(sync_fd, &c, 1, MSG_NOSIGNAL) != 1) {
    return sys_error("{}", what);
  }
  return ok();
}

bool wait_for_signal(int sync_fd, char expected) noexcept {
  char c = 0;
  for (;;) {
    ssize_t n = ::recv(sync_fd, &c, 1, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return n == 1 && c == expected;
  }
}

}  // namespace

Result<void> send_go(int sync_fd) { return send_signal(sync_fd, 'G', "signal the child to go on"); }

Result<void> send_network_ready(int sync_fd) {
  return send_signal(sync_fd, 'N', "signal the child that eth0 is there");
}

namespace {

// A message of one buffer with room for one fd (SCM_RIGHTS) beside it.
struct FdMessage {
  struct iovec iov {};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr mh {};

  FdMessage(void* data, size_t size) {
    iov = {data, size};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;  // mh points into this object
  FdMessage& operator=(const FdMessage&) = delete;
};

}  // namespace

Result<void> send_pidfd(int sync_fd, pid_t pid, int pidfd) {
  std::string msg = fmt::format("P{}", pid);
  FdMessage m(msg.data(), msg.size());
  struct cmsghdr* cm = CMSG_FIRSTHDR(&m.mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &pidfd, sizeof(int));
  if (::sendmsg(sync_fd, &m.mh, MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
    return sys_error("report the exec'd process");
  }
  return ok();
}

namespace {

// One message from the sync channel, with the fd it carries if any. 0 bytes: EOF.
ssize_t receive_report(int sync_fd, char* buf, size_t size, Fd* fd) {
  FdMessage m(buf, size);
  ssize_t n = ::recvmsg(sync_fd, &m.mh, MSG_CMSG_CLOEXEC);
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&m.mh); n >= 0 && cm != nullptr; cm = CMSG_NXTHDR(&m.mh, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      int received = -1;
      std::memcpy(&received, CMSG_DATA(cm), sizeof(int));
      fd->reset(received);
    }
  }
  return n;
}

// "E<errno> <message>" as an Error.
Error reported_error(const std::string& msg) {
  size_t space = msg.find(' ');
  std::string text = space == std::string::npos ? msg.substr(1) : msg.substr(space + 1);
  return Error(std::move(text), std::atoi(msg.c_str() + 1));
}

}  // namespace

std::optional<Error> queued_child_error(int sync_fd) {
  char buf[kMaxReport];
  for (;;) {
    ssize_t n = ::recv(sync_fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return std::nullopt;  // nothing queued (EAGAIN), or EOF
    }
    std::string msg(buf, static_cast<size_t>(n));
    if (msg[0] == 'E') {
      return reported_error(msg);
    }
  }
}

Result<void> read_child_reports(int sync_fd, ChildReports* reports, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::optional<Error> first_error;
  char buf[kMaxReport];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    struct pollfd pfd {sync_fd, POLLIN, 0};
    int ready = left.count() > 0 ? ::poll(&pfd, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready < 0) {
      return sys_error("wait for the child's report");
    }
    if (ready == 0) {
      return Error(fmt::format("the child did not finish setting up within {} ms", timeout_ms), ETIMEDOUT);
    }
    Fd fd;
    ssize_t n = receive_report(sync_fd, buf, sizeof buf, &fd);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("read the child's report");
    }
    if (n == 0) {
      break;
    }
    std::string msg(buf, static_cast<size_t>(n));
    if (msg[0] == 'P' && reports != nullptr) {
      reports->pid = static_cast<pid_t>(std::atoi(msg.c_str() + 1));
      reports->pidfd = std::move(fd);
    } else if (msg[0] == 'E' && !first_error) {
      first_error = reported_error(msg);
    } else if (msg[0] != 'E' && !first_error) {
      first_error = make_error("unexpected message from the child: '{}'", msg);
    }
  }
  if (first_error) {
    return std::move(*first_error);
  }
  return ok();
}

int close_fds_except(std::vector<int> keep) noexcept {
  std::sort(keep.begin(), keep.end());
  unsigned next = 0;
  for (int fd : keep) {
    if (fd < 0 || static_cast<unsigned>(fd) < next) {
      continue;
    }
    if (static_cast<unsigned>(fd) > next && ::syscall(SYS_close_range, next, fd - 1, 0) < 0) {
      return errno;
    }
    next = static_cast<unsigned>(fd) + 1;
  }
  return ::syscall(SYS_close_range, next, UINT_MAX, 0) < 0 ? errno : 0;
}

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

bool wait_for_go(int sync_fd) noexcept { return wait_for_signal(sync_fd, 'G'); }

bool wait_for_network(int sync_fd) noexcept { return wait_for_signal(sync_fd, 'N'); }

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
  if (int err = reset_signals()) {
    fail_child_errno(sync_fd, err, "reset the signal mask");
  }
  // The memfd may sit where stdio or the status fd go (0..3): move it out of the way first.
  int exec_fd = ::fcntl(fx.exec_fd, F_DUPFD_CLOEXEC, 10);
  if (exec_fd < 0) {
    fail_child_errno(sync_fd, errno, "duplicate the sbx-init fd");
  }
  const char* step = "set up stdio";
  if (int err = place_fds(fx)) {
    fail_child_errno(sync_fd, err, step);
  }
  // Nothing of the runtime's may reach the sandbox, not even until execve: close it all before any path inside the
  // sandbox is resolved (CVE-2024-21626). The sync channel and the memfd close on exec.
  if (int err = close_fds_except({0, 1, 2, fx.status_fd >= 0 ? 3 : -1, exec_fd, sync_fd})) {
    fail_child_errno(sync_fd, err, "close the runtime's fds");
  }
  ::umask(022);
  if (int err = apply_rlimits(*fx.rlimits, &step)) {
    fail_child_errno(sync_fd, err, step);
  }
  if (int err = drop_privileges(identity_of(*fx.proc), *fx.keep_caps, &step)) {
    fail_child_errno(sync_fd, err, step);
  }
  if (auto r = chdir_in_root(fx.proc->cwd); !r.ok()) {
    fail_child(sync_fd, r.error());
  }
  if (fx.seccomp != nullptr) {
    if (int err = apply_seccomp_filter(*fx.seccomp)) {
      fail_child_errno(sync_fd, err, "install the seccomp filter");
    }
  }
  std::vector<char*> cargv = c_strings(fx.argv);
  std::vector<char*> cenv = c_strings(fx.proc->env);
  ::syscall(SYS_execveat, exec_fd, "", cargv.data(), cenv.data(), AT_EMPTY_PATH);
  fail_child(sync_fd, Error::from_errno("exec sbx-init in the sandbox", errno));
}

}  // namespace sbx::rt
