// sandbox.exec: one exec, run by an `sbx-monitor exec` process. Output flows from the sandbox through pipes
// straight to this daemon and on to the client as notifications, never buffered whole: when the client's write
// queue is full, the pipes are no longer read, so the process in the sandbox blocks on a full pipe instead.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>

#include "base/file.h"
#include "base/unix_address.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/plan_builder.h"

namespace sbx::daemon {

namespace {

// After the process has ended, how long output still held open by what it left behind is waited for.
constexpr uint64_t kDrainAfterExitMs = 200;

// Connects to a running sandbox's exec socket (kept by its monitor; monitor/exec_server.cc). Fails when the sandbox
// has none: its monitor is gone (sbxd watches init itself then) or could not create it.
Result<Fd> connect_exec_socket(const std::string& path) {
  SBX_ASSIGN(sockaddr_un addr, unix_address(path));
  // Non-blocking: a monitor that does not accept (its backlog full) is an error, not a daemon that hangs.
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    return sys_error("create a socket");
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    return sys_error("connect to '{}'", path);
  }
  return fd;
}

}  // namespace

// One exec (sandbox.exec), or one run (sandbox.run): a new sandbox whose main command writes to our pipes, removed
// once it has ended. Both relay output the same way and answer with the same fields.
class ExecSession : public std::enable_shared_from_this<ExecSession> {
 public:
  ExecSession(Daemon& d, CallPtr call, uint64_t token, const SandboxEntry& e)
      : d_(d), call_(std::move(call)), token_(token), sandbox_id_(e.row.id), owner_uid_(e.row.owner_uid),
        tenant_(e.row.tenant) {}

  ~ExecSession() {
    // Ended early (a failed start, the daemon shutting down): the monitor sees its socket close, kills the exec's
    // tree and exits; it is still our child and must be reaped.
    if (watch_) {
      d_.reap_later(std::move(watch_));
    }
    if (auto conn = call_->connection()) {
      for (uint64_t t : {close_token_, drain_token_}) {
        if (t != 0) {
          conn->remove_hook(t);
        }
      }
    }
  }

  Result<void> begin(const json& spec_process, uint64_t limit, bool stream, double timeout_s,
                     const std::string& stdin_data) {
    exec_id_ = new_id();
    limit_ = limit;
    stream_ = stream;
    argv_ = spec_process["argv"];
    started_ms_ = api::now_ms();
    uv_update_time(d_.loop());
    start_ = uv_now(d_.loop());
    SBX_ASSIGN(auto out, make_pipe());
    SBX_ASSIGN(auto err, make_pipe());
    std::optional<std::pair<Fd, Fd>> in;
    if (!stdin_data.empty()) {
      SBX_ASSIGN(in, make_pipe());
    }
    const int stdio[3] = {in ? in->first.get() : -1, out.second.get(), err.second.get()};
    const auto timeout_ms = static_cast<int64_t>(timeout_s * 1000);
    auto served = ask_sandbox_monitor(spec_process, timeout_ms, stdio);
    Fd ours;
    if (served.ok()) {
      ours = std::move(*served);
    } else {
      log_debug("sandbox={}: exec {}: {}; starting an sbx-monitor exec", sandbox_id_, exec_id_,
                served.error().message());
      SBX_ASSIGN(ours, start_exec_monitor(spec_process, timeout_ms, stdio));
    }
    SBX_TRY(open_stream(&control_, std::move(ours), kControl));
    SBX_TRY(open_stream(&stdout_, std::move(out.first), kStdout));
    SBX_TRY(open_stream(&stderr_, std::move(err.first), kStderr));
    if (in) {
      SBX_TRY(send_stdin(std::move(in->second), stdin_data));
    }
    if (auto conn = call_->connection()) {
      close_token_ = conn->on_close([this] { cancel(); });
    }
    return ok();
  }

  // sandbox.run: starts the admitted sandbox with the main command's stdio on our pipes. Errors from here on are
  // the call's (through maybe_finish), so this always leaves the session to finish on its own.
  void begin_run(uint64_t limit, bool stream, double timeout_s, const std::string& stdin_data) {
    run_ = true;
    exec_id_ = sandbox_id_;
    limit_ = limit;
    stream_ = stream;
    started_ms_ = api::now_ms();
    uv_update_time(d_.loop());
    start_ = uv_now(d_.loop());
    auto opened = open_run_streams(stdin_data);
    if (!opened.ok()) {
      if (!launched_) {
        d_.forget_sandbox(sandbox_id_);  // never started: no events, nothing to destroy
      }
      return fail_run(std::move(opened).error());
    }
    if (finished_) {
      return;  // the launch failed at once, and the call has been answered
    }
    if (auto conn = call_->connection()) {
      close_token_ = conn->on_close([this] { cancel(); });
    }
    if (timeout_s > 0) {
      timeout_timer_ = UvHandle<uv_timer_t>::make();
      uv_timer_init(d_.loop(), timeout_timer_.get());
      timeout_timer_.get()->data = this;
      uv_timer_start(timeout_timer_.get(), [](uv_timer_t* t) {
        if (t->data != nullptr) {
          auto* self = static_cast<ExecSession*>(t->data);
          self->timed_out_ = true;
          self->end_run();
        }
      }, static_cast<uint64_t>(timeout_s * 1000), 0);
    }
  }

 private:
  enum Stream { kControl = 0, kStdout = 1, kStderr = 2 };

  // The run's pipes, then the launch: the monitor gets the write ends (and stdin's read end) with its spec, and ours
  // close when this returns, so that EOF comes when the sandbox's last writer is gone.
  Result<void> open_run_streams(const std::string& stdin_data) {
    SBX_ASSIGN(auto out, make_pipe());
    SBX_ASSIGN(auto err, make_pipe());
    std::optional<std::pair<Fd, Fd>> in;
    if (!stdin_data.empty()) {
      SBX_ASSIGN(in, make_pipe());
    }
    SBX_TRY(open_stream(&stdout_, std::move(out.first), kStdout));
    SBX_TRY(open_stream(&stderr_, std::move(err.first), kStderr));
    Daemon::MainStdio stdio;
    if (in) {
      stdio.names.push_back("stdin");
      stdio.fds.push_back(in->first.get());
    }
    stdio.names.insert(stdio.names.end(), {"stdout", "stderr"});
    stdio.fds.insert(stdio.fds.end(), {out.second.get(), err.second.get()});
    SandboxEntry* e = d_.entry(sandbox_id_);
    if (e == nullptr) {
      return make_error("sandbox '{}' is gone", sandbox_id_);
    }
    std::weak_ptr<ExecSession> weak = weak_from_this();
    launched_ = true;  // from here on the launch's callback owns the sandbox's fate
    d_.launch(*e, [weak](Result<void> r) {
      if (auto self = weak.lock()) {
        self->on_launched(std::move(r));
      }
    }, stdio);
    if (in && !launch_failed_) {
      SBX_TRY(send_stdin(std::move(in->second), stdin_data));
    }
    return ok();
  }

  void on_launched(Result<void> r) {
    if (!r.ok()) {
      launch_failed_ = true;
      d_.forget_sandbox(sandbox_id_);  // a failed run leaves nothing behind
      return fail_run(std::move(r).error());
    }
    SandboxEntry* e = d_.entry(sandbox_id_);
    d_.emit("created", e->row);
    d_.emit("started", e->row);
    std::weak_ptr<ExecSession> weak = weak_from_this();
    e->on_exit.push_back([weak] {
      if (auto self = weak.lock()) {
        self->on_run_ended();
      }
    });
    if (cancelled_ || timed_out_) {
      end_run();  // the client left, or the time ran out, while the sandbox was starting
    }
  }

  void fail_run(Error error) {
    if (error_.message().empty()) {
      error_ = std::move(error);
    }
    stop_output();
  }

  // Timeout or cancel: the sandbox is killed; the run's end then takes the normal way.
  void end_run() {
    SandboxEntry* e = d_.entry(sandbox_id_);
    if (e != nullptr && e->row.state == "running") {
      d_.stop(*e, 0, [] {});
    }
  }

  void on_run_ended() {
    SandboxEntry* e = d_.entry(sandbox_id_);
    if (e == nullptr) {
      return fail_run(make_error("sandbox '{}' went away during the run", sandbox_id_));
    }
    const SandboxRow& row = e->row;
    if (!row.exit_code && !row.exit_signal) {
      return fail_run(make_error("{}", row.error.empty() ? "the run ended without an exit status" : row.error));
    }
    const json& usage = e->last_usage;
    result_ = {{"exit_code", row.exit_code ? json(*row.exit_code) : json()},
               {"signal", row.exit_signal ? json(*row.exit_signal) : json()},
               {"timed_out", timed_out_},
               {"oom_killed", row.oom_killed},
               {"cpu_user_us", usage.value("cpu_user_us", int64_t(0))},
               {"cpu_system_us", usage.value("cpu_system_us", int64_t(0))},
               {"peak_rss_bytes", usage.value("peak_rss_bytes", int64_t(0))}};
    // The sandbox's processes are all gone with its pid namespace: the pipes are at EOF or about to be.
    start_drain_timer();
    maybe_finish();
  }

  // After the run: the sandbox goes (its kernel objects went with its monitor); its record, state and events too.
  Result<void> remove_run_sandbox() {
    SandboxEntry* e = d_.entry(sandbox_id_);
    if (e == nullptr) {
      return ok();
    }
    if (e->row.state == "running" || e->launch) {
      return make_error("sandbox '{}' still runs", sandbox_id_);
    }
    return d_.remove(*e);
  }

  // The fast way: the sandbox's monitor serves the exec from a forked handler. Returns the connection.
  Result<Fd> ask_sandbox_monitor(const json& process, int64_t timeout_ms, const int (&stdio)[3]) {
    SBX_ASSIGN(Fd sock, connect_exec_socket(d_.exec_socket_path(sandbox_id_)));
    json request = {{"process", process}, {"timeout_ms", timeout_ms}, {"fds", json::array()}};
    std::vector<int> fds;
    static constexpr const char* kNames[] = {"stdin", "stdout", "stderr"};
    for (int i = 0; i < 3; ++i) {
      if (stdio[i] >= 0) {
        request["fds"].push_back(kNames[i]);
        fds.push_back(stdio[i]);
      }
    }
    SBX_TRY_CTX(send_with_fds(sock.get(), api::dump_json(request) + "\n", fds), "send the exec request");
    return sock;
  }

  // The way that needs no monitor: an `sbx-monitor exec` process of its own, watched (and reaped) by this session.
  Result<Fd> start_exec_monitor(const json& process, int64_t timeout_ms, const int (&stdio)[3]) {
    json spec = {{"runtime", d_.runtime_spec()}, {"id", sandbox_id_}, {"process", process}, {"timeout_ms", timeout_ms}};
    SBX_ASSIGN(Daemon::MonitorChild m, d_.start_monitor("exec", stdio, spec));
    SBX_ASSIGN(watch_, ProcessWatch::start(d_.loop(), m.child.pid, std::move(m.child.pidfd),
                                           [this](std::optional<int>) { on_monitor_exit(); }));
    return std::move(m.socket);
  }
  struct Pipe {
    UvHandle<uv_pipe_t> handle;
    ExecSession* session = nullptr;
    Stream stream = kStdout;
    bool eof = false;
    char buf[64 << 10];
  };

  Result<void> open_stream(std::unique_ptr<Pipe>* slot, Fd fd, Stream stream) {
    auto p = std::make_unique<Pipe>();
    p->session = this;
    p->stream = stream;
    p->handle = UvHandle<uv_pipe_t>::make();
    uv_pipe_init(d_.loop(), p->handle.get(), 0);
    if (int rc = uv_pipe_open(p->handle.get(), fd.get()); rc < 0) {
      return make_error("watch the exec's output: {}", uv_strerror(rc));
    }
    (void)fd.release();
    p->handle.get()->data = p.get();
    *slot = std::move(p);
    start_reading(slot->get());
    return ok();
  }

  static void start_reading(Pipe* p) {
    if (p == nullptr || p->eof || !p->handle) {
      return;
    }
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(p->handle.get()),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* p = static_cast<Pipe*>(h->data);
          *buf = uv_buf_init(p->buf, sizeof p->buf);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* p = static_cast<Pipe*>(s->data);
          if (p == nullptr) {
            return;
          }
          if (n < 0) {
            p->eof = true;
            uv_read_stop(s);
            p->session->on_eof(p->stream);
          } else if (n > 0) {
            p->session->on_bytes(p->stream, buf->base, static_cast<size_t>(n));
          }
        });
  }

  Result<void> send_stdin(Fd fd, const std::string& data) {
    stdin_ = UvHandle<uv_pipe_t>::make();
    uv_pipe_init(d_.loop(), stdin_.get(), 0);
    if (int rc = uv_pipe_open(stdin_.get(), fd.get()); rc < 0) {
      return make_error("open the exec's stdin: {}", uv_strerror(rc));
    }
    (void)fd.release();
    stdin_data_ = data;
    auto* req = new uv_write_t{};
    req->data = this;
    stdin_.get()->data = this;
    uv_buf_t buf = uv_buf_init(stdin_data_.data(), static_cast<unsigned>(stdin_data_.size()));
    uv_write(req, reinterpret_cast<uv_stream_t*>(stdin_.get()), &buf, 1, [](uv_write_t* req, int) {
      auto* handle = req->handle;
      delete req;
      if (handle->data != nullptr) {
        static_cast<ExecSession*>(handle->data)->stdin_.reset();  // EOF for the process
      }
    });
    return ok();
  }

  void on_bytes(Stream stream, const char* data, size_t n) {
    if (stream == kControl) {
      control_buf_.append(data, n);
      size_t nl;
      while ((nl = control_buf_.find('\n')) != std::string::npos) {
        on_report(control_buf_.substr(0, nl));
        control_buf_.erase(0, nl + 1);
      }
      return;
    }
    (stream == kStdout ? stdout_bytes_ : stderr_bytes_) += n;
    size_t pass = forwarded_ >= limit_ ? 0 : std::min<uint64_t>(n, limit_ - forwarded_);
    if (pass < n) {
      truncated_ = true;
    }
    if (pass == 0) {
      return;
    }
    forwarded_ += pass;
    std::string_view chunk(data, pass);
    if (!stream_) {
      (stream == kStdout ? out_buf_ : err_buf_).append(chunk);
      return;
    }
    call_->notify("exec.output", {{"exec_id", exec_id_},
                                  {"request_id", call_->id()},
                                  {"stream", stream == kStdout ? "stdout" : "stderr"},
                                  {"data_b64", api::base64_encode(chunk)}});
    apply_backpressure();
  }

  void apply_backpressure() {
    auto conn = call_->connection();
    if (!conn || paused_ || conn->queued_bytes() < Connection::kHighWater) {
      return;
    }
    paused_ = true;
    for (Pipe* p : {stdout_.get(), stderr_.get()}) {
      if (p != nullptr && !p->eof) {
        uv_read_stop(reinterpret_cast<uv_stream_t*>(p->handle.get()));
      }
    }
    drain_token_ = conn->on_drain([this] {
      drain_token_ = 0;
      paused_ = false;
      start_reading(stdout_.get());
      start_reading(stderr_.get());
    });
  }

  void on_report(const std::string& line) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object()) {
      log_warn("sandbox={}: exec {}: unreadable report from the monitor", sandbox_id_, exec_id_);
      return;
    }
    if (j.contains("error")) {
      error_ = Error(j["error"].value("message", "the exec failed"), j["error"].value("errno", 0));
      stop_output();  // nothing was started: no output is coming
      return;
    }
    if (j.value("started", false)) {
      return;
    }
    result_ = j;
    start_drain_timer();
  }

  // Output still held open by background processes is waited for only briefly.
  void start_drain_timer() {
    drain_timer_ = UvHandle<uv_timer_t>::make();
    uv_timer_init(d_.loop(), drain_timer_.get());
    drain_timer_.get()->data = this;
    uv_timer_start(drain_timer_.get(), [](uv_timer_t* t) {
      if (t->data != nullptr) {
        static_cast<ExecSession*>(t->data)->stop_output();
      }
    }, kDrainAfterExitMs, 0);
  }

  void stop_output() {
    // Take what is already in the pipes without waiting for writers that outlive the exec.
    for (Pipe* p : {stdout_.get(), stderr_.get()}) {
      if (p == nullptr || p->eof) {
        continue;
      }
      int fd = -1;
      uv_fileno(reinterpret_cast<uv_handle_t*>(p->handle.get()), &fd);
      ssize_t n;
      while (fd >= 0 && (n = ::read(fd, p->buf, sizeof p->buf)) > 0) {
        on_bytes(p->stream, p->buf, static_cast<size_t>(n));
      }
      p->eof = true;
      uv_read_stop(reinterpret_cast<uv_stream_t*>(p->handle.get()));
    }
    maybe_finish();
  }

  void on_eof(Stream stream) {
    if (stream == kControl) {
      control_eof_ = true;
      if (!result_.is_object()) {
        stop_output();  // the monitor is gone without a result: nothing more to wait for
        return;
      }
    }
    maybe_finish();
  }

  void on_monitor_exit() {
    monitor_exited_ = true;
    watch_.reset();
    if (!result_.is_object()) {
      stop_output();  // no result is coming: nothing more to wait for
    }
    maybe_finish();
  }

  // The monitor has said all it will: a result, an error, or it is gone. A run: it has ended, or failed to start.
  bool reported() const {
    if (run_) {
      return result_.is_object() || !error_.message().empty();
    }
    return result_.is_object() || !error_.message().empty() || control_eof_ || monitor_exited_;
  }

  void cancel() {
    close_token_ = 0;
    drain_token_ = 0;
    if (run_) {
      // The client went away: the sandbox is killed, and removed once it has ended.
      cancelled_ = true;
      end_run();
      return;
    }
    // The client went away: closing the monitor's socket makes it kill the exec's whole tree and exit.
    control_.reset();
    control_eof_ = true;  // nothing more is read from it
    if (error_.message().empty() && !result_.is_object()) {
      error_ = make_error("cancelled: the client went away, and the exec's process tree was killed");
    }
    stop_output();
  }

  void maybe_finish() {
    bool output_done = (!stdout_ || stdout_->eof) && (!stderr_ || stderr_->eof);
    if (finished_ || !reported() || !output_done) {
      return;
    }
    finished_ = true;
    timeout_timer_.reset();
    uv_update_time(d_.loop());
    int64_t duration = static_cast<int64_t>(uv_now(d_.loop()) - start_);
    if (run_) {
      return finish_run(duration);
    }
    ExecRow row;
    row.exec_id = exec_id_;
    row.sandbox_id = sandbox_id_;
    row.owner_uid = owner_uid_;
    row.tenant = tenant_;
    row.argv = argv_;
    row.caller_uid = call_->caller().uid;
    row.started_at = started_ms_;
    row.duration_ms = duration;
    if (result_.is_object()) {
      row.exit_code = result_["exit_code"].is_number_integer() ? std::optional<int>(result_["exit_code"]) : std::nullopt;
      row.signal = result_["signal"].is_number_integer() ? std::optional<int>(result_["signal"]) : std::nullopt;
      row.timed_out = result_.value("timed_out", false);
      row.oom_killed = result_.value("oom_killed", false);
      row.cpu_user_us = result_.value("cpu_user_us", int64_t(0));
      row.cpu_system_us = result_.value("cpu_system_us", int64_t(0));
      row.peak_rss_bytes = result_.value("peak_rss_bytes", int64_t(0));
    } else {
      row.error = error_.message().empty() ? "the exec's monitor exited without a result" : error_.message();
    }
    if (!result_.is_object()) {
      Error e = error_.message().empty() ? make_error("the exec's monitor exited without a result") : error_;
      call_->fail(e);
    } else {
      json out = {{"exec_id", exec_id_},          {"exit_code", result_["exit_code"]},
                  {"signal", result_["signal"]},  {"duration_ms", duration},
                  {"timed_out", row.timed_out},   {"oom_killed", row.oom_killed},
                  {"cpu_user_us", row.cpu_user_us}, {"cpu_system_us", row.cpu_system_us},
                  {"peak_rss_bytes", row.peak_rss_bytes}, {"stdout_bytes", stdout_bytes_},
                  {"stderr_bytes", stderr_bytes_}, {"truncated", truncated_}};
      if (!stream_) {
        out["stdout_b64"] = api::base64_encode(out_buf_);
        out["stderr_b64"] = api::base64_encode(err_buf_);
      }
      call_->reply(out);
    }
    // Recorded after the reply has gone out, still before the loop reads the client's next request: no caller can
    // see the reply without the record.
    if (auto r = d_.store().add_exec(row); !r.ok()) {
      log_warn("sandbox={}: record exec {}: {}", sandbox_id_, exec_id_, r.error().message());
    }
    d_.retire_exec(token_);
  }

  // The reply of a run, once it has ended and its output is read: the sandbox is removed first.
  void finish_run(int64_t duration) {
    Result<void> removed = remove_run_sandbox();
    if (!removed.ok()) {
      log_warn("sandbox={}: remove after its run: {}", sandbox_id_, removed.error().message());
    }
    if (!result_.is_object()) {
      call_->fail(error_.message().empty() ? make_error("the run ended without a result") : error_);
    } else if (cancelled_) {
      call_->fail(make_error("cancelled: the client went away, and the sandbox was killed"));
    } else {
      json out = result_;
      out["id"] = sandbox_id_;
      out["duration_ms"] = duration;
      out["stdout_bytes"] = stdout_bytes_;
      out["stderr_bytes"] = stderr_bytes_;
      out["truncated"] = truncated_;
      out["removed"] = removed.ok();
      if (!stream_) {
        out["stdout_b64"] = api::base64_encode(out_buf_);
        out["stderr_b64"] = api::base64_encode(err_buf_);
      }
      call_->reply(out);
    }
    d_.retire_exec(token_);
  }

  Daemon& d_;
  CallPtr call_;
  uint64_t token_;
  std::string sandbox_id_;
  uint32_t owner_uid_;
  std::string tenant_;
  std::string exec_id_;
  json argv_;
  uint64_t limit_ = 0;
  bool stream_ = true;
  int64_t started_ms_ = 0;
  uint64_t start_ = 0;
  std::unique_ptr<ProcessWatch> watch_;
  std::unique_ptr<Pipe> control_, stdout_, stderr_;
  UvHandle<uv_pipe_t> stdin_;
  std::string stdin_data_;
  UvHandle<uv_timer_t> drain_timer_;
  UvHandle<uv_timer_t> timeout_timer_;  // a run's timeout
  bool run_ = false, timed_out_ = false, cancelled_ = false, launched_ = false, launch_failed_ = false;
  std::string control_buf_;
  std::string out_buf_, err_buf_;
  uint64_t stdout_bytes_ = 0, stderr_bytes_ = 0, forwarded_ = 0;
  bool truncated_ = false, paused_ = false, control_eof_ = false, monitor_exited_ = false, finished_ = false;
  json result_;
  Error error_;
  uint64_t close_token_ = 0, drain_token_ = 0;
};

namespace {

// What sandbox.exec and sandbox.run take alike about the process's input, output and time.
struct ExecIo {
  uint64_t output_limit = 0;
  bool stream = true;
  double timeout_s = 0;
  std::string stdin_data;
};

Result<ExecIo> exec_io_params(const json& p, const DaemonConfig& config) {
  ExecIo io;
  io.output_limit = config.exec_output_limit;
  if (p.contains("output_limit")) {
    SBX_ASSIGN(io.output_limit, api::size_param(p["output_limit"], "output_limit"));
    if (io.output_limit > config.max_exec_output_limit) {
      return api::api_error(api::kLimitExceeded, "output_limit {} is above the daemon's maximum of {} "
                            "(max_exec_output_limit)", io.output_limit, config.max_exec_output_limit);
    }
  }
  io.timeout_s = p.value("timeout", 0.0);
  constexpr double kMaxTimeout = 365.0 * 24 * 3600;
  if (!(io.timeout_s >= 0 && io.timeout_s <= kMaxTimeout)) {
    return api::param_error("timeout", fmt::format("must be between 0 (none) and {} seconds",
                                                   static_cast<int64_t>(kMaxTimeout)));
  }
  if (p.contains("stdin_b64")) {
    auto d = api::base64_decode(p["stdin_b64"].get<std::string>());
    if (!d.ok()) {
      return api::param_error("stdin_b64", d.error().message());
    }
    io.stdin_data = std::move(*d);
  }
  io.stream = p.value("stream", true);
  return io;
}

}  // namespace

void Daemon::retire_exec(uint64_t token) {
  auto it = execs_.find(token);
  if (it != execs_.end()) {
    graveyard_.push_back(std::move(it->second));
    execs_.erase(it);
  }
}

void Daemon::sandbox_exec(CallPtr call) {
  const json& p = call->params();
  auto found = find(call->caller(), p["id"]);
  if (!found.ok()) {
    return call->fail(found.error());
  }
  SandboxEntry& e = **found;
  if (e.row.state != "running" || e.stopping) {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is not running", e.row.name));
  }
  if (static_cast<int64_t>(execs_.size()) >= config_.max_concurrent_execs) {
    return call->fail(api::api_error(api::kLimitExceeded, "{} execs are running already (max_concurrent_execs)",
                                     execs_.size()));
  }
  const json& spec = e.row.spec;
  UserIds user{spec.value("uid", 0u), spec.value("gid", 0u)};
  if (p.contains("user")) {
    auto u = parse_user(p["user"], "user");
    if (!u.ok()) {
      return call->fail(u.error());
    }
    user = *u;
  }
  std::vector<std::string> env = merge_env(default_env(user.uid), spec.value("env", std::vector<std::string>{}));
  env = merge_env(env, p.value("env", std::vector<std::string>{}));
  std::string cwd = p.value("cwd", spec.value("cwd", std::string("/")));
  if (p["argv"].empty()) {
    return call->fail(api::param_error("argv", "must not be empty"));
  }
  auto io = exec_io_params(p, config_);
  if (!io.ok()) {
    return call->fail(io.error());
  }
  json process = {{"argv", p["argv"]}, {"env", env}, {"cwd", cwd}, {"uid", user.uid}, {"gid", user.gid},
                  {"groups", json::array()}};
  uint64_t token = next_session_++;
  auto session = std::make_shared<ExecSession>(*this, call, token, e);
  ExecSession* raw = session.get();
  execs_[token] = std::move(session);
  if (auto r = raw->begin(process, io->output_limit, io->stream, io->timeout_s, io->stdin_data); !r.ok()) {
    graveyard_.push_back(std::move(execs_[token]));
    execs_.erase(token);
    call->fail(std::move(r).error().context(fmt::format("exec in sandbox '{}'", e.row.id)));
  }
}

void Daemon::sandbox_run(CallPtr call) {
  const json& p = call->params();
  if (static_cast<int64_t>(execs_.size()) >= config_.max_concurrent_execs) {
    return call->fail(api::api_error(api::kLimitExceeded, "{} execs are running already (max_concurrent_execs)",
                                     execs_.size()));
  }
  auto io = exec_io_params(p, config_);
  if (!io.ok()) {
    return call->fail(io.error());
  }
  // The rest is sandbox.create's; argv is the main command exactly (no entrypoint, no cmd of the image's).
  json create = p;
  for (const char* key : {"stdin_b64", "timeout", "output_limit", "stream", "argv"}) {
    create.erase(key);
  }
  if (p.contains("argv")) {
    if (p["argv"].empty()) {
      return call->fail(api::param_error("argv", "must not be empty"));
    }
    if (p.contains("cmd") || p.contains("entrypoint")) {
      return call->fail(api::param_error("argv", "argv is the whole command: give it, or cmd and entrypoint"));
    }
    create["entrypoint"] = p["argv"];
  }
  auto admitted = admit_sandbox(call->caller(), create);
  if (!admitted.ok()) {
    return call->fail(admitted.error());
  }
  SandboxEntry& e = **admitted;
  if (!e.row.spec["cmd"].is_array()) {
    forget_sandbox(e.row.id);
    return call->fail(api::param_error("argv", "sandbox.run needs a command: argv, cmd, or an image with an "
                                               "entrypoint or cmd"));
  }
  uint64_t token = next_session_++;
  auto session = std::make_shared<ExecSession>(*this, call, token, e);
  execs_[token] = session;
  session->begin_run(io->output_limit, io->stream, io->timeout_s, io->stdin_data);
}

}  // namespace sbx::daemon
