#pragma once
// The runtime: creates sandboxes from Plans, runs processes in them, and destroys them. Knows nothing of RPC.
//
// The process that calls create() or exec() must be single-threaded: both clone into namespaces.
// Every kernel object a sandbox has outside its own namespaces is named from its id: the run dir
// <run_root>/<id>/ and the cgroup <parent>/<id>. destroy(id) removes them all and is idempotent.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/cgroup.h"
#include "runtime/net_link.h"
#include "runtime/plan.h"
#include "runtime/seccomp.h"
#include "runtime/state.h"

namespace sbx::rt {

struct RuntimeConfig {
  std::string run_root = "/run/sbx";  // one directory per sandbox: state, overlay upper/work, rootfs mount point
  CgroupConfig cgroup;
  // How long a create or an exec may take to get its process to execve. Bounds what a sandbox can do to the caller
  // by stopping (SIGSTOP) a process that is being set up inside it.
  int setup_timeout_ms = 30000;
  // Where compiled seccomp programs persist, so that a later process given the same dir (each sandbox's monitor)
  // loads a profile's program instead of compiling it again (see SeccompCache::set_disk_dir). Empty: in memory only,
  // per process. open() creates it (mode 0700) when missing, and refuses one that is not a directory owned by the
  // runtime's euid or that group or others may write: a file in it decides which syscalls sandboxed code may make.
  std::string seccomp_cache_dir;
};

// What a process used, from wait4(2) by whoever reaped it (the exec's supervisor, or init for the main command).
struct ResourceUsage {
  uint64_t user_us = 0;        // CPU time in user mode
  uint64_t system_us = 0;      // CPU time in the kernel
  uint64_t max_rss_bytes = 0;  // peak resident set size (the largest of the process and the children it reaped)
};

struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled
  // Reported by the reaper with the status, also for a process that was killed. None when the reaper itself died
  // before it could report (an exec's supervisor killed by destroy) and for init without a main command.
  std::optional<ResourceUsage> usage;
  // The shell's convention: code, or 128 + signal.
  int shell_code() const { return signaled ? 128 + signal : code; }
};

// A process the runtime started, owned through a pidfd and reaped by wait(). For a sandbox it is init, which reports
// how the main command ended on a status pipe. For an exec it is the exec's supervisor: a small process outside the
// sandbox's pid namespace that reaps the exec'd process and reports its end and resource usage the same way (so no
// zombie of the runtime's can ever hold up the pid namespace's teardown), while signals go to the exec'd process
// itself. An exec's Process also owns the exec's child cgroup (<sandbox cgroup>/exec-<unique>), which holds the exec'd
// process and so every descendant of it, daemonized or not. The supervisor stays in the sandbox's cgroup, outside the
// tree: it survives a kill of the tree, reaps the process and reports its end.
class Process {
 public:
  Process() = default;
  Process(pid_t pid, Fd pidfd, Fd status = Fd(), Fd target = Fd())
      : pid_(pid), pidfd_(std::move(pidfd)), status_(std::move(status)), target_(std::move(target)) {}
  Process(Process&& o) noexcept;
  Process& operator=(Process&& o) noexcept;
  // A process never waited for is SIGKILLed and reaped (an exec: its whole tree); then an exec's child cgroup is
  // removed if empty.
  ~Process();

  pid_t pid() const { return pid_; }  // init, or an exec's supervisor
  int pidfd() const { return pidfd_.get(); }
  // The process signals go to: for an exec the exec'd process (its pid on the host), else pid().
  pid_t target_pid() const { return target_pid_ > 0 ? target_pid_ : pid_; }
  // The status pipe to read the end from, and the process signals go to (invalid: this one).
  void set_channels(Fd status, Fd target, pid_t target_pid = -1) {
    status_ = std::move(status);
    target_ = std::move(target);
    target_pid_ = target_pid;
  }
  // Hands the process its exec child cgroup.
  void set_cgroup(std::unique_ptr<Cgroup> cgroup) { cgroup_ = std::move(cgroup); }
  // Blocks until the process exits; reaps it. The status reported on the status pipe wins over the exit status.
  Result<ExitStatus> wait();
  // Readable (POLLIN) once the end is known: the status pipe, which the reaper writes before it exits, or else the
  // pidfd.
  int end_fd() const { return status_.valid() ? status_.get() : pidfd_.get(); }
  // The end as the reaper reported it on the status pipe, without waiting for the reaper itself to exit: the report
  // can go out while the reaper's exit is still under way. nullopt without a status pipe, or when the reaper died
  // without a report (wait() then has the exit status). Blocks until the line or EOF.
  std::optional<ExitStatus> reported_end();
  Result<void> signal(int sig);

  // Execs only. The name of the exec's child cgroup ("exec-..."), for Runtime::kill_exec_tree; empty for init.
  std::string cgroup_name() const;
  // SIGKILLs every process of the exec's tree: the exec'd process and everything it started, also what double-forked
  // or took a session of its own. Waits until they are gone; the supervisor then reports the end (SIGKILL, with the
  // usage) to wait(). Also kills what an exec that ended left running in the background.
  Result<void> kill_tree();
  // Removes the exec's child cgroup if nothing runs in it any more: true when it is gone, false while processes the
  // exec left in the background still run there (Runtime::sweep_exec_cgroups or destroy removes it later).
  Result<bool> release_cgroup();

 private:
  void kill_unreaped() noexcept;

  pid_t pid_ = -1;
  Fd pidfd_;
  Fd status_;  // read end of the status pipe ("exited N [USER_US SYS_US MAXRSS_KB]" / "signaled N [...]"), if any
  Fd target_;  // pidfd signals go to, when not pidfd_
  pid_t target_pid_ = -1;
  std::unique_ptr<Cgroup> cgroup_;  // an exec's child cgroup
  std::optional<std::string> status_line_;  // read from status_ (once)
  bool reaped_ = false;
};

// What exec() needs to know of a running sandbox, read from its run dir once: its state, its stored seccomp program,
// the capabilities it keeps, a pidfd of its init (checked against pid reuse) and its cgroup. A process that serves many
// execs into one sandbox prepares this ahead of a request (Runtime::prepare_exec), so an exec only starts processes.
// Stays valid while the sandbox runs; once init is gone, an exec with it fails.
class PreparedExec {
 public:
  PreparedExec() = default;
  PreparedExec(PreparedExec&&) noexcept;
  PreparedExec& operator=(PreparedExec&&) noexcept;
  ~PreparedExec();
  const std::string& id() const { return id_; }

 private:
  friend class Runtime;
  std::string id_;
  SandboxState state_;
  std::shared_ptr<const SeccompFilter> filter_;
  std::vector<int> keep_caps_;
  Fd init_pidfd_;
  std::unique_ptr<Cgroup> cgroup_;
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
  // Starts a process inside a running sandbox: joins its namespaces, applies its caps, seccomp filter (the one
  // compiled at create and stored in the run dir), rlimits and no_new_privs. The process starts in a new child cgroup
  // of the sandbox's, <parent>/<id>/exec-<unique>, and every descendant with it (see Process::kill_tree). The
  // returned Process (the exec's supervisor) is a child of the caller.
  Result<Process> exec(const std::string& id, const ProcessSpec& proc);
  // exec() in two steps: what can be read ahead of a request, then the exec itself (any number of times).
  Result<PreparedExec> prepare_exec(const std::string& id);
  Result<Process> exec(const PreparedExec& sandbox, const ProcessSpec& proc);
  // Kills the whole tree of one exec of sandbox `id`, by the name of its child cgroup (Process::cgroup_name), from
  // any process; then removes that cgroup. A cgroup that is gone is success.
  Result<void> kill_exec_tree(const std::string& id, const std::string& exec_cgroup);
  // Removes the empty exec child cgroups of sandbox `id` (left behind by execs whose background processes have ended
  // since) that are older than `min_age`. Returns how many it removed.
  Result<size_t> sweep_exec_cgroups(const std::string& id,
                                    std::chrono::milliseconds min_age = std::chrono::seconds(10));
  // Kills everything in the sandbox (its execs' child cgroups too), removes its cgroups and run dir. "Already gone" is
  // success.
  Result<void> destroy(const std::string& id);
  Result<CgroupStats> stats(const std::string& id) const;
  // How many processes of the sandbox the kernel's OOM killer has killed (stats().oom_kills, cheaper).
  Result<uint64_t> oom_kills(const std::string& id) const;
  // The sandbox's traffic, from the host end of its veth (rx: what the sandbox sent); none without a network.
  Result<std::optional<LinkCounters>> net_counters(const std::string& id) const;
  // Ids of sandboxes with a run dir or a cgroup.
  Result<std::vector<std::string>> list() const;

  CgroupManager& cgroups() { return *cgroups_; }
  SeccompCache& seccomp() { return seccomp_; }
  const RuntimeConfig& config() const { return config_; }
  std::string sandbox_dir(const std::string& id) const { return config_.run_root + "/" + id; }

 private:
  explicit Runtime(RuntimeConfig config) : config_(std::move(config)) {}
  Result<PreparedExec> prepare_exec_impl(const std::string& id);
  Result<Process> exec_impl(const PreparedExec& sandbox, const ProcessSpec& proc);

  RuntimeConfig config_;
  std::unique_ptr<CgroupManager> cgroups_;
  SeccompCache seccomp_;
  Fd init_memfd_;  // sealed copy of sbx-init: the program of init and of every exec
  Fd dev_null_;    // stdio of processes given none
};

}  // namespace sbx::rt
