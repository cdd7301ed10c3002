#pragma once
// Programs the daemon starts (sbx-monitor) and processes it watches (monitors it started, or found again after a
// restart), all by pidfd: a pidfd becomes readable when its process exits, child or not, so one mechanism covers
// both, and the loop never needs a SIGCHLD handler.
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

struct uv_loop_s;

namespace sbx::daemon {

struct SpawnOptions {
  std::string path;
  std::vector<std::string> argv;
  // fds for the child's 0, 1, 2, 3 (-1: /dev/null for 0-2, closed for 3). Borrowed.
  int fds[4] = {-1, -1, -1, -1};
  bool new_session = false;  // setsid(): outlives the daemon's process group and session
  int nice = 0;              // the child's nice value (setpriority before the exec)
};

struct Spawned {
  pid_t pid = 0;
  Fd pidfd;
};

// fork+exec with a pidfd (clone3 CLONE_PIDFD); every other fd is closed in the child, signals reset.
Result<Spawned> spawn_program(const SpawnOptions& options);

// How a watched process ended: its wait status when it was our child (nullopt otherwise).
using ExitCallback = std::function<void(std::optional<int> wait_status)>;

// Calls back once, from the loop, when the process behind `pidfd` exits, reaping it if it is our child.
// Destroying the watch cancels the callback.
class ProcessWatch {
 public:
  static Result<std::unique_ptr<ProcessWatch>> start(uv_loop_s* loop, pid_t pid, Fd pidfd, ExitCallback cb);
  ~ProcessWatch();
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  void set_callback(ExitCallback cb) { cb_ = std::move(cb); }
  // Sends a signal through the pidfd; ESRCH (already gone) is success.
  Result<void> signal(int sig) const;

 private:
  struct Handle;
  ProcessWatch() = default;
  void fire();
  pid_t pid_ = 0;
  Fd pidfd_;
  ExitCallback cb_;
  std::unique_ptr<Handle> handle_;
};

// Sends `data` on a unix stream socket with `fds` (at most 3) attached to its first byte (SCM_RIGHTS). On a
// non-blocking socket, what its buffer does not take at once is written in blocking mode, bounded by a 5 s send
// timeout.
Result<void> send_with_fds(int sock, std::string_view data, const std::vector<int>& fds);

// A pidfd for `pid` if it is still the process that started at `start_time` (/proc/<pid>/stat field 22).
Result<Fd> open_pidfd_checked(pid_t pid, uint64_t start_time);

}  // namespace sbx::daemon
