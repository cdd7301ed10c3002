#include "daemon/child.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>

#include "base/file.h"
#include "daemon/uv_handle.h"
#include "runtime/state.h"

namespace sbx::daemon {

namespace {

constexpr size_t kSpawnStackBytes = 64 << 10;

// What the child needs, all prepared before the clone: it shares the daemon's memory until it execs (CLONE_VM |
// CLONE_VFORK, as posix_spawn does), so it must not allocate, and the daemon has threads besides.
struct ChildArgs {
  const SpawnOptions* options;
  std::vector<char*> argv;
  int null_fd;
};

int exec_child(void* raw) {
  const ChildArgs& a = *static_cast<const ChildArgs*>(raw);
  const SpawnOptions& o = *a.options;
  // Move the fds out of the way first, so one target number never clobbers another's source.
  int moved[4];
  for (int i = 0; i < 4; ++i) {
    int src = o.fds[i] >= 0 ? o.fds[i] : (i < 3 ? a.null_fd : -1);
    moved[i] = src >= 0 ? ::fcntl(src, F_DUPFD_CLOEXEC, 10) : -1;
  }
  for (int i = 0; i < 4; ++i) {
    if (moved[i] >= 0) {
      ::dup2(moved[i], i);  // dup2 clears close-on-exec on the target
    } else {
      ::close(i);
    }
  }
  ::syscall(SYS_close_range, 4, ~0U, 0);
  // Handlers are the daemon's (the child has a copy of the table, not a share: no CLONE_SIGHAND); signals that are
  // ignored stay ignored across execve, so every disposition goes back to the default.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) {
      ::sigaction(sig, &dfl, nullptr);
    }
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (o.new_session) {
    ::setsid();
  }
  if (o.nice != 0) {
    ::setpriority(PRIO_PROCESS, 0, o.nice);
  }
  ::execv(o.path.c_str(), a.argv.data());
  ::_exit(127);
}

}  // namespace

Result<Spawned> spawn_program(const SpawnOptions& o) {
  Fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd.valid()) {
    return sys_error("open /dev/null");
  }
  ChildArgs args{&o, {}, null_fd.get()};
  for (const auto& arg : o.argv) {
    args.argv.push_back(const_cast<char*>(arg.c_str()));
  }
  args.argv.push_back(nullptr);
  // The child runs on a stack of its own while the daemon's thread waits (CLONE_VFORK) until it has exec'd: no copy
  // of the daemon's page tables, which a plain fork would make for nothing.
  std::vector<char> stack(kSpawnStackBytes);
  // No handler of the daemon's may run in the child, on the shared memory, before the child has reset them all.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  int pid = ::clone(exec_child, stack.data() + stack.size(), CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args,
                    &pidfd);
  int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    return Error::from_errno(fmt::format("start '{}'", o.path), clone_errno);
  }
  return Spawned{static_cast<pid_t>(pid), Fd(pidfd)};
}

struct ProcessWatch::Handle {
  UvHandle<uv_poll_t> poll;
};

Result<std::unique_ptr<ProcessWatch>> ProcessWatch::start(uv_loop_s* loop, pid_t pid, Fd pidfd, ExitCallback cb) {
  std::unique_ptr<ProcessWatch> w(new ProcessWatch());
  w->pid_ = pid;
  w->pidfd_ = std::move(pidfd);
  w->cb_ = std::move(cb);
  w->handle_ = std::make_unique<Handle>();
  w->handle_->poll = UvHandle<uv_poll_t>::make();
  if (int rc = uv_poll_init(loop, w->handle_->poll.get(), w->pidfd_.get()); rc < 0) {
    return make_error("watch process {}: {}", pid, uv_strerror(rc));
  }
  w->handle_->poll.get()->data = w.get();
  uv_poll_start(w->handle_->poll.get(), UV_READABLE, [](uv_poll_t* h, int, int) {
    if (h->data != nullptr) {
      static_cast<ProcessWatch*>(h->data)->fire();
    }
  });
  return w;
}

ProcessWatch::~ProcessWatch() = default;

void ProcessWatch::fire() {
  uv_poll_stop(handle_->poll.get());
  handle_->poll.get()->data = nullptr;
  std::optional<int> status;
  siginfo_t info{};
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) == 0 &&
      info.si_pid != 0) {
    status = info.si_code == CLD_EXITED ? (info.si_status & 0xff) << 8 : (info.si_status & 0x7f);
  }
  auto cb = std::move(cb_);
  cb_ = nullptr;
  if (cb) {
    cb(status);  // may destroy this watch: nothing after
  }
}

Result<void> ProcessWatch::signal(int sig) const {
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) < 0 && errno != ESRCH) {
    return sys_error("signal process {}", pid_);
  }
  return ok();
}

Result<void> send_with_fds(int sock, std::string_view line, const std::vector<int>& fds) {
  if (fds.size() > 3) {
    return Error(fmt::format("send a message with {} fds: at most 3", fds.size()), EINVAL);
  }
  alignas(struct cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))] = {};
  struct iovec iov = {const_cast<char*>(line.data()), line.size()};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t n;
  while ((n = ::sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (n < 0 && errno != EAGAIN) {
    return sys_error("send a message with {} fds", fds.size());
  }
  size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
  if (sent == line.size()) {
    return ok();
  }
  if (n < 0) {
    return Error("the peer's socket is full", EAGAIN);
  }
  struct timeval timeout = {5, 0};
  ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  ::fcntl(sock, F_SETFL, ::fcntl(sock, F_GETFL) & ~O_NONBLOCK);
  SBX_TRY(write_all(sock, line.substr(sent)));
  return ok();
}

Result<Fd> open_pidfd_checked(pid_t pid, uint64_t start_time) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    return sys_error("pidfd_open {}", pid);
  }
  Fd pidfd(fd);
  SBX_ASSIGN(uint64_t actual, rt::process_start_time(pid));
  if (actual != start_time) {
    return Error::from_errno(fmt::format("process {} is not the one recorded (pid reused)", pid), ESRCH);
  }
  return pidfd;
}

}  // namespace sbx::daemon
