// sbx-monitor sandbox: creates one sandbox and stays with it until its init ends.
//
//   1. setsid (it outlives sbxd); SIGINT, SIGHUP, SIGPIPE ignored; SIGTERM is forwarded to init.
//   2. Reads the spec, opens the log, creates the sandbox with the main command's stdout and stderr on one pipe.
//   3. Reports {"ok":true,"init_pid","init_start_time","monitor_pid"} (or {"ok":false,"error"} and exits 1) and
//      closes fd 3: from here on sbxd watches the monitor's pid.
//   4. Copies the pipe to the log and serves execs on `exec_socket` (exec_server.cc) until init ends; reads the
//      sandbox's OOM kills; destroy(id); writes the exit file (tmp + rename) and exits 0.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <unistd.h>

#include <optional>

#include "base/file.h"
#include "monitor/monitor.h"
#include "runtime/state.h"

namespace sbx::monitor {

namespace {

using nlohmann::json;

constexpr auto kSpecTimeout = std::chrono::seconds(30);
constexpr size_t kChunk = 64 << 10;
// After init's end, how long the exec handlers still running get to report before they are killed.
constexpr auto kExecDrain = std::chrono::seconds(5);

// The main command's output: a pipe whose read end the monitor copies into the log.
struct OutputPipe {
  Fd read;
  Fd write;
};

Result<OutputPipe> make_output_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) < 0) {
    return sys_error("create the output pipe");
  }
  OutputPipe p{Fd(fds[0]), Fd(fds[1])};
  if (::fcntl(p.read.get(), F_SETFL, O_NONBLOCK) < 0) {
    return sys_error("make the output pipe non-blocking");
  }
  return p;
}

// Diagnostics after fd 3 is closed go to the monitor's stderr, which sbxd points at its own log.
void warn(const std::string& id, const Error& error) {
  std::fprintf(stderr, "sbx-monitor: sandbox=%s: %s\n", id.c_str(), error.message().c_str());
}

// Copies what the pipe holds into the log. Returns false at EOF (every writer closed it).
bool drain_output(int fd, std::optional<LogFile>& log, const std::string& id) {
  char buf[kChunk];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errno == EAGAIN;
    }
    if (n == 0) {
      return false;
    }
    if (log) {
      auto written = log->append(std::string_view(buf, static_cast<size_t>(n)));
      if (!written.ok()) {
        warn(id, written.error());
        log.reset();  // keep reading (a full pipe would stop the main command), but stop writing
      }
    }
  }
}

// Relays output and SIGTERM, and serves execs, until init exits.
void supervise(rt::Runtime& runtime, rt::Sandbox& sandbox, Fd output, std::optional<LogFile>& log, int signal_fd,
               ExecServer& execs) {
  std::vector<struct pollfd> fds;
  for (;;) {
    execs.ensure_spare(runtime, sandbox.id(), {signal_fd, output.get()});
    fds.assign({{sandbox.init().pidfd(), POLLIN, 0}, {signal_fd, POLLIN, 0}, {output.get(), POLLIN, 0}});
    for (int fd : execs.poll_fds()) {
      fds.push_back({fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), execs.poll_timeout_ms()) < 0) {
      continue;  // EINTR
    }
    if (fds[2].revents != 0 && !drain_output(output.get(), log, sandbox.id())) {
      output.reset();  // poll ignores the negative fd from here on
    }
    if (fds[1].revents != 0 && read_signal(signal_fd) == SIGTERM) {
      (void)sandbox.init().signal(SIGTERM);
    }
    for (size_t i = 3; i < fds.size(); ++i) {
      if (fds[i].revents != 0) {
        execs.on_ready(fds[i].fd);
      }
    }
    if (fds[0].revents != 0) {
      break;
    }
  }
  // Execs end with init's pid namespace; their handlers report that and exit. None is started from here on.
  execs.shutdown(kExecDrain);
  if (output.valid()) {
    // Init is gone and its pid namespace with it: whatever the writers left in the pipe is all there is.
    drain_output(output.get(), log, sandbox.id());
  }
}

Result<void> write_exit_file(const std::string& path, const Result<rt::ExitStatus>& status, bool oom_killed) {
  json exit = {{"exit_code", nullptr}, {"signal", nullptr}, {"oom_killed", oom_killed}, {"finished_at_ms", epoch_ms()}};
  if (status.ok() && status->signaled) {
    exit["signal"] = status->signal;
  } else if (status.ok()) {
    exit["exit_code"] = status->code;
  }
  if (status.ok() && status->usage) {
    exit["cpu_user_us"] = status->usage->user_us;
    exit["cpu_system_us"] = status->usage->system_us;
    exit["peak_rss_bytes"] = status->usage->max_rss_bytes;
  }
  const std::string tmp = path + ".tmp";
  SBX_TRY_CTX(create_file(tmp, exit.dump() + "\n", 0644), "write the exit file");
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    return sys_error("write the exit file: rename '{}' to '{}'", tmp, path);
  }
  return ok();
}

// After init ended: the sandbox's OOM kills, destroy, the exit file.
int finish(rt::Runtime& runtime, rt::Sandbox& sandbox, const std::string& exit_path) {
  auto status = sandbox.wait();
  if (!status.ok()) {
    warn(sandbox.id(), status.error());
  }
  auto kills = runtime.oom_kills(sandbox.id());
  bool oom_killed = kills.ok() && *kills > 0;
  if (auto destroyed = runtime.destroy(sandbox.id()); !destroyed.ok()) {
    warn(sandbox.id(), destroyed.error());
  }
  if (auto written = write_exit_file(exit_path, status, oom_killed); !written.ok()) {
    warn(sandbox.id(), written.error());
    return 1;
  }
  return 0;
}

struct Started {
  std::unique_ptr<rt::Runtime> runtime;
  rt::Sandbox sandbox;
  std::optional<LogFile> log;
  Fd output;     // read end of the main command's output pipe
  Fd signal_fd;  // SIGTERM
  std::string exit_path;
  ExecServer execs;
};

// What a monitor holds before it has a spec: the SIGTERM signalfd and, for a spare, the runtime already open.
struct Prepared {
  Fd signal_fd;
  std::unique_ptr<rt::Runtime> runtime;
  json runtime_json;  // the spare's prelude's "runtime", which the spec must repeat
};

Result<Prepared> prepare() {
  Prepared p;
  // Blocked before the clone: a SIGTERM during the create is forwarded once init runs. The children reset their mask.
  SBX_ASSIGN(p.signal_fd, block_into_signalfd({SIGTERM}));
  return p;
}

// A spare (`sbx-monitor sandbox --spare`) is started before anyone asks for a sandbox: its first line is only
// {"runtime": ...}, which it opens at once (sbx-init's memfd, the cgroup manager), and it then waits without a time
// limit for the spec. EOF before the spec is sbxd retiring it: nothing to report. *retired is set then.
Result<Prepared> prepare_spare(Channel& channel, bool* retired) {
  *retired = false;
  SBX_ASSIGN(Prepared p, prepare());
  auto prelude = channel.read_spec(kNoTimeout);
  if (!prelude.ok() && prelude.error().sys_errno() == EPIPE) {
    *retired = true;
    return p;
  }
  SBX_TRY_CTX(prelude, "read the spare's prelude");
  SBX_ASSIGN(rt::RuntimeConfig config, parse_spare_prelude(*prelude));
  SBX_ASSIGN(p.runtime, rt::Runtime::open(config));
  p.runtime_json = (*prelude)["runtime"];
  // sbxd starts spares at a low priority, so that their start-up yields to running sandboxes; the sandbox this one
  // creates must not inherit it.
  if (::setpriority(PRIO_PROCESS, 0, 0) < 0) {
    return sys_error("reset the spare's nice value to 0");
  }
  return p;
}

Result<Started> start(const json& raw, Prepared prepared, std::vector<Fd> fds) {
  SBX_ASSIGN(SandboxSpec spec, parse_sandbox_spec(raw));
  if (fds.size() != spec.stdio.size()) {
    return Error(fmt::format("spec.stdio names {} fds, but {} came with the spec", spec.stdio.size(), fds.size()),
                 EINVAL);
  }
  Started s;
  s.exit_path = spec.exit_path;
  s.signal_fd = std::move(prepared.signal_fd);
  if (prepared.runtime) {
    if (raw["runtime"] != prepared.runtime_json) {
      return Error("spec.runtime: differs from the runtime the spare monitor opened", EINVAL);
    }
    s.runtime = std::move(prepared.runtime);
  } else {
    SBX_ASSIGN(s.runtime, rt::Runtime::open(spec.runtime));
  }
  std::optional<OutputPipe> pipe;
  if (!spec.stdio.empty()) {
    // sbxd's own pipes (sandbox.run): no log. Ours are closed once the sandbox holds them (the end of `start`), so
    // that sbxd sees EOF when the sandbox's last writer is gone.
    spec.plan.main->stdin_fd = spec.plan.main->stdout_fd = spec.plan.main->stderr_fd = -1;
    for (size_t i = 0; i < fds.size(); ++i) {
      int* slot = spec.stdio[i] == 0 ? &spec.plan.main->stdin_fd
                                     : spec.stdio[i] == 1 ? &spec.plan.main->stdout_fd : &spec.plan.main->stderr_fd;
      *slot = fds[i].get();
    }
  } else if (spec.plan.main) {
    SBX_ASSIGN(LogFile log, LogFile::open(spec.log_path, spec.log_max_bytes));
    s.log = std::move(log);
    SBX_ASSIGN(pipe, make_output_pipe());
    spec.plan.main->stdin_fd = -1;
    spec.plan.main->stdout_fd = pipe->write.get();
    spec.plan.main->stderr_fd = pipe->write.get();
  }
  SBX_ASSIGN(s.sandbox, s.runtime->create(spec.plan));
  if (pipe) {
    s.output = std::move(pipe->read);
  }
  if (!spec.exec_socket.empty()) {
    // Listening before the report: sbxd may send an exec as soon as it has it. Without the socket the sandbox
    // still works: sbxd then starts an `sbx-monitor exec` for each exec.
    auto execs = ExecServer::listen(spec.exec_socket);
    if (execs.ok()) {
      s.execs = std::move(*execs);
    } else {
      warn(s.sandbox.id(), execs.error());
    }
  }
  return s;
}

}  // namespace

int run_sandbox(Channel& channel, bool spare) {
  ignore_signals({SIGINT, SIGHUP, SIGPIPE});
  (void)::setsid();  // EPERM: already a session leader (uv_spawn's UV_PROCESS_DETACHED did it)
  bool retired = false;
  auto prepared = spare ? prepare_spare(channel, &retired) : prepare();
  if (retired) {
    return 0;
  }
  auto raw = prepared.ok() ? channel.read_spec(spare ? kNoTimeout : kSpecTimeout)
                           : Result<json>(std::move(prepared).error());
  if (spare && !raw.ok() && raw.error().sys_errno() == EPIPE) {
    return 0;  // retired after the prelude
  }
  auto started =
      raw.ok() ? start(*raw, std::move(*prepared), channel.take_fds()) : Result<Started>(std::move(raw).error());
  if (!started.ok() && spare && !raw.ok()) {
    // A spare that failed before its spec may never be asked again: sbxd's log gets the reason.
    std::fprintf(stderr, "sbx-monitor: spare: %s\n", started.error().message().c_str());
  }
  if (!started.ok()) {
    (void)channel.send({{"ok", false}, {"error", error_json(started.error())}});
    return 1;
  }
  rt::Sandbox& sandbox = started->sandbox;
  auto start_time = rt::process_start_time(sandbox.init_pid());
  (void)channel.send({{"ok", true},
                      {"init_pid", sandbox.init_pid()},
                      {"init_start_time", start_time.ok() ? *start_time : 0},
                      {"monitor_pid", ::getpid()}});
  ::close(channel.fd());
  supervise(*started->runtime, sandbox, std::move(started->output), started->log, started->signal_fd.get(),
            started->execs);
  return finish(*started->runtime, sandbox, started->exit_path);
}

}  // namespace sbx::monitor
