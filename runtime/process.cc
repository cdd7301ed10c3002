// Process: a child of the runtime (init or an exec's supervisor) owned through a pidfd.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string_view>
#include <utility>

#include "runtime/runtime.h"

namespace sbx::rt {

namespace {

// How long an exec's supervisor gets to reap its killed process and exit before it is killed too.
constexpr std::chrono::milliseconds kSupervisorGrace{5000};

ExitStatus status_of(const siginfo_t& info) {
  ExitStatus st;
  if (info.si_code == CLD_EXITED) {
    st.code = info.si_status;
  } else {
    st.signaled = true;
    st.signal = info.si_status;
  }
  return st;
}

// The one line a status pipe carries before its writer exits; empty when the writer died first.
// The reaper's one line, up to its newline (written before the reaper exits) or EOF (it died without one).
std::string read_status_line(int fd) {
  std::string line;
  char buf[64];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0 || line.size() > 256) {
      return line;
    }
    line.append(buf, static_cast<size_t>(n));
    if (line.back() == '\n') {
      return line;
    }
  }
}

// "exited N" or "signaled N", optionally followed by the usage: "USER_US SYSTEM_US MAXRSS_KIB".
std::optional<ExitStatus> parse_status_line(const std::string& line) {
  char kind[16] = {};
  int value = 0;
  unsigned long long user_us = 0;
  unsigned long long system_us = 0;
  unsigned long long max_rss_kib = 0;
  int n = std::sscanf(line.c_str(), "%15s %d %llu %llu %llu", kind, &value, &user_us, &system_us, &max_rss_kib);
  if (n < 2) {
    return std::nullopt;
  }
  ExitStatus st;
  if (std::string_view(kind) == "exited") {
    st.code = value;
  } else if (std::string_view(kind) == "signaled") {
    st.signaled = true;
    st.signal = value;
  } else {
    return std::nullopt;
  }
  if (n == 5) {
    st.usage = ResourceUsage{user_us, system_us, max_rss_kib * 1024};
  }
  return st;
}

}  // namespace

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::move(o.pidfd_)),
      status_(std::move(o.status_)),
      target_(std::move(o.target_)),
      target_pid_(std::exchange(o.target_pid_, -1)),
      cgroup_(std::move(o.cgroup_)),
      status_line_(std::exchange(o.status_line_, std::nullopt)),
      reaped_(std::exchange(o.reaped_, true)) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    kill_unreaped();
    if (cgroup_) {
      (void)release_cgroup();
    }
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    status_ = std::move(o.status_);
    target_ = std::move(o.target_);
    target_pid_ = std::exchange(o.target_pid_, -1);
    cgroup_ = std::move(o.cgroup_);
    status_line_ = std::exchange(o.status_line_, std::nullopt);
    reaped_ = std::exchange(o.reaped_, true);
  }
  return *this;
}

Process::~Process() {
  kill_unreaped();
  if (cgroup_) {
    (void)release_cgroup();
  }
}

void Process::kill_unreaped() noexcept {
  if (pid_ <= 0 || reaped_ || !pidfd_.valid()) {
    return;
  }
  reaped_ = true;
  // An exec: its process first (with its whole tree), so that the supervisor reaps it and exits on its own. Killing
  // the supervisor first would leave the process a zombie whose parent is outside the sandbox.
  bool tree_killed = cgroup_ && cgroup_->kill_all().ok();
  if (!tree_killed && target_.valid()) {
    ::syscall(SYS_pidfd_send_signal, target_.get(), SIGKILL, nullptr, 0);
  }
  struct pollfd exited = {pidfd_.get(), POLLIN, 0};
  if (!target_.valid() || ::poll(&exited, 1, static_cast<int>(kSupervisorGrace.count())) != 1) {
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  }
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0 && errno == EINTR) {
  }
}

Result<ExitStatus> Process::wait() {
  if (reaped_) {
    return make_error("process {} was already reaped", pid_);
  }
  if (!status_line_ && status_.valid()) {
    status_line_ = read_status_line(status_.get());
  }
  const std::string line = status_line_.value_or(std::string());
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0) {
    if (errno != EINTR) {
      return sys_error("wait for process {}", pid_);
    }
  }
  reaped_ = true;
  return parse_status_line(line).value_or(status_of(info));
}

std::optional<ExitStatus> Process::reported_end() {
  if (!status_line_ && status_.valid()) {
    status_line_ = read_status_line(status_.get());
  }
  return parse_status_line(status_line_.value_or(std::string()));
}

Result<void> Process::signal(int sig) {
  int fd = target_.valid() ? target_.get() : pidfd_.get();
  if (::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) < 0) {
    return sys_error("send signal {} to process {}", sig, pid_);
  }
  return ok();
}

std::string Process::cgroup_name() const {
  if (!cgroup_) {
    return {};
  }
  const std::string& id = cgroup_->id();
  return id.substr(id.rfind('/') + 1);
}

Result<void> Process::kill_tree() {
  if (!cgroup_) {
    return make_error("kill the tree of process {}: it is not an exec (no cgroup of its own)", pid_);
  }
  SBX_TRY_CTX(cgroup_->kill_all(), "kill the tree of exec {}", target_pid());
  return ok();
}

Result<bool> Process::release_cgroup() {
  if (!cgroup_) {
    return true;
  }
  auto gone = cgroup_->remove_if_empty();
  if (!gone.ok()) {
    return std::move(gone).error().context(fmt::format("release the cgroup of exec {}", target_pid()));
  }
  if (*gone) {
    cgroup_.reset();
  }
  return gone;
}

}  // namespace sbx::rt
