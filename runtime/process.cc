#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)), reaped_(std::exchange(o.reaped_, true)) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    kill_unreaped();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    reaped_ = std::exchange(o.reaped_, true);
  }
  return *this;
}

Process::~Process() { kill_unreaped(); }

void Process::kill_unreaped() noexcept {
  if (pid_ > 0 && !reaped_ && pidfd_.valid()) {
    reaped_ = true;
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    siginfo_t info{};
    while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0 && errno == EINTR) {
    }
  }
}

Result<ExitStatus> Process::wait() {
  if (reaped_) {
    return make_error("process {} was already reaped", pid_);
  }
  siginfo_t info{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED) < 0) {
    if (errno != EINTR) {
      return sys_error("wait for process {}", pid_);
    }
  }
  reaped_ = true;
  return status_of(info);
}

Result<std::optional<ExitStatus>> Process::try_wait() {
  if (reaped_) {
    return make_error("process {} was already reaped", pid_);
  }
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) < 0) {
    return sys_error("wait for process {}", pid_);
  }
  if (info.si_pid == 0) {
    return std::optional<ExitStatus>();
  }
  reaped_ = true;
  return std::optional<ExitStatus>(status_of(info));
}

Result<void> Process::signal(int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) < 0) {
    return sys_error("send signal {} to process {}", sig, pid_);
  }
  return ok();
}

}  // namespace sbx::rt
