// sandbox.* lifecycle methods, the monitor's launch, the end of a run, and re-adoption after a restart.
#include <signal.h>

#include <algorithm>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include "base/file.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "daemon/environment_spec.h"
#include "daemon/plan_builder.h"
#include "runtime/plan_json.h"
#include "runtime/state.h"

namespace sbx::daemon {

namespace {

constexpr int64_t kLaunchTimeoutMs = 60000;
constexpr int64_t kDefaultGraceMs = 10000;

int64_t grace_ms(const json& params) {
  double s = params.value("timeout", kDefaultGraceMs / 1000.0);
  constexpr double kMaxGraceS = 24.0 * 3600;  // longer waits are clamped: a day is "wait for it"
  return !(s > 0) ? 0 : static_cast<int64_t>(std::min(s, kMaxGraceS) * 1000);
}

// The exit file the monitor writes when the sandbox's run ends.
struct ExitRecord {
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool oom_killed = false;
  json usage = json::object();  // cpu_user_us, cpu_system_us, peak_rss_bytes of the main command, when recorded
};

std::optional<ExitRecord> read_exit_file(const std::string& path) {
  auto text = read_file(path, 1 << 16);
  if (!text.ok()) {
    return std::nullopt;
  }
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  ExitRecord r;
  if (j.contains("exit_code") && j["exit_code"].is_number_integer()) {
    r.exit_code = j["exit_code"].get<int>();
  }
  if (j.contains("signal") && j["signal"].is_number_integer()) {
    r.signal = j["signal"].get<int>();
  }
  r.oom_killed = j.value("oom_killed", false);
  for (const char* key : {"cpu_user_us", "cpu_system_us", "peak_rss_bytes"}) {
    if (j.contains(key) && j[key].is_number_unsigned()) {
      r.usage[key] = j[key];
    }
  }
  return r;
}

std::string describe_wait(std::optional<int> status) {
  if (!status) {
    return "unknown status";
  }
  if (WIFSIGNALED(*status)) {
    return fmt::format("killed by signal {}", WTERMSIG(*status));
  }
  return fmt::format("exit status {}", WEXITSTATUS(*status));
}

}  // namespace

// Starting one run: the monitor is spawned with the spec on its socket; its first line says whether the sandbox
// came up. Owned by the entry until then.
class Launch {
 public:
  Launch(Daemon& d, std::string id, std::function<void(Result<void>)> done)
      : d_(d), id_(std::move(id)), done_(std::move(done)) {}

  // begin() failed: clean up and report through `done`.
  void abort(Error error) { fail(std::move(error)); }

  Result<void> begin(const json& spec, const std::vector<int>& fds) {
    SBX_ASSIGN(Daemon::MonitorChild m, d_.start_sandbox_monitor(spec, fds));
    Fd ours = std::move(m.socket);
    pid_ = m.child.pid;
    SBX_ASSIGN(watch_, ProcessWatch::start(d_.loop(), m.child.pid, std::move(m.child.pidfd),
                                           [this](std::optional<int> st) { on_exit(st); }));
    pipe_ = UvHandle<uv_pipe_t>::make();
    uv_pipe_init(d_.loop(), pipe_.get(), 0);
    if (int rc = uv_pipe_open(pipe_.get(), ours.get()); rc < 0) {
      return make_error("watch the monitor's socket: {}", uv_strerror(rc));
    }
    sock_ = ours.release();
    pipe_.get()->data = this;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(pipe_.get()),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char chunk[4096];
          *buf = uv_buf_init(chunk, sizeof chunk);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          if (s->data != nullptr && n > 0) {
            static_cast<Launch*>(s->data)->on_data(buf->base, static_cast<size_t>(n));
          } else if (s->data != nullptr && n < 0) {
            uv_read_stop(s);
          }
        });
    timer_ = UvHandle<uv_timer_t>::make();
    uv_timer_init(d_.loop(), timer_.get());
    timer_.get()->data = this;
    uv_timer_start(timer_.get(), [](uv_timer_t* t) {
      if (t->data != nullptr) {
        static_cast<Launch*>(t->data)->on_timeout();
      }
    }, kLaunchTimeoutMs, 0);
    return ok();
  }

 private:
  void on_data(const char* data, size_t n) {
    buf_.append(data, n);
    size_t nl = buf_.find('\n');
    if (nl == std::string::npos) {
      if (buf_.size() > 1 << 20) {
        fail(make_error("the monitor sent an oversized line"));
      }
      return;
    }
    json j = json::parse(buf_.substr(0, nl), nullptr, false);
    if (!j.is_object()) {
      return fail(make_error("the monitor sent an unreadable report"));
    }
    if (!j.value("ok", false)) {
      json err = j.value("error", json::object());
      return fail(Error(err.value("message", "the monitor failed without saying why"), err.value("errno", 0)));
    }
    ready(j);
  }

  void ready(const json& report) {
    SandboxEntry* e = d_.entry(id_);
    SandboxRow& row = e->row;
    row.state = "running";
    row.started_at = api::now_ms();
    row.finished_at = 0;
    row.exit_code.reset();
    row.exit_signal.reset();
    row.oom_killed = false;
    row.error.clear();
    row.monitor_pid = pid_;
    auto start = rt::process_start_time(pid_);
    row.monitor_start = start.ok() ? *start : 0;
    log_info("sandbox={}: running (monitor {}, init {})", id_, pid_, report.value("init_pid", 0));
    std::string id = id_;
    Daemon& d = d_;
    watch_->set_callback([&d, id](std::optional<int> st) { d.on_run_end(id, st); });
    e->monitor = std::move(watch_);
    if (auto r = d_.save(row); !r.ok()) {
      log_error("sandbox={}: save state: {}", id_, r.error().message());
    }
    finish(ok());
  }

  void fail(Error error) {
    if (finished_) {
      return;
    }
    // The monitor cleans up after itself and exits; reap it, and make sure nothing of the sandbox is left.
    if (watch_) {
      (void)watch_->signal(SIGKILL);
      d_.reap_later(std::move(watch_));
    }
    if (auto r = d_.runtime().destroy(id_); !r.ok()) {
      log_warn("sandbox={}: clean up after a failed start: {}", id_, r.error().message());
    }
    finish(std::move(error).context(fmt::format("start sandbox '{}'", id_)));
  }

  void on_exit(std::optional<int> status) {
    // The report may still be unread in the socket: take it first.
    char chunk[4096];
    ssize_t n;
    while (!finished_ && sock_ >= 0 && (n = ::read(sock_, chunk, sizeof chunk)) > 0) {
      on_data(chunk, static_cast<size_t>(n));
    }
    if (finished_) {
      // Up and already ended: the run's end goes the normal way.
      d_.on_run_end(id_, status);
      return;
    }
    watch_.reset();  // already reaped by the watch
    fail(make_error("the monitor exited ({}) before the sandbox came up", describe_wait(status)));
  }

  void on_timeout() { fail(make_error("the sandbox did not come up within {} s", kLaunchTimeoutMs / 1000)); }

  void finish(Result<void> r) {
    if (finished_) {
      return;
    }
    finished_ = true;
    timer_.reset();
    pipe_.reset();
    sock_ = -1;
    auto done = std::move(done_);
    SandboxEntry* e = d_.entry(id_);
    std::shared_ptr<Launch> self = e != nullptr ? std::move(e->launch) : nullptr;
    done(std::move(r));  // may remove the entry; `self` keeps this alive to the end of the function
    d_.replenish_spare_monitor();  // after the reply, which is written at once when the socket can take it
  }

  Daemon& d_;
  std::string id_;
  std::function<void(Result<void>)> done_;
  pid_t pid_ = 0;
  int sock_ = -1;  // owned by pipe_
  std::unique_ptr<ProcessWatch> watch_;
  UvHandle<uv_pipe_t> pipe_;
  UvHandle<uv_timer_t> timer_;
  std::string buf_;
  bool finished_ = false;
};

void Daemon::reap_later(std::unique_ptr<ProcessWatch> watch) {
  ProcessWatch* raw = watch.get();
  raw->set_callback([this, raw](std::optional<int>) {
    auto it = reaping_.find(raw);
    if (it != reaping_.end()) {
      auto keep = std::move(it->second);
      reaping_.erase(it);
    }
  });
  reaping_[raw] = std::move(watch);
}

void Daemon::launch(SandboxEntry& e, std::function<void(Result<void>)> done, const MainStdio& stdio) {
  auto plan = build_plan(e.row.id, e.row.spec, config_);
  if (plan.ok()) {
    if (auto r = add_network(e, *plan); !r.ok()) {
      plan = r.error();
    }
  }
  if (plan.ok()) {
    if (auto userns = userns_->plan(e.row); userns.ok()) {
      plan->userns = std::move(*userns);
    } else {
      plan = userns.error();
    }
  }
  if (!plan.ok()) {
    done(plan.error());
    return;
  }
  // A fresh run: the previous run's log, exit record and usage go.
  e.last_usage = json::object();
  (void)::unlink(exit_path(e.row.id).c_str());
  (void)::unlink(log_path(e.row.id).c_str());
  (void)::unlink((log_path(e.row.id) + ".1").c_str());
  json spec = {{"runtime", runtime_spec()},
               {"plan", rt::plan_to_json(*plan)},
               {"exit_path", exit_path(e.row.id)},
               {"exec_socket", exec_socket_path(e.row.id)}};
  if (stdio.fds.empty()) {
    spec["log_path"] = log_path(e.row.id);
    spec["log_max_bytes"] = config_.log_max_bytes;
  } else {
    spec["stdio"] = stdio.names;  // sandbox.run: the main command writes to the caller's pipes, not to a log
  }
  e.launch = std::make_shared<Launch>(*this, e.row.id, std::move(done));
  if (auto r = e.launch->begin(spec, stdio.fds); !r.ok()) {
    auto l = std::move(e.launch);
    (void)runtime_->destroy(e.row.id);
    l->abort(std::move(r).error());
  }
}

Result<void> Daemon::add_network(const SandboxEntry& e, rt::Plan& plan) {
  SBX_ASSIGN(plan.network, network_->plan(e.row));
  if (!plan.network) {
    return ok();
  }
  std::string resolv = sandbox_dir(e.row.id) + "/resolv.conf";
  SBX_TRY(create_file(resolv, network_->resolv_conf(), 0644));
  plan.mounts.push_back({resolv, "/etc/resolv.conf", true});
  return ok();
}

// ---- the end of a run ----

void Daemon::on_run_end(const std::string& id, std::optional<int> monitor_status) {
  SandboxEntry* e = entry(id);
  if (e == nullptr) {
    return;
  }
  auto watch = std::move(e->monitor);  // fired: done with it (destroyed at the end of this function)
  if (auto rec = read_exit_file(exit_path(id))) {
    (void)::unlink(exit_path(id).c_str());
    e->last_usage = rec->usage;
    finish_run(*e, rec->exit_code, rec->signal, rec->oom_killed, "");
    return;
  }
  if (!e->watching_init) {
    // The monitor ended without recording the end: if init still runs, watch it directly.
    auto state = rt::read_state(run_state_path(id));
    if (state.ok()) {
      if (auto pidfd = rt::open_init_pidfd(*state); pidfd.ok()) {
        log_warn("sandbox={}: its monitor exited ({}) but the sandbox runs on: watching init", id,
                 describe_wait(monitor_status));
        auto w = ProcessWatch::start(loop_, state->init_pid, std::move(*pidfd),
                                     [this, id](std::optional<int> st) { on_run_end(id, st); });
        if (w.ok()) {
          e->watching_init = true;
          e->monitor = std::move(*w);
          return;
        }
      }
    }
  }
  if (auto r = runtime_->destroy(id); !r.ok()) {
    log_error("sandbox={}: free its resources: {}", id, r.error().message());
  }
  std::string why = e->watching_init ? "the sandbox ended without its monitor; its exit status is unknown"
                                     : fmt::format("the sandbox's monitor exited ({}) without recording the end",
                                                   describe_wait(monitor_status));
  finish_run(*e, std::nullopt, std::nullopt, false, why);
}

void Daemon::finish_run(SandboxEntry& e, std::optional<int> exit_code, std::optional<int> signal, bool oom,
                        std::string error) {
  SandboxRow& row = e.row;
  row.state = "exited";
  row.finished_at = api::now_ms();
  row.exit_code = exit_code;
  row.exit_signal = signal;
  row.oom_killed = oom;
  row.error = std::move(error);
  row.monitor_pid = 0;
  row.monitor_start = 0;
  e.stopping = false;
  e.watching_init = false;
  e.kill_timer.reset();
  if (auto r = save(row); !r.ok()) {
    log_error("sandbox={}: save state: {}", row.id, r.error().message());
  }
  log_info("sandbox={}: exited (code {}, signal {}{})", row.id, exit_code ? std::to_string(*exit_code) : "-",
           signal ? std::to_string(*signal) : "-", oom ? ", OOM-killed" : "");
  if (oom) {
    ++oom_kills_;
    emit("oom", row);
  }
  emit("exited", row, {{"exit_code", exit_code ? json(*exit_code) : json()},
                       {"signal", signal ? json(*signal) : json()},
                       {"oom_killed", oom},
                       {"error", row.error.empty() ? json() : json(row.error)}});
  auto waiters = std::move(e.on_exit);
  e.on_exit.clear();
  for (auto& fn : waiters) {
    fn();  // each looks its sandbox up again: one of them may remove it
  }
}

// ---- stopping and signals ----

Result<void> Daemon::signal_init(const SandboxRow& row, int sig) {
  SBX_ASSIGN(rt::SandboxState state, rt::read_state(run_state_path(row.id)));
  SBX_ASSIGN(Fd pidfd, rt::open_init_pidfd(state));
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), sig, nullptr, 0) < 0 && errno != ESRCH) {
    return sys_error("signal init of sandbox '{}'", row.id);
  }
  return ok();
}

void Daemon::stop(SandboxEntry& e, int64_t grace, std::function<void()> done) {
  if (e.row.state != "running") {
    done();
    return;
  }
  e.on_exit.push_back(std::move(done));
  if (e.stopping) {
    return;  // already on its way down; this waiter joins
  }
  e.stopping = true;
  const std::string id = e.row.id;
  auto kill_now = [this, id] {
    SandboxEntry* e = entry(id);
    if (e == nullptr || e->row.state != "running") {
      return;
    }
    e->kill_timer.reset();
    if (auto r = signal_init(e->row, SIGKILL); !r.ok()) {
      // init is gone already or unreadable: the cgroup still holds whatever is left
      (void)runtime_->cgroups().attach(id)->kill_all();
    }
  };
  if (grace == 0) {
    kill_now();
    return;
  }
  if (auto r = signal_init(e.row, SIGTERM); !r.ok()) {
    log_warn("sandbox={}: SIGTERM: {}", id, r.error().message());
  }
  e.kill_fn = kill_now;
  e.kill_timer = UvHandle<uv_timer_t>::make();
  uv_timer_init(loop_, e.kill_timer.get());
  e.kill_timer.get()->data = &e;
  uv_timer_start(e.kill_timer.get(), [](uv_timer_t* t) {
    if (t->data != nullptr) {
      auto fn = static_cast<SandboxEntry*>(t->data)->kill_fn;  // a copy: it resets the timer
      fn();
    }
  }, static_cast<uint64_t>(grace), 0);
}

Result<void> Daemon::remove(SandboxEntry& e) {
  const std::string id = e.row.id;
  if (auto r = runtime_->destroy(id); !r.ok()) {
    return std::move(r).error().context(fmt::format("remove sandbox '{}'", id));
  }
  SBX_TRY_CTX(network_->detach(e.row), "remove sandbox '{}'", id);
  SBX_TRY_CTX(userns_->detach(e.row), "remove sandbox '{}'", id);
  SBX_TRY_CTX(remove_tree(sandbox_dir(id)), "remove sandbox '{}'", id);
  SBX_TRY_CTX(store_->delete_sandbox(id), "remove sandbox '{}'", id);
  SandboxRow row = e.row;
  std::string reason = e.remove_reason;
  sandboxes_.erase(id);  // `e` is gone from here
  log_info("sandbox={}: removed{}", id, reason.empty() ? "" : " (" + reason + ")");
  emit("destroyed", row, reason.empty() ? json::object() : json{{"reason", reason}});
  collect_orphaned_image(row.spec.value("image", json()));
  return ok();
}

// A sandbox can be the last user of an image whose name has since moved to other content: its layers go now.
void Daemon::collect_orphaned_image(const json& image) {
  if (!image.is_object()) {
    return;
  }
  auto images = store_->images();
  if (images.ok() && std::none_of(images->begin(), images->end(),
                                  [&](const ImageRow& r) { return r.id == image.value("id", ""); })) {
    collect_garbage();
  }
}

// ---- handlers ----

// The request with its environment's defaults under it, its image resolved in the store, normalized.
Result<json> Daemon::normalize_create_call(const json& p, const CreatePolicy& policy) {
  json params = p;
  json environment;
  std::string env_ref;
  if (p.contains("environment")) {
    SBX_ASSIGN(EnvironmentRow env, find_environment(p["environment"].get<std::string>(), "environment"));
    params = apply_environment(p, env.spec);
    environment = env.spec;
    env_ref = fmt::format("{}@{}", env.name, env.version);
  }
  SBX_ASSIGN(json image, resolve_create_image(params, environment));
  SBX_ASSIGN(json spec, normalize_create(params, config_, policy, image));
  spec["environment"] = env_ref;
  return spec;
}

Result<SandboxEntry*> Daemon::admit_sandbox(const Caller& caller, const json& p) {
  if (p.contains("tenant") && caller.role == Role::kUser) {
    return api::api_error(api::kPermissionDenied, "uid {} may not act for a tenant", caller.uid);
  }
  SBX_TRY(check_quota(caller));
  CreatePolicy policy{caller.role == Role::kRoot};
  SBX_ASSIGN(json spec, normalize_create_call(p, policy));
  auto row = std::make_unique<SandboxEntry>();
  SandboxRow& r = row->row;
  r.id = new_id();
  r.name = p.value("name", r.id);
  SBX_TRY(check_name(r.name, "name"));
  for (const auto& [id, e] : sandboxes_) {
    bool same_scope = e->row.owner_uid == caller.uid && e->row.tenant == caller.tenant;
    if (e->row.name == r.name && (same_scope || caller.role == Role::kRoot)) {
      return api::api_error(api::kConflict, "a sandbox named '{}' already exists ({})", r.name, id);
    }
  }
  r.owner_uid = caller.uid;
  r.tenant = caller.tenant;
  r.state = "created";
  r.spec = std::move(spec);
  if (r.spec.value("hostname", "").empty()) {
    r.spec["hostname"] = r.name;  // the sandbox's hostname defaults to its name
  }
  r.created_at = api::now_ms();
  int64_t ttl = r.spec.value("ttl", int64_t(0));
  r.expires_at = ttl > 0 ? r.created_at + ttl * 1000 : 0;
  SBX_TRY(build_plan(r.id, r.spec, config_));  // an invalid request creates nothing
  const std::string id = r.id;
  SBX_TRY(make_dirs(sandbox_dir(id), 0700));
  if (auto saved = save(r); !saved.ok()) {
    forget_sandbox(id);
    return saved.error();
  }
  SandboxEntry* e = row.get();
  sandboxes_[id] = std::move(row);
  if (auto attached = network_->attach(e->row); !attached.ok()) {
    forget_sandbox(id);
    return attached.error();
  }
  if (auto attached = userns_->attach(e->row); !attached.ok()) {
    forget_sandbox(id);
    return attached.error();
  }
  return e;
}

void Daemon::forget_sandbox(const std::string& id) {
  if (SandboxEntry* e = entry(id)) {
    if (auto r = network_->detach(e->row); !r.ok()) {
      log_error("sandbox={}: {}", id, r.error().message());
    }
    if (auto r = userns_->detach(e->row); !r.ok()) {
      log_error("sandbox={}: {}", id, r.error().message());
    }
  }
  (void)remove_tree(sandbox_dir(id));
  (void)store_->delete_sandbox(id);
  sandboxes_.erase(id);
}

void Daemon::sandbox_create(CallPtr call) {
  auto admitted = admit_sandbox(call->caller(), call->params());
  if (!admitted.ok()) {
    return call->fail(admitted.error());
  }
  SandboxEntry& e = **admitted;
  if (!call->params().value("start", true)) {
    emit("created", e.row);
    return call->reply(describe(e));
  }
  const std::string id = e.row.id;
  launch(e, [this, call, id](Result<void> r) {
    if (!r.ok()) {
      forget_sandbox(id);  // a failed create leaves nothing behind
      return call->fail(r.error());
    }
    SandboxEntry* e = entry(id);
    emit("created", e->row);
    emit("started", e->row);
    call->reply(describe(*e));
  });
}

void Daemon::sandbox_start(CallPtr call) {
  auto e = find(call->caller(), call->params()["id"]);
  if (!e.ok()) {
    return call->fail(e.error());
  }
  SandboxEntry& s = **e;
  if (s.row.state == "running" || s.launch) {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is already running", s.row.name));
  }
  if (s.removing) {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is being removed", s.row.name));
  }
  const std::string id = s.row.id;
  launch(s, [this, call, id](Result<void> r) {
    if (!r.ok()) {
      return call->fail(r.error());
    }
    SandboxEntry* e = entry(id);
    emit("started", e->row);
    call->reply(describe(*e));
  });
}

void Daemon::sandbox_stop(CallPtr call) {
  auto e = find(call->caller(), call->params()["id"]);
  if (!e.ok()) {
    return call->fail(e.error());
  }
  if ((*e)->launch) {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is starting", (*e)->row.name));
  }
  const std::string id = (*e)->row.id;
  stop(**e, grace_ms(call->params()), [this, call, id] {
    SandboxEntry* e = entry(id);
    e != nullptr ? call->reply(describe(*e))
                 : call->fail(api::api_error(api::kNotFound, "sandbox '{}' was removed meanwhile", id));
  });
}

void Daemon::sandbox_restart(CallPtr call) {
  auto e = find(call->caller(), call->params()["id"]);
  if (!e.ok()) {
    return call->fail(e.error());
  }
  if ((*e)->launch || (*e)->removing) {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is starting or being removed",
                                     (*e)->row.name));
  }
  const std::string id = (*e)->row.id;
  stop(**e, grace_ms(call->params()), [this, call, id] {
    SandboxEntry* e = entry(id);
    if (e == nullptr || e->removing) {
      return call->fail(api::api_error(api::kNotFound, "sandbox '{}' was removed meanwhile", id));
    }
    launch(*e, [this, call, id](Result<void> r) {
      if (!r.ok()) {
        return call->fail(r.error());
      }
      SandboxEntry* e = entry(id);
      emit("started", e->row);
      call->reply(describe(*e));
    });
  });
}

void Daemon::sandbox_kill(CallPtr call) {
  auto e = find(call->caller(), call->params()["id"]);
  if (!e.ok()) {
    return call->fail(e.error());
  }
  auto sig = parse_signal(call->params().value("signal", json("KILL")), "signal");
  if (!sig.ok()) {
    return call->fail(sig.error());
  }
  if ((*e)->row.state != "running") {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is not running", (*e)->row.name));
  }
  auto r = signal_init((*e)->row, *sig);
  r.ok() ? call->reply(json::object()) : call->fail(r.error());
}

void Daemon::sandbox_remove(CallPtr call) {
  auto e = find(call->caller(), call->params()["id"]);
  if (!e.ok()) {
    return call->fail(e.error());
  }
  SandboxEntry& s = **e;
  bool force = call->params().value("force", false);
  if ((s.row.state == "running" || s.launch) && !force) {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is running: stop it first or use force",
                                     s.row.name));
  }
  if (s.launch) {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is starting; try again", s.row.name));
  }
  if (s.removing && s.row.state == "running") {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is already being removed", s.row.name));
  }
  s.removing = true;
  const std::string id = s.row.id;
  stop(s, 0, [this, call, id] {
    SandboxEntry* e = entry(id);
    if (e == nullptr) {
      return call->reply(json::object());
    }
    auto r = remove(*e);
    if (!r.ok()) {
      if (SandboxEntry* left = entry(id)) {
        left->removing = false;
      }
      log_error("sandbox={}: {}", id, r.error().message());
      return call->fail(r.error());
    }
    call->reply(json::object());
  });
}

void Daemon::sandbox_list(CallPtr call) {
  const json& p = call->params();
  std::string state = p.value("state", "");
  std::vector<std::pair<std::string, std::optional<std::string>>> labels_wanted;  // key, and value when given
  if (p.contains("label")) {
    for (const auto& l : p["label"].is_array() ? p["label"] : json::array({p["label"]})) {
      std::string text = l.get<std::string>();
      size_t eq = text.find('=');
      labels_wanted.emplace_back(text.substr(0, eq), eq == std::string::npos ? std::nullopt
                                                                               : std::optional(text.substr(eq + 1)));
    }
  }
  json out = json::array();
  for (const auto& [id, e] : sandboxes_) {
    const SandboxRow& r = e->row;
    if (!may_see(call->caller(), r) || (!state.empty() && r.state != state) ||
        (p.contains("owner") && r.owner_uid != p["owner"].get<uint32_t>()) ||
        (p.contains("tenant") && r.tenant != p["tenant"].get<std::string>())) {
      continue;
    }
    json labels = r.spec.value("labels", json::object());
    bool match = true;
    for (const auto& [key, value] : labels_wanted) {
      match = match && labels.contains(key) && (!value || labels[key] == *value);
    }
    if (!match) {
      continue;
    }
    out.push_back(describe(*e));
  }
  call->reply({{"sandboxes", out}});
}

void Daemon::sandbox_inspect(CallPtr call) {
  auto e = find(call->caller(), call->params()["id"]);
  e.ok() ? call->reply(describe(**e)) : call->fail(e.error());
}

void Daemon::sandbox_stats(CallPtr call) {
  auto e = find(call->caller(), call->params()["id"]);
  if (!e.ok()) {
    return call->fail(e.error());
  }
  if ((*e)->row.state != "running") {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is not running", (*e)->row.name));
  }
  auto s = runtime_->stats((*e)->row.id);
  if (!s.ok()) {
    return call->fail(s.error());
  }
  json out = {{"cpu_usage_usec", s->cpu_usage_usec}, {"cpu_nr_periods", s->cpu_nr_periods},
              {"cpu_nr_throttled", s->cpu_nr_throttled}, {"cpu_throttled_usec", s->cpu_throttled_usec},
              {"memory_current", s->memory_current}, {"memory_peak", s->memory_peak},
              {"oom_kills", s->oom_kills}, {"pids_current", s->pids_current}};
  // The veth's host end receives what the sandbox sends.
  if (auto net = runtime_->net_counters((*e)->row.id); net.ok() && net->has_value()) {
    out["network"] = {{"rx_bytes", (*net)->tx_bytes}, {"rx_packets", (*net)->tx_packets},
                      {"tx_bytes", (*net)->rx_bytes}, {"tx_packets", (*net)->rx_packets}};
  } else if (!net.ok()) {
    return call->fail(net.error());
  }
  call->reply(out);
}

// ---- re-adoption ----

void Daemon::adopt(SandboxEntry& e) {
  const std::string id = e.row.id;
  if (e.row.monitor_pid != 0) {
    auto pidfd = open_pidfd_checked(e.row.monitor_pid, e.row.monitor_start);
    if (pidfd.ok()) {
      auto w = ProcessWatch::start(loop_, e.row.monitor_pid, std::move(*pidfd),
                                   [this, id](std::optional<int> st) { on_run_end(id, st); });
      if (w.ok()) {
        e.monitor = std::move(*w);
        log_info("sandbox={}: re-adopted (monitor {})", id, e.row.monitor_pid);
        return;
      }
    }
  }
  // No monitor: on_run_end takes the exit record, or watches a still-running init, or frees what is left.
  on_run_end(id, std::nullopt);
  if (SandboxEntry* again = entry(id); again != nullptr && again->watching_init) {
    log_info("sandbox={}: re-adopted without its monitor (watching init)", id);
  }
}

}  // namespace sbx::daemon
