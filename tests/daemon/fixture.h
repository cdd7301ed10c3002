#pragma once
// Shared setup for the daemon's integration tests: one private sbxd per test run (its own socket, state dir, run
// dir and cgroup parent, all named sbx-test-daemon-<pid>, under /run/sbx-test-daemon-<pid>/), clients with a
// receive timeout (a hung daemon fails a test instead of hanging the run), sandboxes removed at scope exit, a raw
// socket for protocol tests, and helpers to run a client as another uid.
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/client.h"
#include "base/fd.h"

namespace sbx::itest {

using json = nlohmann::json;

// Generous: the machine is shared and slow. No test asserts an upper bound on time; these only stop a hang.
constexpr int kCallTimeoutS = 180;
constexpr double kWaitS = 120;

// The uids the authorization tests act as: a plain user and a trusted one (the daemon is told so).
constexpr uid_t kUserUid = 65534;
constexpr uid_t kTrustedUid = 64999;
constexpr gid_t kSocketGid = 65534;  // the socket's group, which both test uids are given

class DaemonProcess {
 public:
  DaemonProcess(std::string root, std::string parent_name);
  ~DaemonProcess();

  // Starts sbxd and waits until it answers daemon.info; fails the test with its log when it does not come up.
  void start();
  // As start(), outside a test: returns what went wrong, empty on success.
  std::string launch();
  // SIGTERM, then waits for it to exit (SIGKILL after a long grace).
  void stop();
  // SIGKILL: what a crash looks like to the sandboxes.
  void kill9();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // How many fds sbxd had open right after it first answered (its sockets, database, loop).
  size_t ready_fds() const { return ready_fds_; }

  std::string socket() const { return root_ + "/sbxd.sock"; }
  std::string state_dir() const { return root_ + "/state"; }
  std::string config_path() const { return root_ + "/sbxd.toml"; }
  std::string config_text() const;
  // The only directory the test daemon reads CDI specs from.
  std::string cdi_dir() const { return root_ + "/cdi"; }
  // The test daemon's user-namespace pool: host ids 1600000000 onwards, 256 sandboxes.
  static constexpr uint32_t kUsernsFirst = 1600000000;
  std::string run_dir() const { return root_ + "/run"; }
  std::string log_path() const { return root_ + "/sbxd.log"; }
  const std::string& parent_name() const { return parent_name_; }
  std::string log() const;

 private:
  std::vector<std::string> argv() const;

  std::string root_;
  std::string parent_name_;
  pid_t pid_ = -1;
  size_t ready_fds_ = 0;
};

class TestEnv {
 public:
  static TestEnv& get();
  // Removes what the tests left (every sandbox), stops the daemon, removes its dirs and cgroup parents. Returns
  // what was found left behind (empty: clean).
  static std::vector<std::string> teardown();

  DaemonProcess& daemon() { return *daemon_; }
  const std::string& root() const { return root_; }
  // A directory outside every --rootfs-dir.
  std::string outside_rootfs() const { return root_ + "/outside-rootfs"; }
  static std::string rootfs() { return SBX_BUSYBOX_ROOTFS; }
  std::string unique_name(const std::string& prefix);

 private:
  TestEnv();
  std::string root_;
  std::unique_ptr<DaemonProcess> daemon_;
  int counter_ = 0;
};

// A client of the test daemon (or of `socket`) whose reads time out after `timeout_s`.
api::Client connect(int timeout_s = kCallTimeoutS);
api::Client connect_to(const std::string& socket, int timeout_s = kCallTimeoutS);

// A call that must succeed (the test fails with the daemon's message otherwise).
json call_ok(api::Client& c, const std::string& method, json params = json::object());
json call_ok(const std::string& method, json params = json::object());
// A call that must fail: its error (code, message, data).
api::CallError call_err(api::Client& c, const std::string& method, json params = json::object());
api::CallError call_err(const std::string& method, json params = json::object());

// One streamed exec: its output gathered from the exec.output notifications, and its result.
struct ExecOutput {
  bool ok = false;
  json result;           // when ok
  api::CallError error;  // when not
  std::string out;
  std::string err;
  int notifications = 0;
};
ExecOutput run_exec(api::Client& c, const std::string& id, json params);
// One sandbox.run (`params` as they are: give rootfs or image), its output gathered likewise.
ExecOutput run_once(api::Client& c, json params);
ExecOutput run_once(json params);
// `method` with exec.output notifications gathered.
ExecOutput call_with_output(api::Client& c, const std::string& method, json params);
ExecOutput run_exec(const std::string& id, json params);
// sh -c `script` in the sandbox; REQUIREs that it ran; returns stdout.
std::string sh(const std::string& id, const std::string& script);

// The main command's log (sandbox.logs with `params`, without follow).
std::string logs_of(const std::string& id, json params = json::object());

// A sandbox on the busybox rootfs (unless params say otherwise), force-removed at scope exit.
class Sandbox {
 public:
  explicit Sandbox(json params = json::object());
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  const std::string& id() const { return id_; }
  const std::string& name() const { return name_; }
  const json& created() const { return created_; }
  json inspect() const;
  std::string state() const;

 private:
  std::string id_;
  std::string name_;
  json created_;
};

// Polls `pred` every `interval_s` until it holds or `timeout_s` passed; returns whether it held.
bool wait_until(const std::function<bool()>& pred, double timeout_s = kWaitS, double interval_s = 0.1);

// A unix socket to the daemon spoken to byte by byte, for the protocol tests.
class RawConnection {
 public:
  explicit RawConnection(const std::string& socket);
  void send(std::string_view bytes);
  // The next line, parsed; nullopt at EOF or after `timeout_s` without one.
  std::optional<json> read_json(double timeout_s = kCallTimeoutS);
  std::optional<std::string> read_line(double timeout_s = kCallTimeoutS);
  int fd() const { return fd_.get(); }

 private:
  Fd fd_;
  std::string buf_;
};

// Runs `body` in a forked child as uid/gid (with `groups` as supplementary groups) and returns the JSON it
// returned. The child must not use doctest; it reports what it saw, the parent checks.
json run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<json()>& body);

// /proc/<pid>/status fields in bytes ("VmRSS", "VmHWM").
uint64_t proc_status_bytes(pid_t pid, const std::string& field);
bool process_alive(pid_t pid);
// A process named by pid and start time, so that a recycled pid is not mistaken for it.
struct Proc {
  pid_t pid = 0;
  uint64_t start = 0;
  bool alive() const;
};
Proc proc(pid_t pid);
// The state.json of a running sandbox in the daemon's run dir.
json run_state(const std::string& id);
std::string host_file(const std::string& path);
// What a run must not leave: processes of this build's monitor or inside the cgroup parent, and cgroups below it.
// `expected`: processes that are not leftovers (the daemon's spare monitor while it runs).
std::vector<std::string> leftover_processes(const std::string& parent_name, const std::vector<pid_t>& expected = {});
// Every process whose parent is `pid`, zombies included: pid -> "pid (comm) state".
std::map<pid_t, std::string> children_of(pid_t pid);
// The daemon's spare sandbox monitors: its children that run `sbx-monitor sandbox --spare` and have no child (a
// spare that took a sandbox has its init as a child).
std::vector<pid_t> spare_monitors(pid_t daemon);
std::vector<std::string> leftover_cgroups(const std::string& parent_name);

}  // namespace sbx::itest

// Fails the current test with the error's message when `r` failed.
#define ITEST_REQUIRE_OK(r)                                      \
  do {                                                           \
    const auto& itest_r_ = (r);                                  \
    if (!itest_r_.ok()) {                                        \
      FAIL(#r << " failed: " << itest_r_.error().message());     \
    }                                                            \
  } while (0)
