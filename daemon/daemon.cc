#include "daemon/daemon.h"

#include <dirent.h>
#include <grp.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "base/file.h"
#include "daemon/log.h"
#include "daemon/plan_builder.h"
#include "runtime/plan_json.h"
#include "runtime/state.h"

namespace sbx::daemon {

namespace {

const char* kVersion = SBX_VERSION;

rt::CgroupMode cgroup_mode(const std::string& name) {
  if (name == "v1") {
    return rt::CgroupMode::kV1;
  }
  if (name == "v2") {
    return rt::CgroupMode::kV2;
  }
  return rt::CgroupMode::kAuto;
}

Result<void> make_dir(const std::string& path, mode_t mode) {
  SBX_TRY(make_dirs(path, mode));
  if (::chmod(path.c_str(), mode) < 0) {
    return sys_error("chmod '{}'", path);
  }
  return ok();
}

}  // namespace

struct Daemon::Subscriber {
  CallPtr call;
  Caller caller;
  std::set<std::string> types;
  std::string sandbox_id;
  uint64_t close_token = 0;
};

std::string new_id() {
  unsigned char bytes[6];
  if (::getrandom(bytes, sizeof bytes, 0) != sizeof bytes) {
    // getrandom cannot fail for 6 bytes once the pool is initialized; fall back to something unique anyway.
    uint64_t t = static_cast<uint64_t>(api::now_ms()) ^ (static_cast<uint64_t>(::getpid()) << 40);
    std::memcpy(bytes, &t, sizeof bytes);
  }
  std::string id;
  for (unsigned char b : bytes) {
    id += fmt::format("{:02x}", b);
  }
  return id;
}

Result<int> resolve_group(const std::string& group) {
  if (group.find_first_not_of("0123456789") == std::string::npos) {
    return std::atoi(group.c_str());
  }
  struct group gr {};
  struct group* found = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    return Error::from_errno(fmt::format("socket_group: no group named '{}'", group), rc != 0 ? rc : ENOENT);
  }
  return static_cast<int>(gr.gr_gid);
}

Daemon::Daemon(uv_loop_t* loop, DaemonConfig config) : loop_(loop), config_(std::move(config)) {}

Daemon::~Daemon() { *self_ = nullptr; }

Role Daemon::role_of(uint32_t uid) const {
  if (uid == 0) {
    return Role::kRoot;
  }
  if (std::find(config_.trusted_uids.begin(), config_.trusted_uids.end(), uid) != config_.trusted_uids.end()) {
    return Role::kTrusted;
  }
  return Role::kUser;
}

rt::RuntimeConfig Daemon::runtime_config() const {
  rt::RuntimeConfig rc;
  rc.run_root = config_.run_dir;
  rc.cgroup.mode = cgroup_mode(config_.cgroup_mode);
  rc.cgroup.root = config_.cgroup_root;
  rc.cgroup.parent = config_.cgroup_parent;
  rc.cgroup.parent_name = config_.cgroup_parent_name;
  // Compiled seccomp programs outlive the monitors that compile them: each sandbox's monitor is a fresh process,
  // and compiling the default profile takes ~11 ms, loading it from here ~0.1 ms.
  rc.seccomp_cache_dir = seccomp_cache_dir();
  return rc;
}

json Daemon::runtime_spec() const {
  return rt::runtime_config_to_json(runtime_config());
}

UvHandle<uv_timer_t> Daemon::start_periodic(uint64_t interval_ms, void (Daemon::*task)()) {
  auto timer = UvHandle<uv_timer_t>::make();
  uv_timer_init(loop_, timer.get());
  periodic_[timer.get()] = task;
  timer.get()->data = this;
  uv_timer_start(timer.get(), [](uv_timer_t* t) {
    if (auto* d = static_cast<Daemon*>(t->data)) {
      (d->*(d->periodic_.at(t)))();
    }
  }, interval_ms, interval_ms);
  return timer;
}

Result<void> Daemon::start() {
  started_ms_ = api::now_ms();
  SBX_TRY_CTX(make_dir(config_.state_dir, 0700), "create state dir");
  SBX_TRY_CTX(make_dir(config_.state_dir + "/sandboxes", 0700), "create state dir");
  SBX_TRY_CTX(make_dirs(config_.run_dir, 0711), "create run dir");
  SBX_ASSIGN(store_, Store::open(config_.state_dir + "/sbxd.db"));
  SBX_ASSIGN(runtime_, rt::Runtime::open(runtime_config()));
  SBX_ASSIGN(auto rows, store_->sandboxes());
  for (auto& row : rows) {
    auto e = std::make_unique<SandboxEntry>();
    e->row = std::move(row);
    std::string id = e->row.id;
    sandboxes_[id] = std::move(e);
  }
  network_ = std::make_unique<Network>(loop_, config_, *store_);
  SBX_TRY(check_userns_pool_on_host(config_));
  userns_ = std::make_unique<UsernsPool>(config_, *store_);
  reconcile();
  reconcile_network();
  SBX_TRY(open_image_store());
  sweep_ = UvHandle<uv_check_t>::make();
  uv_check_init(loop_, sweep_.get());
  sweep_.get()->data = this;
  uv_check_start(sweep_.get(), [](uv_check_t* h) {
    if (h->data != nullptr) {
      static_cast<Daemon*>(h->data)->graveyard_.clear();
    }
  });
  ttl_timer_ = start_periodic(1000, &Daemon::expire_ttls);
  prune_history();
  history_timer_ = start_periodic(kHistoryPruneIntervalMs, &Daemon::prune_history);
  ServerOptions so;
  so.socket_path = config_.socket;
  so.socket_mode = config_.socket_mode;
  so.max_request_bytes = config_.max_request_bytes;
  if (!config_.socket_group.empty()) {
    SBX_ASSIGN(so.socket_gid, resolve_group(config_.socket_group));
  }
  server_ = std::make_unique<Server>(loop_, so, [this](CallPtr c) { dispatch(std::move(c)); },
                                     [this](uint32_t uid) { return role_of(uid); });
  SBX_TRY(server_->listen());
  log_info("listening on {} (state {}, run {}, cgroup {}, {} sandboxes)", config_.socket, config_.state_dir,
           config_.run_dir, runtime_->cgroups().mode() == rt::CgroupMode::kV2 ? "v2" : "v1", sandboxes_.size());
  replenish_spare_monitor();
  return ok();
}

void Daemon::shutdown() {
  stopping_ = true;
  retire_spare_monitor();
  if (server_) {
    server_->close();
  }
  ttl_timer_.reset();
  history_timer_.reset();
  execs_.clear();
  followers_.clear();
  imports_.clear();
  graveyard_.clear();
  sweep_.reset();
  subscribers_.clear();
  for (auto& [id, e] : sandboxes_) {
    e->monitor.reset();
    e->kill_timer.reset();
    e->launch.reset();
  }
}

void Daemon::dispatch(CallPtr call) {
  using Handler = void (Daemon::*)(CallPtr);
  static const std::map<std::string, Handler> handlers = {
      {"daemon.info", &Daemon::daemon_info},         {"daemon.health", &Daemon::daemon_health},
      {"daemon.metrics", &Daemon::daemon_metrics},
      {"sandbox.create", &Daemon::sandbox_create},   {"sandbox.run", &Daemon::sandbox_run},
      {"sandbox.start", &Daemon::sandbox_start},
      {"sandbox.stop", &Daemon::sandbox_stop},       {"sandbox.restart", &Daemon::sandbox_restart},
      {"sandbox.kill", &Daemon::sandbox_kill},       {"sandbox.remove", &Daemon::sandbox_remove},
      {"sandbox.list", &Daemon::sandbox_list},       {"sandbox.inspect", &Daemon::sandbox_inspect},
      {"sandbox.stats", &Daemon::sandbox_stats},     {"sandbox.exec", &Daemon::sandbox_exec},
      {"sandbox.logs", &Daemon::sandbox_logs},       {"file.write", &Daemon::file_op},
      {"file.read", &Daemon::file_op},               {"file.list", &Daemon::file_op},
      {"file.remove", &Daemon::file_op},             {"events.subscribe", &Daemon::events_subscribe},
      {"events.list", &Daemon::events_list},         {"execs.list", &Daemon::execs_list},
      {"image.import", &Daemon::image_import},       {"image.data", &Daemon::image_data},
      {"image.list", &Daemon::image_list},           {"image.inspect", &Daemon::image_inspect},
      {"image.remove", &Daemon::image_remove},       {"environment.create", &Daemon::environment_create},
      {"environment.update", &Daemon::environment_update}, {"environment.list", &Daemon::environment_list},
      {"environment.inspect", &Daemon::environment_inspect},
      {"environment.remove", &Daemon::environment_remove},
      {"apikey.create", &Daemon::apikey_create},     {"apikey.list", &Daemon::apikey_list},
      {"apikey.revoke", &Daemon::apikey_revoke},     {"apikey.verify", &Daemon::apikey_verify},
  };
  auto it = handlers.find(call->method());
  if (it == handlers.end()) {
    call->fail(api::api_error(api::kMethodNotFound, "method not found: '{}'", call->method()));
    return;
  }
  log_debug("uid={} {}", call->caller().uid, call->method());
  (this->*(it->second))(call);
}

// ---- lookup and access ----

bool Daemon::may_see(const Caller& caller, const SandboxRow& row) const {
  if (!caller.tenant.empty()) {
    return row.tenant == caller.tenant;
  }
  if (caller.role == Role::kRoot) {
    return true;
  }
  return row.owner_uid == caller.uid && row.tenant.empty();
}

SandboxEntry* Daemon::entry(const std::string& id) {
  auto it = sandboxes_.find(id);
  return it == sandboxes_.end() ? nullptr : it->second.get();
}

Result<SandboxEntry*> Daemon::find(const Caller& caller, const json& key) {
  if (!key.is_string()) {
    return api::param_error("id", "must be a sandbox id or name");
  }
  const std::string& k = key.get_ref<const std::string&>();
  if (SandboxEntry* e = entry(k); e != nullptr && may_see(caller, e->row)) {
    return e;
  }
  SandboxEntry* found = nullptr;
  for (auto& [id, e] : sandboxes_) {
    if (e->row.name == k && may_see(caller, e->row)) {
      if (found != nullptr) {
        return api::api_error(api::kConflict, "the name '{}' matches several sandboxes; use the id", k);
      }
      found = e.get();
    }
  }
  if (found == nullptr) {
    return api::api_error(api::kNotFound, "no sandbox '{}'", k);
  }
  return found;
}

Result<void> Daemon::save(const SandboxRow& row) { return store_->put_sandbox(row); }

json Daemon::describe(const SandboxEntry& e) const {
  const SandboxRow& r = e.row;
  auto time_or_null = [](int64_t ms) { return ms != 0 ? json(api::format_time_ms(ms)) : json(); };
  auto opt = [](const std::optional<int>& v) { return v ? json(*v) : json(); };
  json limits = r.spec.value("limits", json::object());
  json image = r.spec.value("image", json());
  json out = {{"id", r.id},
              {"name", r.name},
              {"state", e.stopping && r.state == "running" ? "stopping" : r.state},
              {"owner_uid", r.owner_uid},
              {"tenant", r.tenant},
              {"labels", r.spec.value("labels", json::object())},
              {"rootfs", r.spec.value("rootfs", "")},
              {"image", image.is_object() ? image.value("name", "") : ""},
              {"image_id", image.is_object() ? image.value("id", "") : ""},
              {"environment", r.spec.value("environment", "")},
              {"network", network_->describe(r)},
              {"userns", userns_->describe(r)},
              {"limits", limits},
              {"ttl", r.spec.value("ttl", 0)},
              {"expires_at", time_or_null(r.expires_at)},
              {"created_at", time_or_null(r.created_at)},
              {"started_at", time_or_null(r.started_at)},
              {"finished_at", time_or_null(r.finished_at)},
              {"exit_code", opt(r.exit_code)},
              {"exit_signal", opt(r.exit_signal)},
              {"oom_killed", r.oom_killed},
              {"cmd", r.spec.value("cmd", json())},
              {"env", r.spec.value("env", json::array())},
              {"cwd", r.spec.value("cwd", "/")},
              {"user", fmt::format("{}:{}", r.spec.value("uid", 0), r.spec.value("gid", 0))},
              {"hostname", r.spec.value("hostname", "").empty() ? r.name : r.spec.value("hostname", "")},
              {"seccomp", r.spec.value("seccomp", "")},
              {"mounts", r.spec.value("mounts", json::array())},
              {"error", r.error.empty() ? json() : json(r.error)}};
  out["monitor_pid"] = r.state == "running" && r.monitor_pid != 0 ? json(r.monitor_pid) : json();
  out["init_pid"] = json();
  if (r.state == "running") {
    if (auto state = rt::read_state(run_state_path(r.id)); state.ok()) {
      out["init_pid"] = state->init_pid;  // the host pid of the sandbox's pid 1
    }
  }
  return out;
}

void Daemon::emit(const std::string& type, const SandboxRow& row, json details) {
  EventRow ev;
  ev.time = api::now_ms();
  ev.type = type;
  ev.sandbox_id = row.id;
  ev.name = row.name;
  ev.owner_uid = row.owner_uid;
  ev.tenant = row.tenant;
  ev.details = std::move(details);
  auto seq = store_->add_event(ev);
  if (!seq.ok()) {
    log_warn("sandbox={}: record event {}: {}", row.id, type, seq.error().message());
  }
  ev.seq = seq.ok() ? *seq : 0;
  json note = {{"seq", ev.seq}, {"type", type},       {"id", row.id},
               {"name", row.name}, {"time", api::format_time_ms(ev.time)}, {"details", ev.details}};
  for (auto& [token, sub] : subscribers_) {
    if (!may_see(sub->caller, row) || (!sub->types.empty() && !sub->types.count(type)) ||
        (!sub->sandbox_id.empty() && sub->sandbox_id != row.id)) {
      continue;
    }
    sub->call->notify("event", note);
  }
}

namespace {

Result<Spawned> spawn_monitor(const std::string& path, std::vector<std::string> argv, const int (&stdio)[3],
                              int channel, int nice = 0) {
  SpawnOptions so;
  so.path = path;
  so.argv = std::move(argv);
  for (int i = 0; i < 3; ++i) {
    so.fds[i] = stdio[i];
  }
  so.fds[3] = channel;
  so.new_session = true;
  so.nice = nice;
  return spawn_program(so);
}

// Kills a monitor that never got to run a sandbox, and reaps it.
void kill_and_reap(const Spawned& child) {
  ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);
  siginfo_t info{};
  ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(child.pidfd.get()), &info, WEXITED);
}

// Sends a monitor one line, with `fds` attached, while it reads it (a spec can exceed the socket's buffer). A monitor
// that died first makes this fail (EPIPE); it is then killed and reaped here, so a failure leaves no process behind.
Result<void> send_line(const Spawned& child, int socket, const json& line, const std::vector<int>& fds = {}) {
  if (auto w = send_with_fds(socket, api::dump_json(line) + "\n", fds); !w.ok()) {
    kill_and_reap(child);
    return w;
  }
  return ok();
}

constexpr int kSandboxMonitorStdio[3] = {-1, -1, STDERR_FILENO};
// A spare starts up while sandboxes run: at a low priority, so that it yields to them; it returns to nice 0 before
// it waits for its spec, so the sandbox it creates does not inherit the low priority.
constexpr int kSpareNice = 10;

}  // namespace

Result<Daemon::MonitorChild> Daemon::start_monitor(const char* mode, const int (&stdio)[3], const json& spec,
                                                   const std::vector<int>& fds) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    return sys_error("create the socket of an sbx-monitor {}", mode);
  }
  Fd ours(sv[0]);
  Fd theirs(sv[1]);
  SBX_ASSIGN(Spawned child, spawn_monitor(monitor_path(), {"sbx-monitor", mode}, stdio, theirs.get()));
  theirs.reset();
  SBX_TRY_CTX(send_line(child, ours.get(), spec, fds), "send sbx-monitor {} its spec", mode);
  return MonitorChild{std::move(child), std::move(ours)};
}

Result<Daemon::MonitorChild> Daemon::start_sandbox_monitor(const json& spec, const std::vector<int>& fds) {
  if (auto spare = take_spare_monitor()) {
    if (auto sent = send_line(spare->child, spare->socket.get(), spec, fds); sent.ok()) {
      return std::move(*spare);
    } else {
      log_warn("the spare sbx-monitor {} did not take its spec ({}); starting another", spare->child.pid,
               sent.error().message());
    }
  }
  return start_monitor("sandbox", kSandboxMonitorStdio, spec, fds);
}

std::string Daemon::monitor_path() const {
  return config_.monitor.empty() ? default_monitor_path() : config_.monitor;
}

namespace {

// Runs on libuv's thread pool: the fork (CLONE_VFORK: the calling thread waits until the child has exec'd) and the
// prelude would otherwise hold up the loop, and with it the request that follows the create.
Result<Daemon::MonitorChild> start_spare_process(const std::string& monitor, const std::string& prelude) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    return sys_error("create the socket of a spare sbx-monitor");
  }
  Fd ours(sv[0]);
  Fd theirs(sv[1]);
  SBX_ASSIGN(Spawned child, spawn_monitor(monitor, {"sbx-monitor", "sandbox", "--spare"}, kSandboxMonitorStdio,
                                          theirs.get(), kSpareNice));
  theirs.reset();
  if (auto w = write_all(ours.get(), prelude); !w.ok()) {
    kill_and_reap(child);
    return std::move(w).error().context("send the spare sbx-monitor its prelude");
  }
  return Daemon::MonitorChild{std::move(child), std::move(ours)};
}

}  // namespace

void Daemon::replenish_spare_monitor() {
  if (!config_.spare_monitor || stopping_ || spare_ || spare_starting_) {
    return;
  }
  struct Work {
    uv_work_t req;
    std::shared_ptr<Daemon*> owner;  // null inside once the daemon is gone
    std::string monitor;
    std::string prelude;
    Result<MonitorChild> result = Error("not started");
  };
  auto* w = new Work{{}, self_, monitor_path(), api::dump_json(json{{"runtime", runtime_spec()}}) + "\n"};
  w->req.data = w;
  spare_starting_ = true;
  uv_queue_work(
      loop_, &w->req,
      [](uv_work_t* r) {
        auto* w = static_cast<Work*>(r->data);
        w->result = start_spare_process(w->monitor, w->prelude);
      },
      [](uv_work_t* r, int) {
        std::unique_ptr<Work> w(static_cast<Work*>(r->data));
        Daemon* d = *w->owner;
        if (d == nullptr) {
          if (w->result.ok()) {
            kill_and_reap(w->result->child);
          }
          return;
        }
        d->spare_starting_ = false;
        d->adopt_spare_monitor(std::move(w->result));
      });
}

void Daemon::adopt_spare_monitor(Result<MonitorChild> started) {
  if (!started.ok()) {
    log_warn("start a spare sbx-monitor: {}", started.error().message());
    return;
  }
  MonitorChild& m = *started;
  if (stopping_ || spare_) {
    kill_and_reap(m.child);
    return;
  }
  int dup = ::fcntl(m.child.pidfd.get(), F_DUPFD_CLOEXEC, 3);
  if (dup < 0) {
    log_warn("start a spare sbx-monitor: duplicate its pidfd: {}", std::strerror(errno));
    kill_and_reap(m.child);
    return;
  }
  const pid_t pid = m.child.pid;
  auto watch = ProcessWatch::start(loop_, pid, Fd(dup), [this, pid](std::optional<int> status) {
    log_warn("the spare sbx-monitor {} exited before it was used ({})", pid,
             status ? fmt::format("wait status {}", *status) : std::string("status unknown"));
    spare_.reset();  // destroys the watch from its own callback: ProcessWatch allows that (as reap_later does)
  });
  if (!watch.ok()) {
    log_warn("start a spare sbx-monitor: {}", watch.error().message());
    kill_and_reap(m.child);
    return;
  }
  spare_ = SpareMonitor{std::move(m), std::move(*watch)};
}

std::optional<Daemon::MonitorChild> Daemon::take_spare_monitor() {
  if (!spare_) {
    return std::nullopt;
  }
  SpareMonitor spare = std::move(*spare_);
  spare_.reset();
  spare.watch.reset();  // the caller watches (and reaps) it from here on
  return std::move(spare.monitor);
}

void Daemon::retire_spare_monitor() {
  if (auto spare = take_spare_monitor()) {
    kill_and_reap(spare->child);
  }
}

// ---- daemon.* ----

void Daemon::daemon_info(CallPtr call) {
  json counts = {{"total", 0}, {"created", 0}, {"running", 0}, {"exited", 0}};
  for (auto& [id, e] : sandboxes_) {
    if (may_see(call->caller(), e->row)) {  // only what the caller may see: no count of others' sandboxes
      counts["total"] = counts["total"].get<int>() + 1;
      counts[e->row.state] = counts[e->row.state].get<int>() + 1;
    }
  }
  const Caller& c = call->caller();
  call->reply({{"version", kVersion},
               {"api_version", api::kApiVersion},
               {"cgroup_mode", runtime_->cgroups().mode() == rt::CgroupMode::kV2 ? "v2" : "v1"},
               {"sandboxes", counts},
               {"execs_running", execs_.size()},
               {"pid", ::getpid()},
               {"uptime_s", (api::now_ms() - started_ms_) / 1000},
               {"caller", {{"uid", c.uid}, {"gid", c.gid}, {"pid", c.pid}, {"role", role_name(c.role)},
                           {"tenant", c.tenant}}}});
}

void Daemon::daemon_health(CallPtr call) {
  json checks = json::object();
  bool healthy = true;
  auto check = [&](const char* name, Result<void> r) {
    checks[name] = r.ok() ? "ok" : r.error().message();
    healthy = healthy && r.ok();
  };
  check("database", store_->check());
  check("run_dir", ::access(config_.run_dir.c_str(), W_OK) == 0 ? ok()
                                                                : Result<void>(sys_error("'{}'", config_.run_dir)));
  auto listed = runtime_->list();
  check("cgroups", listed.ok() ? ok() : Result<void>(listed.error()));
  std::string monitor = monitor_path();
  check("monitor", ::access(monitor.c_str(), X_OK) == 0 ? ok() : Result<void>(sys_error("'{}'", monitor)));
  call->reply({{"status", healthy ? "ok" : "degraded"}, {"checks", checks}});
}

void Daemon::daemon_metrics(CallPtr call) {
  const Caller& c = call->caller();
  if (c.role != Role::kRoot && c.role != Role::kTrusted) {
    call->fail(api::api_error(api::kPermissionDenied, "uid {} may not read daemon metrics (root and trusted callers "
                                                      "only)", c.uid));
    return;
  }
  // Over every sandbox, whoever owns it: an operator's view, which is why plain users may not ask.
  json counts = {{"created", 0}, {"running", 0}, {"exited", 0}};
  for (auto& [id, e] : sandboxes_) {
    counts[e->row.state] = counts.value(e->row.state, 0) + 1;
  }
  call->reply({{"sandboxes", counts}, {"oom_kills", oom_kills_}, {"execs_running", execs_.size()}});
}

// ---- events.* and execs.list ----

void Daemon::events_subscribe(CallPtr call) {
  auto conn = call->connection();
  if (!conn) {
    return;
  }
  auto sub = std::make_unique<Subscriber>();
  sub->call = call;
  sub->caller = call->caller();
  for (const auto& t : call->params().value("types", json::array())) {
    static const std::set<std::string> known = {"created", "started", "exited", "oom", "destroyed"};
    if (!known.count(t.get<std::string>())) {
      call->fail(api::param_error("types", fmt::format("unknown event type '{}'", t.get<std::string>())));
      return;
    }
    sub->types.insert(t.get<std::string>());
  }
  if (call->params().contains("id")) {
    auto e = find(call->caller(), call->params()["id"]);
    if (!e.ok()) {
      call->fail(e.error());
      return;
    }
    sub->sandbox_id = (*e)->row.id;
  }
  uint64_t token = next_session_++;
  sub->close_token = conn->on_close([this, token] { subscribers_.erase(token); });
  subscribers_[token] = std::move(sub);
  call->reply(json::object());
}

RecordFilter Daemon::record_filter(const Caller& caller, const json& params, Result<void>* error) {
  RecordFilter f;
  if (!caller.tenant.empty()) {
    f.tenant = caller.tenant;
  } else if (caller.role != Role::kRoot) {
    f.owner_uid = caller.uid;
    f.tenant = "";
  }
  if (params.contains("id")) {
    const std::string& key = params["id"].get_ref<const std::string&>();
    auto e = find(caller, key);
    if (e.ok()) {
      f.sandbox_id = (*e)->row.id;
    } else if (e.error().code() == api::kNotFound) {
      f.sandbox_id = key;  // records outlive their sandbox: a removed sandbox's id still selects them
    } else {
      *error = e.error();
    }
  }
  return f;
}

void Daemon::events_list(CallPtr call) {
  Result<void> error;
  RecordFilter f = record_filter(call->caller(), call->params(), &error);
  if (!error.ok()) {
    return call->fail(error.error());
  }
  auto rows = store_->events(f, std::clamp<int>(call->params().value("limit", 100), 1, 10000));
  if (!rows.ok()) {
    return call->fail(rows.error());
  }
  json out = json::array();
  for (const auto& r : *rows) {
    out.push_back({{"seq", r.seq}, {"type", r.type}, {"id", r.sandbox_id}, {"name", r.name},
                   {"time", api::format_time_ms(r.time)}, {"details", r.details}});
  }
  call->reply({{"events", out}});
}

void Daemon::execs_list(CallPtr call) {
  Result<void> error;
  RecordFilter f = record_filter(call->caller(), call->params(), &error);
  if (!error.ok()) {
    return call->fail(error.error());
  }
  auto rows = store_->execs(f, std::clamp<int>(call->params().value("limit", 50), 1, 10000));
  if (!rows.ok()) {
    return call->fail(rows.error());
  }
  json out = json::array();
  for (const auto& r : *rows) {
    out.push_back({{"exec_id", r.exec_id}, {"id", r.sandbox_id}, {"argv", r.argv},
                   {"started_at", api::format_time_ms(r.started_at)}, {"duration_ms", r.duration_ms},
                   {"exit_code", r.exit_code ? json(*r.exit_code) : json()},
                   {"signal", r.signal ? json(*r.signal) : json()}, {"timed_out", r.timed_out},
                   {"oom_killed", r.oom_killed}, {"cpu_user_us", r.cpu_user_us}, {"cpu_system_us", r.cpu_system_us},
                   {"peak_rss_bytes", r.peak_rss_bytes}, {"caller_uid", r.caller_uid},
                   {"error", r.error.empty() ? json() : json(r.error)}});
  }
  call->reply({{"execs", out}});
}

// ---- reconciliation ----

void Daemon::reconcile() {
  std::set<std::string> leftovers;
  if (auto ids = runtime_->list(); ids.ok()) {
    leftovers.insert(ids->begin(), ids->end());
  } else {
    log_warn("reconcile: list the runtime's sandboxes: {}", ids.error().message());
  }
  std::vector<std::string> ids;
  for (auto& [id, e] : sandboxes_) {
    ids.push_back(id);
  }
  for (const auto& id : ids) {
    SandboxEntry* e = entry(id);
    if (e->row.state == "running") {
      leftovers.erase(id);
      adopt(*e);
    } else if (leftovers.count(id)) {
      // Not running by our records, yet kernel objects remain (a crash mid-teardown): free them.
      if (auto r = runtime_->destroy(id); !r.ok()) {
        log_warn("sandbox={}: free leftovers: {}", id, r.error().message());
      }
      leftovers.erase(id);
    }
  }
  for (const auto& id : leftovers) {
    // In our run dir or under our cgroup parent, yet unknown to the database: ours, and orphaned.
    log_warn("sandbox={}: orphan (not in the database): destroying it", id);
    if (auto r = runtime_->destroy(id); !r.ok()) {
      log_warn("sandbox={}: destroy orphan: {}", id, r.error().message());
    }
  }
  remove_stray_dirs();
}

void Daemon::reconcile_network() {
  std::vector<const SandboxRow*> rows;
  std::set<std::string> running;
  for (const auto& [id, e] : sandboxes_) {
    rows.push_back(&e->row);
    if (e->row.state == "running") {
      running.insert(id);
    }
  }
  if (auto r = network_->start(rows, running); !r.ok()) {
    log_error("network: {} (sandboxes in bridge mode cannot start)", r.error().message());
  }
  if (auto r = userns_->start(rows); !r.ok()) {
    log_error("userns: {} (sandboxes with a user namespace but no range cannot start)", r.error().message());
  }
}

void Daemon::remove_stray_dirs() {
  auto names = list_dir(config_.state_dir + "/sandboxes");
  if (!names.ok()) {
    return;
  }
  for (const auto& name : *names) {
    if (!sandboxes_.count(name)) {
      log_warn("removing stray sandbox directory {}", sandbox_dir(name));
      (void)remove_tree(sandbox_dir(name));
    }
  }
}

void Daemon::prune_history() {
  if (config_.history_days <= 0) {
    return;
  }
  constexpr int64_t kDayMs = 24 * 3600 * 1000;
  const int64_t now = api::now_ms();
  // A retention longer than the epoch is old deletes nothing (and must not overflow).
  const int64_t cutoff = config_.history_days >= now / kDayMs ? 0 : now - config_.history_days * kDayMs;
  auto pruned = store_->prune_history(cutoff);
  if (!pruned.ok()) {
    log_warn("prune the history older than {} days: {}", config_.history_days, pruned.error().message());
  } else if (pruned->execs > 0 || pruned->events > 0) {
    log_info("pruned {} exec records and {} events older than {} days", pruned->execs, pruned->events,
             config_.history_days);
  }
}

void Daemon::expire_ttls() {
  int64_t now = api::now_ms();
  std::vector<std::string> expired;
  for (auto& [id, e] : sandboxes_) {
    if (e->row.expires_at != 0 && now >= e->row.expires_at && !e->removing) {
      expired.push_back(id);
    }
  }
  for (const auto& id : expired) {
    SandboxEntry* e = entry(id);
    log_info("sandbox={}: TTL expired: removing it", id);
    e->removing = true;
    e->remove_reason = "ttl";
    stop(*e, 0, [this, id] {
      if (SandboxEntry* e = entry(id)) {
        if (auto r = remove(*e); !r.ok()) {
          log_error("sandbox={}: remove after TTL: {}", id, r.error().message());
        }
      }
    });
  }
}

Result<void> Daemon::check_quota(const Caller& caller) const {
  if (static_cast<int64_t>(sandboxes_.size()) >= config_.max_sandboxes) {
    return api::api_error(api::kLimitExceeded, "the daemon holds its maximum of {} sandboxes (max_sandboxes)",
                          config_.max_sandboxes);
  }
  int64_t mine = 0;
  for (const auto& [id, e] : sandboxes_) {
    bool same = caller.tenant.empty() ? (e->row.owner_uid == caller.uid && e->row.tenant.empty())
                                      : e->row.tenant == caller.tenant;
    mine += same ? 1 : 0;
  }
  if (caller.role != Role::kRoot && mine >= config_.max_sandboxes_per_owner) {
    return api::api_error(api::kLimitExceeded, "{} already has {} sandboxes (max_sandboxes_per_owner)",
                          caller.tenant.empty() ? fmt::format("uid {}", caller.uid) : "tenant " + caller.tenant,
                          mine);
  }
  return ok();
}

}  // namespace sbx::daemon
