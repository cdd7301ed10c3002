#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <utility>

#include "runtime/runtime.h"

namespace sbx::rt {

namespace {

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
  }
}

std::optional<ExitStatus> parse_status_line(const std::string& line) {
  ExitStatus st;
  int value = 0;
  if (std::sscanf(line.c_str(), "exited %d", &value) == 1) {
    st.code = value;
    return st;
  }
  if (std::sscanf(line.c_str(), "signaled %d", &value) == 1) {
    st.signaled = true;
    st.signal = value;
    return st;
  }
  return std::nullopt;
}

}  // namespace

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::move(o.pidfd_)),
      status_(std::move(o.status_)),
      target_(std::move(o.target_)),
      reaped_(std::exchange(o.reaped_, true)) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    kill_unreaped();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    status_ = std::move(o.status_);
    target_ = std::move(o.target_);
    reaped_ = std::exchange(o.reaped_, true);
  }
  return *this;
}

Process::~Process() { kill_unreaped(); }

void Process::kill_unreaped() noexcept {
  if (pid_ <= 0 || reaped_ || !pidfd_.valid()) {
    return;
  }
  reaped_ = true;
  if (target_.valid()) {
    ::syscall(SYS_pidfd_send_signal, target_.get(), SIGKILL, nullptr, 0);
  }
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0 && errno == EINTR) {
  }
}

Result<ExitStatus> Process::wait() {
  if (reaped_) {
    return make_error("process {} was already reaped", pid_);
  }
  std::string line = status_.valid() ? read_status_line(status_.get()) : std::string();
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0) {
    if (errno != EINTR) {
      return sys_error("wait for process {}", pid_);
    }
  }
  reaped_ = true;
  return parse_status_line(line).value_or(status_of(info));
}

Result<void> Process::signal(int sig) {
  int fd = target_.valid() ? target_.get() : pidfd_.get();
  if (::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) < 0) {
    return sys_error("send signal {} to process {}", sig, pid_);
  }
  return ok();
}

}  // namespace sbx::rt
