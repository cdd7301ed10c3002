// sbx-monitor exec: runs one process in a running sandbox and reports its end. serve_exec is also what a sandbox
// monitor's exec handler runs (exec_server.cc), with the stdio sbxd passed it instead of fds 0-2.
//
//   1. Reads the spec; starts the process with the monitor's fds 0, 1, 2 as its stdio, in a child cgroup of the
//      sandbox's own (Runtime::exec), then points its own 0, 1, 2 at /dev/null so that EOF on those pipes means the
//      process tree closed them. Reports {"started":true,"pid":N} (or {"error":...} and exits 1).
//   2. Waits for the end, the timeout (kills the whole tree), a request from sbxd ({"signal":N} signals the process,
//      {"kill_tree":true} kills the tree), SIGTERM (kills the tree), or EOF on fd 3 (sbxd died or cancelled: kills the
//      tree and exits 1 without a report).
//   3. Reports {"exit_code","signal","timed_out","oom_killed","cpu_user_us","cpu_system_us","peak_rss_bytes",
//      "duration_us"}, removes the exec's child cgroup if nothing the exec left in the background runs there, sweeps
//      older empty ones, exits 0.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <optional>

#include "base/file.h"
#include "monitor/monitor.h"

namespace sbx::monitor {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kSpecTimeout = std::chrono::seconds(30);

struct Outcome {
  bool timed_out = false;
  bool cancelled = false;  // fd 3 closed before the end
};

// The monitor's own copies of the process's stdio go: only the process tree holds the pipes from here on.
void release_stdio() {
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) {
    return;
  }
  for (int fd = 0; fd <= 2; ++fd) {
    ::dup2(null_fd, fd);
  }
  ::close(null_fd);
}

uint64_t oom_kills(const rt::Runtime& runtime, const std::string& id) {
  auto kills = runtime.oom_kills(id);
  return kills.ok() ? *kills : 0;
}

// Requests from sbxd: {"signal":N} and {"kill_tree":true}; anything else is ignored.
void handle_request(const std::string& line, rt::Process& process) {
  json request = json::parse(line, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    return;
  }
  auto sig = request.find("signal");
  if (sig != request.end() && sig->is_number_integer()) {
    (void)process.signal(sig->get<int>());
  }
  auto kill = request.find("kill_tree");
  if (kill != request.end() && kill->is_boolean() && kill->get<bool>()) {
    (void)process.kill_tree();
  }
}

int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 3600 * 1000));
}

// Until the exec's end is known (its supervisor reported it, or died).
Outcome supervise(Channel& channel, rt::Process& process, int signal_fd, std::optional<Clock::time_point> deadline) {
  Outcome out;
  for (;;) {
    int timeout = deadline && !out.timed_out ? ms_until(*deadline) : -1;
    struct pollfd fds[3] = {{process.end_fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}, {channel.fd(), POLLIN, 0}};
    int n = ::poll(fds, 3, timeout);
    if (n < 0) {
      continue;  // EINTR
    }
    if (n == 0) {
      out.timed_out = true;
      (void)process.kill_tree();
      continue;
    }
    if (fds[0].revents != 0) {
      return out;
    }
    if (fds[1].revents != 0 && read_signal(signal_fd) == SIGTERM) {
      (void)process.kill_tree();
    }
    if (fds[2].revents != 0) {
      bool eof = false;
      auto lines = channel.read_lines(&eof);
      for (const std::string& line : lines.ok() ? *lines : std::vector<std::string>{}) {
        handle_request(line, process);
      }
      if (eof || !lines.ok()) {
        out.cancelled = true;
        (void)process.kill_tree();
        return out;
      }
    }
  }
}

json end_report(const Result<rt::ExitStatus>& status, const Outcome& outcome, bool oom_killed,
                std::chrono::microseconds duration) {
  json end = {{"exit_code", nullptr},          {"signal", nullptr},   {"timed_out", outcome.timed_out},
              {"oom_killed", oom_killed},      {"cpu_user_us", 0},    {"cpu_system_us", 0},
              {"peak_rss_bytes", 0},           {"duration_us", duration.count()}};
  if (!status.ok()) {
    return end;
  }
  if (status->signaled) {
    end["signal"] = status->signal;
  } else {
    end["exit_code"] = status->code;
  }
  if (status->usage) {
    end["cpu_user_us"] = status->usage->user_us;
    end["cpu_system_us"] = status->usage->system_us;
    end["peak_rss_bytes"] = status->usage->max_rss_bytes;
  }
  return end;
}

struct Prepared {
  ExecSpec spec;
  std::unique_ptr<rt::Runtime> runtime;
  Fd signal_fd;  // SIGTERM
};

Result<Prepared> prepare(Channel& channel) {
  SBX_ASSIGN(json raw, channel.read_spec(kSpecTimeout));
  Prepared p;
  SBX_ASSIGN(p.spec, parse_exec_spec(raw));
  // Blocked before the clone (the children reset their mask): a SIGTERM meanwhile kills the tree once it exists.
  SBX_ASSIGN(p.signal_fd, block_into_signalfd({SIGTERM}));
  SBX_ASSIGN(p.runtime, rt::Runtime::open(p.spec.runtime));
  p.spec.process.stdin_fd = 0;
  p.spec.process.stdout_fd = 1;
  p.spec.process.stderr_fd = 2;
  return p;
}

}  // namespace

int serve_exec(Channel& channel, rt::Runtime& runtime, const Result<rt::PreparedExec>& sandbox,
               const rt::ProcessSpec& process, uint64_t timeout_ms, int signal_fd,
               const std::function<void()>& release) {
  if (!sandbox.ok()) {
    release();
    (void)channel.send({{"error", error_json(sandbox.error())}});
    return 1;
  }
  const std::string& id = sandbox->id();
  const uint64_t oom_before = oom_kills(runtime, id);
  const auto t0 = Clock::now();
  auto started = runtime.exec(*sandbox, process);
  release();
  if (!started.ok()) {
    (void)channel.send({{"error", error_json(started.error())}});
    return 1;
  }
  rt::Process& proc = *started;
  (void)channel.send({{"started", true}, {"pid", proc.target_pid()}});
  std::optional<Clock::time_point> deadline;
  if (timeout_ms > 0) {
    deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  Outcome outcome = supervise(channel, proc, signal_fd, deadline);
  if (outcome.cancelled) {
    (void)proc.wait();
    (void)proc.release_cgroup();
    return 1;
  }
  // Reported before the supervisor is reaped: its exit is not the exec's business.
  std::optional<rt::ExitStatus> reported = proc.reported_end();
  Result<rt::ExitStatus> status = reported ? Result<rt::ExitStatus>(*reported) : proc.wait();
  auto duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
  bool oom_killed = oom_kills(runtime, id) > oom_before;
  (void)channel.send(end_report(status, outcome, oom_killed, duration));
  if (reported) {
    (void)proc.wait();
  }
  (void)proc.release_cgroup();
  (void)runtime.sweep_exec_cgroups(id);
  return 0;
}

int run_exec(Channel& channel) {
  ignore_signals({SIGINT, SIGHUP, SIGPIPE});
  auto prepared = prepare(channel);
  if (!prepared.ok()) {
    (void)channel.send({{"error", error_json(prepared.error())}});
    return 1;
  }
  const ExecSpec& spec = prepared->spec;
  rt::Runtime& runtime = *prepared->runtime;
  return serve_exec(channel, runtime, runtime.prepare_exec(spec.id), spec.process, spec.timeout_ms,
                    prepared->signal_fd.get(), release_stdio);
}

}  // namespace sbx::monitor
