#pragma once
// sbxd's core: the sandboxes it manages (mirrored in the store), their monitors, the RPC method handlers, events,
// TTLs, and reconciliation with the kernel at start-up. Everything runs on one libuv loop, on one thread.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/child.h"
#include "daemon/config.h"
#include "daemon/network.h"
#include "daemon/userns_pool.h"
#include "daemon/plan_builder.h"
#include "daemon/server.h"
#include "daemon/store.h"
#include "daemon/uv_handle.h"
#include "runtime/runtime.h"


namespace sbx::daemon {

class ExecSession;
class ImageImport;
class LogFollower;
class Launch;
struct ImageUsers;

// One sandbox as the daemon tracks it: its row plus what exists only while the daemon runs.
struct SandboxEntry {
  SandboxRow row;
  std::unique_ptr<ProcessWatch> monitor;  // the sandbox's monitor (or, adopted without one, its init)
  bool watching_init = false;             // monitor gone but init alive: watching init itself
  std::shared_ptr<Launch> launch;  // shared_ptr: destroyable where Launch is incomplete         // while a monitor is starting the sandbox
  bool stopping = false;
  bool removing = false;
  std::string remove_reason;              // "ttl" when the TTL removed it
  std::vector<std::function<void()>> on_exit;  // run once when the current run ends (stop/restart/remove waiters)
  json last_usage;  // what the last run's main command used, from its exit record: {cpu_user_us, ...}; not stored
  UvHandle<uv_timer_t> kill_timer;  // SIGKILL after the grace period (data: this entry)
  std::function<void()> kill_fn;
};

class Daemon {
 public:
  Daemon(uv_loop_t* loop, DaemonConfig config);
  ~Daemon();

  // Opens the store and the runtime, reconciles with the kernel, starts the TTL timer, listens on the socket.
  Result<void> start();
  // Stops accepting and closes connections; sandboxes keep running.
  void shutdown();

  void dispatch(CallPtr call);

  // Used by the handler files.
  const DaemonConfig& config() const { return config_; }
  uv_loop_t* loop() const { return loop_; }
  Store& store() { return *store_; }
  rt::Runtime& runtime() { return *runtime_; }
  Role role_of(uint32_t uid) const;
  std::string sandbox_dir(const std::string& id) const { return config_.state_dir + "/sandboxes/" + id; }
  std::string log_path(const std::string& id) const { return sandbox_dir(id) + "/main.log"; }
  std::string exit_path(const std::string& id) const { return sandbox_dir(id) + "/exit.json"; }
  std::string run_state_path(const std::string& id) const { return config_.run_dir + "/" + id + "/state.json"; }
  // Where a running sandbox's monitor accepts execs (monitor/exec_server.cc).
  std::string exec_socket_path(const std::string& id) const { return config_.run_dir + "/" + id + "/monitor.sock"; }
  // The runtime's configuration: sbxd's own, and (as JSON) the runtime part of every monitor spec.
  rt::RuntimeConfig runtime_config() const;
  json runtime_spec() const;
  std::string monitor_path() const;  // the sbx-monitor program
  std::string seccomp_cache_dir() const { return config_.state_dir + "/seccomp-cache"; }

  // The sandbox `key` (id or name) names, if the caller may see it; kNotFound otherwise.
  Result<SandboxEntry*> find(const Caller& caller, const json& key);
  bool may_see(const Caller& caller, const SandboxRow& row) const;
  SandboxEntry* entry(const std::string& id);
  json describe(const SandboxEntry& e) const;
  // Records and broadcasts an event.
  void emit(const std::string& type, const SandboxRow& row, json details = json::object());
  Result<void> save(const SandboxRow& row);
  int running_execs() const { return static_cast<int>(execs_.size()); }
  // Ends an exec session; it is freed on the next loop iteration (never inside its own callbacks).
  void retire_exec(uint64_t token);
  void retire_follower(uint64_t token);
  void retire_import(uint64_t token);
  // Records an image `sbx-image import` reported (`done`, its last line) under `name`.
  Result<json> add_image(const Caller& caller, const std::string& name, const std::string& source, const json& done,
                         bool replace);
  ImageUsers image_users(const std::string& image_id);
  ImageUsers image_users(const std::string& image_id, const std::vector<EnvironmentRow>& envs) const;
  // Starts `sbx-monitor <mode>` in a session of its own, with `stdio` as its fds 0-2 (-1: /dev/null) and a
  // socketpair as fd 3, and sends it `spec` as the first line. Returns the child and the daemon's end of the socket.
  struct MonitorChild {
    Spawned child;
    Fd socket;
  };
  Result<MonitorChild> start_monitor(const char* mode, const int (&stdio)[3], const json& spec,
                                     const std::vector<int>& fds = {});
  // `sbx-monitor sandbox` with the spec sent: the spare if one waits (its fds 0-2 are /dev/null, /dev/null and
  // sbxd's stderr, as for every sandbox monitor), else a new one.
  Result<MonitorChild> start_sandbox_monitor(const json& spec, const std::vector<int>& fds = {});
  // Starts a spare sandbox monitor unless one waits, spares are off, or sbxd is stopping. Called when a launch ends,
  // so that the fork and the monitor's exec and start-up are not in any create's way.
  void replenish_spare_monitor();
  // Keeps watching a process only to reap it.
  void reap_later(std::unique_ptr<ProcessWatch> watch);
  void on_run_end(const std::string& id, std::optional<int> monitor_status);

 private:
  // Handlers: one per method.
  void daemon_info(CallPtr call);
  void daemon_health(CallPtr call);
  void daemon_metrics(CallPtr call);
  void sandbox_create(CallPtr call);
  void sandbox_run(CallPtr call);
  void sandbox_start(CallPtr call);
  void sandbox_stop(CallPtr call);
  void sandbox_restart(CallPtr call);
  void sandbox_kill(CallPtr call);
  void sandbox_remove(CallPtr call);
  void sandbox_list(CallPtr call);
  void sandbox_inspect(CallPtr call);
  void sandbox_stats(CallPtr call);
  void sandbox_exec(CallPtr call);
  void sandbox_logs(CallPtr call);
  void file_op(CallPtr call);
  void events_subscribe(CallPtr call);
  void events_list(CallPtr call);
  void execs_list(CallPtr call);
  void image_import(CallPtr call);
  void image_data(CallPtr call);
  void image_list(CallPtr call);
  void image_inspect(CallPtr call);
  void image_remove(CallPtr call);
  void environment_create(CallPtr call);
  void environment_update(CallPtr call);
  void environment_list(CallPtr call);
  void environment_inspect(CallPtr call);
  void environment_remove(CallPtr call);
  void apikey_create(CallPtr call);
  void apikey_list(CallPtr call);
  void apikey_revoke(CallPtr call);
  void apikey_verify(CallPtr call);
  // Records an apikey.* event (the key's id, label and tenant; never the key) in the audit trail.
  void record_key_event(const std::string& type, const Caller& caller, const ApiKeyRow& key);

  // Lifecycle.
  // Starts the sandbox's monitor; `done` once the sandbox is up (state running) or failed to come up.
  // The main command's stdio for sandbox.run: pipes to the daemon, named "stdin", "stdout", "stderr" in the order of
  // `fds` (borrowed). Empty: the main command writes to the sandbox's log.
  struct MainStdio {
    std::vector<std::string> names;
    std::vector<int> fds;
  };
  void launch(SandboxEntry& e, std::function<void(Result<void>)> done, const MainStdio& stdio = {});
  // sandbox.create's checks and its record, saved but not started; on failure nothing was created.
  Result<SandboxEntry*> admit_sandbox(const Caller& caller, const json& params);
  // Removes the record and state dir of a sandbox that never ran (a failed start).
  void forget_sandbox(const std::string& id);
  void watch_monitor(SandboxEntry& e, pid_t pid, Fd pidfd);
  void finish_run(SandboxEntry& e, std::optional<int> exit_code, std::optional<int> signal, bool oom,
                  std::string error);
  // SIGTERM to init now, SIGKILL after `grace_ms`; `done` when the run has ended.
  void stop(SandboxEntry& e, int64_t grace_ms, std::function<void()> done);
  Result<void> signal_init(const SandboxRow& row, int sig);
  Result<void> remove(SandboxEntry& e);
  void reconcile();
  void remove_stray_dirs();
  // The network after reconcile: leases, the bridge, the firewall and stray veths in line with the sandboxes.
  void reconcile_network();
  // A bridge-mode run's plan additions: its network, and its resolv.conf (written to the state dir) bound in.
  Result<void> add_network(const SandboxEntry& e, rt::Plan& plan);
  RecordFilter record_filter(const Caller& caller, const json& params, Result<void>* error);
  void adopt(SandboxEntry& e);
  void expire_ttls();
  // Deletes exec records and events older than history_days.
  void prune_history();
  // A timer that runs `task` every `interval_ms`, the first time after one interval.
  UvHandle<uv_timer_t> start_periodic(uint64_t interval_ms, void (Daemon::*task)());
  Result<void> check_quota(const Caller& caller) const;
  Result<json> normalize_create_call(const json& params, const CreatePolicy& policy);

  // The image store: <state_dir>/layers, images/tmp (imports' work dirs), images/trash (being deleted).
  Result<void> open_image_store();
  // Layers that an image, a sandbox or an environment version uses.
  std::set<std::string> live_layers(const std::vector<ImageRow>& images, const std::vector<EnvironmentRow>& envs) const;
  // Removes the layers nothing uses (not while an import runs); returns the hex names it removed.
  std::vector<std::string> collect_garbage();
  void collect_orphaned_image(const json& image);
  // sandbox.create's image: the snapshot the request's image, or its environment's, resolves to; null for a rootfs.
  Result<json> resolve_create_image(const json& params, const json& environment);
  // The environment version "NAME" (latest) or "NAME@VERSION" names; kNotFound when there is none.
  Result<EnvironmentRow> find_environment(const std::string& ref_text, std::string_view field);
  // environment.create/update: the request over `base`, its image resolved and its seccomp profile checked.
  Result<json> environment_spec_for(const json& params, const json& base);
  Result<json> add_environment_version(const Caller& caller, const std::string& name, int version, json spec);

  uv_loop_t* loop_;
  DaemonConfig config_;
  int64_t started_ms_ = 0;
  uint64_t oom_kills_ = 0;  // runs that ended with an OOM kill since sbxd started (daemon.metrics)
  std::unique_ptr<Store> store_;
  std::unique_ptr<rt::Runtime> runtime_;
  std::unique_ptr<Network> network_;
  std::unique_ptr<UsernsPool> userns_;
  std::unique_ptr<Server> server_;
  std::map<std::string, std::unique_ptr<SandboxEntry>> sandboxes_;
  std::map<uint64_t, std::shared_ptr<ExecSession>> execs_;
  std::map<uint64_t, std::shared_ptr<LogFollower>> followers_;
  std::map<uint64_t, std::shared_ptr<ImageImport>> imports_;
  struct Subscriber;
  std::map<uint64_t, std::unique_ptr<Subscriber>> subscribers_;
  std::map<ProcessWatch*, std::unique_ptr<ProcessWatch>> reaping_;
  // The spare sandbox monitor: started with its runtime prelude sent, waiting for a spec. `watch` (on a dup of the
  // pidfd) reaps it and forgets it if it dies while it waits.
  struct SpareMonitor {
    MonitorChild monitor;
    std::unique_ptr<ProcessWatch> watch;
  };
  std::optional<SpareMonitor> spare_;
  bool spare_starting_ = false;  // one is being started on the thread pool
  bool stopping_ = false;
  // Work on libuv's thread pool that may finish after the daemon is gone holds this; it reads nullptr then.
  std::shared_ptr<Daemon*> self_ = std::make_shared<Daemon*>(this);
  void adopt_spare_monitor(Result<MonitorChild> started);
  std::optional<MonitorChild> take_spare_monitor();
  void retire_spare_monitor();
  std::vector<std::shared_ptr<void>> graveyard_;  // finished sessions, freed by sweep_ after the callbacks
  UvHandle<uv_check_t> sweep_;
  uint64_t next_session_ = 1;
  UvHandle<uv_timer_t> ttl_timer_;
  UvHandle<uv_timer_t> history_timer_;
  std::map<uv_timer_t*, void (Daemon::*)()> periodic_;  // each periodic timer's task
  static constexpr uint64_t kHistoryPruneIntervalMs = 3600 * 1000;

  friend class ExecSession;
  friend class ImageImport;
  friend class Launch;
  friend class LogFollower;
};

// A fresh random id: 12 hex digits.
std::string new_id();
// A group name or number.
Result<int> resolve_group(const std::string& group);

}  // namespace sbx::daemon
