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
};

struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled
  // The shell's convention: code, or 128 + signal.
  int shell_code() const { return signaled ? 128 + signal : code; }
};

// A process the runtime started (an exec, or a sandbox's init), owned through a pidfd. Reaped by wait().
class Process {
 public:
  Process() = default;
  Process(pid_t pid, Fd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  ~Process();  // SIGKILLs and reaps a process that was never waited for

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  // Blocks until the process exits; reaps it.
  Result<ExitStatus> wait();
  // Reaps it if it has exited; nullopt if still running.
  Result<std::optional<ExitStatus>> try_wait();
  Result<void> signal(int sig);

 private:
  void kill_unreaped() noexcept;

  pid_t pid_ = -1;
  Fd pidfd_;
  bool reaped_ = false;
};

// A running sandbox as returned by create(): its init process and the status channel init reports the main
// command's end on.
class Sandbox {
 public:
  const std::string& id() const { return id_; }
  pid_t init_pid() const { return init_.pid(); }
  Process& init() { return init_; }
  // Waits for the main command's end (or init's, without one) and returns how it ended.
  Result<ExitStatus> wait();

 private:
  friend class Runtime;
  std::string id_;
  Process init_;
  Fd status_;  // read end of init's status pipe
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
  Fd init_memfd_;  // sealed copy of sbx-init
  Fd dev_null_;    // stdio of processes given none
};

}  // namespace sbx::rt
