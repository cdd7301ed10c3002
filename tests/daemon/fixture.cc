#include "tests/daemon/fixture.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "api/protocol.h"
#include "base/file.h"

namespace sbx::itest {

namespace {

TestEnv* g_env = nullptr;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void set_timeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// waitpid with a deadline; true when the child was reaped.
bool reap(pid_t pid, double timeout_s) {
  auto start = Clock::now();
  while (seconds_since(start) < timeout_s) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::vector<std::string> subdirs(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) {
      out.push_back(it->path().string());
    }
  }
  return out;
}

// The test daemon's cgroup parents: `name` below this process's own cgroup (sbxd's too: it is our child) in
// every hierarchy mounted under /sys/fs/cgroup.
std::vector<std::string> cgroup_dirs_named(const std::string& name) {
  std::vector<std::string> own;
  auto self = read_file("/proc/self/cgroup", 1 << 16);
  for (size_t pos = 0; self.ok() && pos < self->size();) {
    size_t end = self->find('\n', pos);
    std::string line = self->substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? self->size() : end + 1;
    size_t colon = line.find(':', line.find(':') + 1);
    if (colon != std::string::npos) {
      own.push_back(line.substr(colon + 1));
    }
  }
  std::vector<std::string> mounts = subdirs("/sys/fs/cgroup");
  mounts.push_back("/sys/fs/cgroup");
  std::set<std::string> found;
  for (const auto& mount : mounts) {
    for (const auto& path : own) {
      std::string dir = mount + (path == "/" ? "" : path) + "/" + name;
      std::error_code ec;
      if (std::filesystem::is_directory(dir, ec)) {
        found.insert(dir);
      }
    }
  }
  return {found.begin(), found.end()};
}

size_t count_fds(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(fmt::format("/proc/{}/fd", pid), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

}  // namespace

std::vector<std::string> leftover_processes(const std::string& parent_name, const std::vector<pid_t>& expected) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  std::error_code ec;
  std::string monitor = fs::canonical(SBX_MONITOR_PATH, ec).string();
  for (fs::directory_iterator it("/proc", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string pid = it->path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos || !process_alive(std::stoi(pid)) ||
        std::find(expected.begin(), expected.end(), std::stoi(pid)) != expected.end()) {
      continue;
    }
    std::error_code ec2;
    std::string exe = fs::read_symlink(it->path() / "exe", ec2).string();
    auto comm = read_file(it->path().string() + "/comm", 256);
    std::string name = comm.ok() ? trim(*comm) : "?";
    if (!monitor.empty() && exe.rfind(monitor, 0) == 0) {
      found.push_back(fmt::format("process {} ({}): a monitor of this build", pid, name));
      continue;
    }
    auto cgroups = read_file(it->path().string() + "/cgroup", 1 << 16);
    if (cgroups.ok() && cgroups->find("/" + parent_name + "/") != std::string::npos) {
      found.push_back(fmt::format("process {} ({}): in the test daemon's cgroup parent", pid, name));
    }
  }
  return found;
}

std::map<pid_t, std::string> children_of(pid_t pid) {
  namespace fs = std::filesystem;
  std::map<pid_t, std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    auto stat = read_file("/proc/" + name + "/stat", 4096);
    size_t paren = stat.ok() ? stat->rfind(')') : std::string::npos;
    int ppid = 0;
    char state = '?';
    if (paren != std::string::npos && std::sscanf(stat->c_str() + paren + 2, "%c %d", &state, &ppid) == 2 &&
        ppid == pid) {
      out[std::stoi(name)] = stat->substr(0, paren + 1) + " " + state;
    }
  }
  return out;
}

std::vector<pid_t> spare_monitors(pid_t daemon) {
  std::vector<pid_t> spares;
  for (const auto& [pid, what] : children_of(daemon)) {
    auto cmdline = read_file(fmt::format("/proc/{}/cmdline", pid), 4096);
    // A spare that took a sandbox keeps its command line: it is a sandbox monitor now, with init as its child.
    if (cmdline.ok() && *cmdline == std::string("sbx-monitor\0sandbox\0--spare\0", 28) && children_of(pid).empty()) {
      spares.push_back(pid);
    }
  }
  return spares;
}

std::vector<std::string> leftover_cgroups(const std::string& parent_name) {
  std::vector<std::string> found;
  for (const auto& dir : cgroup_dirs_named(parent_name)) {
    for (const auto& child : subdirs(dir)) {
      found.push_back("cgroup " + child);
    }
  }
  return found;
}

// ---- DaemonProcess ----

// A user-namespace pool of the test daemon's own, away from the system sbxd's; CDI specs from a dir of its own.
std::string DaemonProcess::config_text() const {
  return fmt::format("[daemon]\ncdi_spec_dirs = [\"{}\"]\n[userns]\nfirst = {}\ncount = 256\n", cdi_dir(),
                     kUsernsFirst);
}

DaemonProcess::DaemonProcess(std::string root, std::string parent_name)
    : root_(std::move(root)), parent_name_(std::move(parent_name)) {}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    (void)reap(pid_, 30);
  }
}

std::vector<std::string> DaemonProcess::argv() const {
  return {SBX_SBXD_PATH,
          "-c", config_path(),
          "--socket", socket(),
          "--state-dir", state_dir(),
          "--run-dir", run_dir(),
          "--cgroup-parent-name", parent_name_,
          "--monitor", SBX_MONITOR_PATH,
          "--seccomp-dir", SBX_SOURCE_ROOT "/seccomp-profiles",
          "--socket-group", std::to_string(kSocketGid),
          "--rootfs-dir", SBX_BUSYBOX_ROOTFS,
          "--trusted-uid", std::to_string(kTrustedUid),
          "--log-level", "debug"};
}

std::string DaemonProcess::log() const {
  auto text = read_file(log_path(), 64 << 20);
  return text.ok() ? *text : std::string("<no log>");
}

void DaemonProcess::start() {
  std::string error = launch();
  if (!error.empty()) {
    FAIL(error);
  }
}

std::string DaemonProcess::launch() {
  if (pid_ > 0) {
    return "sbxd is already running";
  }
  // Its own configuration, not /etc/sbx/sbxd.toml.
  if (auto r = make_dirs(cdi_dir(), 0755); !r.ok()) {
    return r.error().message();
  }
  if (auto r = create_file(config_path(), config_text(), 0644); !r.ok()) {
    return r.error().message();
  }
  std::vector<std::string> args = argv();
  std::vector<char*> cargv;
  for (auto& a : args) {
    cargv.push_back(a.data());
  }
  cargv.push_back(nullptr);
  // Not under systemd as far as sbxd can tell: it must not take over the test's cgroup.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    if (kv.rfind("INVOCATION_ID=", 0) != 0 && kv.rfind("NOTIFY_SOCKET=", 0) != 0) {
      env.push_back(kv);
    }
  }
  std::vector<char*> cenv;
  for (auto& kv : env) {
    cenv.push_back(kv.data());
  }
  cenv.push_back(nullptr);
  Fd log_fd(::open(log_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  Fd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!log_fd.valid() || !null_fd.valid()) {
    return fmt::format("open sbxd's log {}: {}", log_path(), std::strerror(errno));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    return fmt::format("fork: {}", std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(null_fd.get(), 0);
    ::dup2(log_fd.get(), 1);
    ::dup2(log_fd.get(), 2);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  pid_ = pid;
  auto start = Clock::now();
  while (seconds_since(start) < kWaitS) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return fmt::format("sbxd exited while starting (wait status {}); its log:\n{}", status, log());
    }
    bool ready = false;
    if (auto c = api::Client::connect(socket()); c.ok()) {
      set_timeouts(c->fd(), 30);
      ready = c->call("daemon.info").ok();
    }
    if (ready) {
      // Counted once our connection has gone (the daemon closes it on the next loop turn).
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      ready_fds_ = count_fds(pid_);
      return "";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return fmt::format("sbxd did not answer within {} s; its log:\n{}", kWaitS, log());
}

void DaemonProcess::stop() {
  if (pid_ < 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  if (!reap(pid_, 60)) {
    ::kill(pid_, SIGKILL);
    (void)reap(pid_, 30);
  }
  pid_ = -1;
}

void DaemonProcess::kill9() {
  if (pid_ < 0) {
    return;
  }
  ::kill(pid_, SIGKILL);
  (void)reap(pid_, 60);
  pid_ = -1;
}

// ---- TestEnv ----

TestEnv::TestEnv() {
  root_ = fmt::format("/run/sbx-test-daemon-{}", ::getpid());
  (void)remove_tree(root_);
  REQUIRE(::mkdir(root_.c_str(), 0711) == 0);
  REQUIRE(::chmod(root_.c_str(), 0711) == 0);  // others may reach the socket (its group decides who connects)
  REQUIRE(::mkdir(outside_rootfs().c_str(), 0755) == 0);
  daemon_ = std::make_unique<DaemonProcess>(root_, fmt::format("sbx-test-daemon-{}", ::getpid()));
  daemon_->start();
}

TestEnv& TestEnv::get() {
  if (g_env == nullptr) {
    g_env = new TestEnv();
  }
  return *g_env;
}

std::string TestEnv::unique_name(const std::string& prefix) {
  return fmt::format("{}-{}", prefix, ++counter_);
}

std::vector<std::string> TestEnv::teardown() {
  std::vector<std::string> leaks;
  if (g_env == nullptr) {
    return leaks;
  }
  DaemonProcess& d = g_env->daemon();
  if (!d.running()) {
    // A test that killed it and failed before restarting it: its sandboxes still need removing.
    if (std::string error = d.launch(); !error.empty()) {
      leaks.push_back("restart sbxd for the cleanup: " + error);
    }
  }
  if (auto c = api::Client::connect(d.socket()); c.ok()) {
    set_timeouts(c->fd(), kCallTimeoutS);
    if (auto list = c->call("sandbox.list"); list.ok()) {
      for (const auto& s : (*list)["sandboxes"]) {
        leaks.push_back(fmt::format("sandbox {} ({}) was not removed by its test", s["id"].get<std::string>(),
                                    s["name"].get<std::string>()));
        (void)c->call("sandbox.remove", {{"id", s["id"]}, {"force", true}});
      }
    }
  }
  d.stop();
  for (const auto& entry : subdirs(d.run_dir())) {
    leaks.push_back("run dir entry left: " + entry);
  }
  for (const auto& p : leftover_processes(d.parent_name())) {
    leaks.push_back(p);
  }
  for (const auto& dir : cgroup_dirs_named(d.parent_name())) {
    for (const auto& child : subdirs(dir)) {
      leaks.push_back("cgroup left: " + child);
      (void)::rmdir(child.c_str());
    }
    if (::rmdir(dir.c_str()) < 0) {
      leaks.push_back(fmt::format("cannot remove cgroup parent {}: {}", dir, std::strerror(errno)));
    }
  }
  (void)remove_tree(g_env->root_);
  delete g_env;
  g_env = nullptr;
  return leaks;
}

// ---- clients and calls ----

api::Client connect_to(const std::string& socket, int timeout_s) {
  auto c = api::Client::connect(socket);
  if (!c.ok()) {
    FAIL("connect to " << socket << ": " << c.error().message());
  }
  set_timeouts(c->fd(), timeout_s);
  return std::move(*c);
}

api::Client connect(int timeout_s) { return connect_to(TestEnv::get().daemon().socket(), timeout_s); }

json call_ok(api::Client& c, const std::string& method, json params) {
  std::string shown = params.dump();
  auto r = c.call(method, std::move(params));
  if (!r.ok()) {
    FAIL(method << " " << shown << " failed: " << r.error().message() << " (code " << c.last_error().code
                << ")");
  }
  return std::move(*r);
}

json call_ok(const std::string& method, json params) {
  auto c = connect();
  return call_ok(c, method, std::move(params));
}

api::CallError call_err(api::Client& c, const std::string& method, json params) {
  std::string shown = params.dump();
  auto r = c.call(method, std::move(params));
  if (r.ok()) {
    FAIL(method << " " << shown << " succeeded, expected an error: " << r->dump());
  }
  return c.last_error();
}

api::CallError call_err(const std::string& method, json params) {
  auto c = connect();
  return call_err(c, method, std::move(params));
}

ExecOutput run_exec(api::Client& c, const std::string& id, json params) {
  params["id"] = id;
  return call_with_output(c, "sandbox.exec", std::move(params));
}

ExecOutput run_once(api::Client& c, json params) { return call_with_output(c, "sandbox.run", std::move(params)); }

ExecOutput run_once(json params) {
  auto c = connect();
  return run_once(c, std::move(params));
}

ExecOutput call_with_output(api::Client& c, const std::string& call_method, json params) {
  ExecOutput out;
  auto r = c.call(call_method, std::move(params), [&](const std::string& method, const json& p) {
    if (method != "exec.output") {
      return;
    }
    ++out.notifications;
    auto data = api::base64_decode(p.value("data_b64", ""));
    REQUIRE(data.ok());
    (p.value("stream", "") == "stderr" ? out.err : out.out) += *data;
  });
  out.ok = r.ok();
  if (r.ok()) {
    out.result = std::move(*r);
  } else {
    out.error = c.last_error();
    if (out.error.code == 0) {
      out.error.message = r.error().message();
    }
  }
  return out;
}

ExecOutput run_exec(const std::string& id, json params) {
  auto c = connect();
  return run_exec(c, id, std::move(params));
}

std::string sh(const std::string& id, const std::string& script) {
  ExecOutput o = run_exec(id, {{"argv", {"sh", "-c", script}}});
  if (!o.ok) {
    FAIL("exec sh -c '" << script << "' in " << id << ": " << o.error.message);
  }
  return o.out;
}

std::string logs_of(const std::string& id, json params) {
  params["id"] = id;
  std::string text;
  auto c = connect();
  auto r = c.call("sandbox.logs", std::move(params), [&](const std::string& method, const json& p) {
    if (method == "logs.output") {
      auto data = api::base64_decode(p.value("data_b64", ""));
      REQUIRE(data.ok());
      text += *data;
    }
  });
  if (!r.ok()) {
    FAIL("logs of " << id << ": " << r.error().message());
  }
  return text;
}

// ---- Sandbox ----

Sandbox::Sandbox(json params) {
  if (!params.contains("rootfs") && !params.contains("image")) {
    params["rootfs"] = TestEnv::rootfs();
  }
  if (!params.contains("name")) {
    params["name"] = TestEnv::get().unique_name("t");
  }
  name_ = params["name"].get<std::string>();
  created_ = call_ok("sandbox.create", std::move(params));
  id_ = created_["id"].get<std::string>();
}

Sandbox::~Sandbox() {
  if (g_env == nullptr || !g_env->daemon().running()) {
    return;  // teardown removes it
  }
  auto c = api::Client::connect(g_env->daemon().socket());
  if (!c.ok()) {
    return;
  }
  set_timeouts(c->fd(), kCallTimeoutS);
  auto r = c->call("sandbox.remove", {{"id", id_}, {"force", true}});
  if (!r.ok() && c->last_error().code != api::kNotFound) {
    std::fprintf(stderr, "daemon_tests: remove sandbox %s: %s\n", id_.c_str(), r.error().message().c_str());
  }
}

json Sandbox::inspect() const { return call_ok("sandbox.inspect", {{"id", id_}}); }

std::string Sandbox::state() const { return inspect()["state"].get<std::string>(); }

// ---- helpers ----

bool wait_until(const std::function<bool()>& pred, double timeout_s, double interval_s) {
  auto start = Clock::now();
  for (;;) {
    if (pred()) {
      return true;
    }
    if (seconds_since(start) > timeout_s) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
  }
}

RawConnection::RawConnection(const std::string& socket) {
  fd_ = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd_.valid());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(socket.size() < sizeof addr.sun_path);
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  REQUIRE(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  set_timeouts(fd_.get(), kCallTimeoutS);
}

void RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    REQUIRE_MESSAGE(n > 0, "send to sbxd: " << std::strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

std::optional<std::string> RawConnection::read_line(double timeout_s) {
  auto start = Clock::now();
  for (;;) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    double left = timeout_s - seconds_since(start);
    if (left <= 0) {
      return std::nullopt;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
    if (rc < 0 && errno == EINTR) {
      continue;
    }
    if (rc <= 0) {
      return std::nullopt;
    }
    char chunk[65536];
    ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
    if (n <= 0) {
      return std::nullopt;
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

std::optional<json> RawConnection::read_json(double timeout_s) {
  auto line = read_line(timeout_s);
  if (!line) {
    return std::nullopt;
  }
  json j = json::parse(*line, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), "sbxd sent a line that is not JSON: " << line->substr(0, 200));
  return j;
}

json run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::function<json()>& body) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(p[0]);
    json out;
    if (::setgroups(groups.size(), groups.data()) < 0 || ::setgid(gid) < 0 || ::setuid(uid) < 0) {
      out = {{"setup_error", std::strerror(errno)}};
    } else {
      out = body();
    }
    std::string text = out.dump();
    (void)write_all(p[1], text);
    ::_exit(0);
  }
  ::close(p[1]);
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) {
      continue;
    }
    REQUIRE(n > 0);
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(p[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "the child as uid " << uid << " failed");
  json j = json::parse(text, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), "the child as uid " << uid << " sent: " << text);
  REQUIRE_MESSAGE(!j.contains("setup_error"), "become uid " << uid << ": " << j.dump());
  return j;
}

uint64_t proc_status_bytes(pid_t pid, const std::string& field) {
  auto text = read_file(fmt::format("/proc/{}/status", pid), 1 << 16);
  REQUIRE(text.ok());
  size_t pos = text->find("\n" + field + ":");
  REQUIRE_MESSAGE(pos != std::string::npos, "no " << field << " in /proc/" << pid << "/status");
  return std::strtoull(text->c_str() + pos + field.size() + 2, nullptr, 10) * 1024;
}

bool process_alive(pid_t pid) {
  if (pid <= 0) {
    return false;
  }
  auto stat = read_file(fmt::format("/proc/{}/stat", pid), 4096);
  if (!stat.ok()) {
    return false;
  }
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] != 'Z';
}

namespace {

// Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); 0 when there is no such process.
uint64_t start_time(pid_t pid) {
  auto stat = read_file(fmt::format("/proc/{}/stat", pid), 4096);
  if (!stat.ok()) {
    return 0;
  }
  size_t pos = stat->rfind(')');
  for (int field = 2; pos != std::string::npos && field < 22; ++field) {
    pos = stat->find(' ', pos + 1);
  }
  return pos == std::string::npos ? 0 : std::strtoull(stat->c_str() + pos + 1, nullptr, 10);
}

}  // namespace

Proc proc(pid_t pid) { return Proc{pid, start_time(pid)}; }

bool Proc::alive() const { return start != 0 && process_alive(pid) && start_time(pid) == start; }

json run_state(const std::string& id) {
  auto text = read_file(TestEnv::get().daemon().run_dir() + "/" + id + "/state.json", 1 << 20);
  REQUIRE_MESSAGE(text.ok(), "state of " << id << ": " << text.error().message());
  json j = json::parse(*text, nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

std::string host_file(const std::string& path) {
  auto text = read_file(path, 16 << 20);
  REQUIRE_MESSAGE(text.ok(), text.error().message());
  return *text;
}

}  // namespace sbx::itest
