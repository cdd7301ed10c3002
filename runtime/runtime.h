#pragma once
// The runtime: creates sandboxes from Plans, runs processes in them, and destroys them. Knows nothing of RPC.
//
// The process that calls create() or exec() must be single-threaded: both clone into namespaces.
// Every kernel object a sandbox has outside its own namespaces is named from its id: the run dir
// <run_root>/<id>/ and the cgroup <parent>/<id>. destroy(id) removes them all and is idempotent.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/cgroup.h"
#include "runtime/plan.h"
#include "runtime/seccomp.h"

namespace sbx::rt {

struct RuntimeConfig {
  std::string run_root = "/run/sbx";  // one directory per sandbox: state, overlay upper/work, rootfs mount point
  CgroupConfig cgroup;
  // How long a create or an exec may take to get its process to execve. Bounds what a sandbox can do to the caller
  // by stopping (SIGSTOP) a process that is being set up inside it.
  int setup_timeout_ms = 30000;
};

struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled
  // The shell's convention: code, or 128 + signal.
  int shell_code() const { return signaled ? 128 + signal : code; }
};

// A process the runtime started, owned through a pidfd and reaped by wait(). For a sandbox it is init, which reports
// how the main command ended on a status pipe. For an exec it is the exec's supervisor: a small process outside the
// sandbox's pid namespace that reaps the exec'd process and reports its end the same way (so no zombie of the
// runtime's can ever hold up the pid namespace's teardown), while signals go to the exec'd process itself.
class Process {
 public:
  Process() = default;
  Process(pid_t pid, Fd pidfd, Fd status = Fd(), Fd target = Fd())
      : pid_(pid), pidfd_(std::move(pidfd)), status_(std::move(status)), target_(std::move(target)) {}
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  ~Process();  // SIGKILLs and reaps a process that was never waited for

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  // The status pipe to read the end from, and the process signals go to (invalid: this one).
  void set_channels(Fd status, Fd target) {
    status_ = std::move(status);
    target_ = std::move(target);
  }
  // Blocks until the process exits; reaps it. The status reported on the status pipe wins over the exit status.
  Result<ExitStatus> wait();
  Result<void> signal(int sig);

 private:
  void kill_unreaped() noexcept;

  pid_t pid_ = -1;
  Fd pidfd_;
  Fd status_;  // read end of the status pipe ("exited N" / "signaled N"), if any
  Fd target_;  // pidfd signals go to, when not pidfd_
  bool reaped_ = false;
};

// A running sandbox as returned by create(): its init process. Dropping the handle kills the sandbox's processes
// (not its cgroup or run dir: destroy(id) removes those).
class Sandbox {
 public:
  const std::string& id() const { return id_; }
  pid_t init_pid() const { return init_.pid(); }
  Process& init() { return init_; }
  // Waits for the main command's end (or init's, without one) and returns how it ended.
  Result<ExitStatus> wait() { return init_.wait(); }

 private:
  friend class Runtime;
  std::string id_;
  Process init_;
};

class Runtime {
 public:
  static Result<std::unique_ptr<Runtime>> open(RuntimeConfig config);
  ~Runtime();

  // Validates the plan, then builds the sandbox. On failure everything created is removed again (via destroy).
  Result<Sandbox> create(const Plan& plan);
  // Starts a process inside a running sandbox: joins its namespaces and cgroup, applies its caps, seccomp, rlimits
  // and no_new_privs. The returned Process is a child of the caller.
  Result<Process> exec(const std::string& id, const ProcessSpec& proc);
  // Kills everything in the sandbox, removes its cgroup and run dir. "Already gone" is success.
  Result<void> destroy(const std::string& id);
  Result<CgroupStats> stats(const std::string& id) const;
  // Ids of sandboxes with a run dir or a cgroup.
  Result<std::vector<std::string>> list() const;

  CgroupManager& cgroups() { return *cgroups_; }
  SeccompCache& seccomp() { return seccomp_; }
  const RuntimeConfig& config() const { return config_; }
  std::string sandbox_dir(const std::string& id) const { return config_.run_root + "/" + id; }

 private:
  explicit Runtime(RuntimeConfig config) : config_(std::move(config)) {}

  RuntimeConfig config_;
  std::unique_ptr<CgroupManager> cgroups_;
  SeccompCache seccomp_;
  Fd init_memfd_;  // sealed copy of sbx-init: the program of init and of every exec
  Fd dev_null_;    // stdio of processes given none
};

}  // namespace sbx::rt
