#pragma once
// sbx-monitor: the small single-threaded supervisors sbxd starts with fork+exec, so that sbxd (a libuv process with
// threads) never clones into namespaces itself.
//
//   sbx-monitor sandbox   one per running sandbox, detached (its own session): creates the sandbox, relays the main
//                         command's output to a size-capped log file, waits for init, destroys the sandbox's kernel
//                         objects, writes an exit file. Outlives sbxd.
//   sbx-monitor exec      one per exec: starts the process in the sandbox (in a child cgroup of its own, so that its
//                         whole tree can be killed), enforces the timeout, reports the end, CPU time and peak RSS.
//
// fd 3 is a unix stream socket to sbxd. sbxd's first line on it is the spec (one JSON object); everything the monitor
// reports is a JSON line on it. The exact contract is in monitor/README.md.
#include <chrono>
#include <functional>
#include <initializer_list>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

struct msghdr;

#include "base/error.h"
#include "base/fd.h"
#include "runtime/plan.h"
#include "runtime/runtime.h"

namespace sbx::monitor {

inline constexpr int kChannelFd = 3;
inline constexpr std::chrono::milliseconds kNoTimeout = std::chrono::milliseconds::max();

// The socket to sbxd: JSON lines both ways. Borrows the fd.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  int fd() const { return fd_; }
  // The next line sbxd sends, parsed; waits at most `timeout` (kNoTimeout: as long as it takes) for it. EOF before a
  // whole line is an error with errno EPIPE.
  Result<nlohmann::json> read_spec(std::chrono::milliseconds timeout);
  // Sends one object as a line. A peer that is gone (EPIPE) is an error the caller may ignore.
  Result<void> send(const nlohmann::json& message);
  // Reads what is available (after poll said so) and returns the complete lines; *eof when the peer closed its end.
  Result<std::vector<std::string>> read_lines(bool* eof);
  // The fds received so far with SCM_RIGHTS (at most kMaxFds per message), in the order they came.
  std::vector<Fd> take_fds() { return std::move(fds_); }

  static constexpr size_t kMaxFds = 3;

 private:
  Result<size_t> read_some();  // 0: EOF
  void keep_fds(struct msghdr& msg);

  int fd_;
  std::string buffer_;  // received bytes not yet returned as lines
  std::vector<Fd> fds_;
};

// {"message": ..., "errno": N} for an error report.
nlohmann::json error_json(const Error& error);

// The main command's output log: appends; when the file would grow past max_bytes / 2 it is renamed to path + ".1"
// (replacing the previous one) and a new file is started, so at most max_bytes are kept in the two.
class LogFile {
 public:
  static Result<LogFile> open(std::string path, uint64_t max_bytes);
  Result<void> append(std::string_view data);
  uint64_t size() const { return size_; }

 private:
  Result<void> rotate();

  std::string path_;
  uint64_t half_ = 0;
  uint64_t size_ = 0;
  Fd fd_;
};

struct SandboxSpec {
  rt::RuntimeConfig runtime;
  rt::Plan plan;
  std::string log_path;
  uint64_t log_max_bytes = 1 << 20;
  std::string exit_path;
  std::string exec_socket;  // where to serve execs once the sandbox runs; empty: nowhere
  // The main command's stdio fds that came with the spec (0 stdin, 1 stdout, 2 stderr, in the order they came):
  // sandbox.run's pipes to sbxd. With them there is no log; a stdio not passed is /dev/null.
  std::vector<int> stdio;
};

struct ExecSpec {
  rt::RuntimeConfig runtime;
  std::string id;
  rt::ProcessSpec process;
  uint64_t timeout_ms = 0;  // 0: none
};

// One exec requested on a sandbox monitor's exec socket: `fds` says what each fd that came with the request is
// (0 stdin, 1 stdout, 2 stderr, in the order they were passed); a stdio not passed is /dev/null.
struct ExecRequest {
  rt::ProcessSpec process;
  uint64_t timeout_ms = 0;  // 0: none
  std::vector<int> fds;
};

// Errors name the field ("spec.log_path: expected a string, got number 3").
Result<SandboxSpec> parse_sandbox_spec(const nlohmann::json& spec);
Result<ExecSpec> parse_exec_spec(const nlohmann::json& spec);
Result<ExecRequest> parse_exec_request(const nlohmann::json& request);
// A spare sandbox monitor's first line: {"runtime": ...}.
Result<rt::RuntimeConfig> parse_spare_prelude(const nlohmann::json& prelude);

// The two modes; each returns the monitor's exit status. `spare`: `sbx-monitor sandbox --spare`.
int run_sandbox(Channel& channel, bool spare);
int run_exec(Channel& channel);

// One exec, reported on `channel` (monitor/README.md, `sbx-monitor exec`): starts `process` in `sandbox` (an error
// there is reported as the exec's), calls `release` once the process holds its stdio (the caller's copies go then,
// so that EOF on them means the process tree closed them), then supervises it. Returns the exit status for the
// process serving it.
int serve_exec(Channel& channel, rt::Runtime& runtime, const Result<rt::PreparedExec>& sandbox,
               const rt::ProcessSpec& process, uint64_t timeout_ms, int signal_fd,
               const std::function<void()>& release);

// A sandbox monitor's exec socket (exec_server.cc): each connection is one exec, served by a handler the monitor
// forked ahead of it. One spare handler always waits: it has prepared the exec (Runtime::prepare_exec) and sits in
// accept; when it takes a connection it says so on a pipe, and the monitor forks the next spare.
class ExecServer {
 public:
  // Binds and listens on `path` (mode 0600).
  static Result<ExecServer> listen(const std::string& path);
  ExecServer() = default;
  ExecServer(ExecServer&& o) noexcept;
  ExecServer& operator=(ExecServer&& o) noexcept;
  ~ExecServer();  // unlinks the socket; handlers still running are left to finish on their own

  // Forks the spare handler unless one waits already (or the last one died without a connection less than a
  // second ago). The child closes `close_in_child`: the monitor's own fds that an exec has no business holding.
  void ensure_spare(rt::Runtime& runtime, const std::string& id, std::initializer_list<int> close_in_child);
  // The fds to poll for POLLIN (the spare's pipe, the handlers' pidfds), and how long the poll may wait (-1: no
  // limit) before ensure_spare has something to do.
  std::vector<int> poll_fds() const;
  int poll_timeout_ms() const;
  // One of poll_fds() is readable: notes a spare that took its connection, reaps a handler that exited.
  void on_ready(int fd);
  // Stops serving (closes and unlinks the socket, kills the idle spare), waits up to `grace` for the handlers
  // serving execs, then SIGKILLs and reaps the rest.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Handler {
    pid_t pid;
    Fd pidfd;
  };
  bool spare_taken();  // drains the pipe: true if the spare took a connection

  std::string path_;
  Fd listen_;
  Fd taken_read_, taken_write_;  // a spare writes a byte when it takes its connection
  std::vector<Handler> handlers_;  // every child: the spare and the handlers serving execs
  pid_t spare_ = -1;
  std::chrono::steady_clock::time_point spare_lost_at_{};
};

// Small shared helpers.
// Blocks `signals` and returns a signalfd (O_CLOEXEC | O_NONBLOCK) that reports them.
Result<Fd> block_into_signalfd(std::initializer_list<int> signals);
// Reads one pending signal from a signalfd; 0 when none is pending.
int read_signal(int signal_fd);
void ignore_signals(std::initializer_list<int> signals);
int64_t epoch_ms();

}  // namespace sbx::monitor
