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
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/plan.h"
#include "runtime/runtime.h"

namespace sbx::monitor {

inline constexpr int kChannelFd = 3;

// The socket to sbxd: JSON lines both ways. Borrows the fd.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  int fd() const { return fd_; }
  // The first line sbxd sends, parsed; waits at most `timeout` for it.
  Result<nlohmann::json> read_spec(std::chrono::milliseconds timeout);
  // Sends one object as a line. A peer that is gone (EPIPE) is an error the caller may ignore.
  Result<void> send(const nlohmann::json& message);
  // Reads what is available (after poll said so) and returns the complete lines; *eof when the peer closed its end.
  Result<std::vector<std::string>> read_lines(bool* eof);

 private:
  Result<size_t> read_some();  // 0: EOF

  int fd_;
  std::string buffer_;  // received bytes not yet returned as lines
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
};

struct ExecSpec {
  rt::RuntimeConfig runtime;
  std::string id;
  rt::ProcessSpec process;
  uint64_t timeout_ms = 0;  // 0: none
};

// Errors name the field ("spec.log_path: expected a string, got number 3").
Result<SandboxSpec> parse_sandbox_spec(const nlohmann::json& spec);
Result<ExecSpec> parse_exec_spec(const nlohmann::json& spec);

// The two modes; each returns the monitor's exit status.
int run_sandbox(Channel& channel);
int run_exec(Channel& channel);

// Small shared helpers.
// Blocks `signals` and returns a signalfd (O_CLOEXEC | O_NONBLOCK) that reports them.
Result<Fd> block_into_signalfd(std::initializer_list<int> signals);
// Reads one pending signal from a signalfd; 0 when none is pending.
int read_signal(int signal_fd);
void ignore_signals(std::initializer_list<int> signals);
int64_t epoch_ms();

}  // namespace sbx::monitor
