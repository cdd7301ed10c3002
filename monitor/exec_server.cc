// A sandbox monitor's exec socket (the spec's exec_socket; sbxd uses <run dir>/<id>/monitor.sock): sbxd starts an
// exec in a running sandbox by connecting to it instead of starting an `sbx-monitor exec` process. Each connection
// is taken by a spare handler the monitor forked ahead of it, which has the monitor's open runtime (sbx-init's memfd,
// the cgroup manager) and has prepared the exec; it reads the request line, with the process's stdio passed along as
// SCM_RIGHTS, and from there is an exec monitor on that connection (serve_exec): the same reports, requests and
// cancellation on EOF. So an exec costs neither an exec of a program (its dynamic linking, its runtime set-up) nor a
// fork on its path.
//
// Only the monitor's own uid may connect: sbxd puts the socket (0600) in the sandbox's 0700 run dir, and each
// connection's SO_PEERCRED is checked as well.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/unix_address.h"
#include "monitor/monitor.h"

namespace sbx::monitor {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr int kBacklog = 64;
// How long after a spare handler ended without taking a connection the next one is forked.
constexpr auto kSpareRetry = std::chrono::milliseconds(1000);

bool peer_is_us(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == ::geteuid();
}

// The request's stdio fds in the places the process spec takes them.
Result<void> place_stdio(const ExecRequest& request, const std::vector<Fd>& fds, rt::ProcessSpec& process) {
  if (fds.size() != request.fds.size()) {
    return Error(fmt::format("request.fds names {} fds, but {} came with it", request.fds.size(), fds.size()), EINVAL);
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    int* slot = request.fds[i] == 0 ? &process.stdin_fd : request.fds[i] == 1 ? &process.stdout_fd
                                                                              : &process.stderr_fd;
    *slot = fds[i].get();
  }
  return ok();
}

// A spare's wait for its connection: the next one from our own uid.
Fd wait_for_connection(int listen_fd) {
  for (;;) {
    struct pollfd p = {listen_fd, POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) {
      ::_exit(1);
    }
    Fd conn(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (conn.valid() && peer_is_us(conn.get())) {
      return conn;
    }
    if (!conn.valid() && errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      ::_exit(1);
    }
  }
}

// The spare handler process: prepares an exec into sandbox `id`, takes the next connection, tells the monitor so
// on `taken_fd` (the monitor then forks the next spare), and serves that one exec. Never returns.
[[noreturn]] void run_spare(int listen_fd, int taken_fd, rt::Runtime& runtime, const std::string& id,
                            pid_t monitor) {
  // An idle spare goes with its monitor (which may be SIGKILLed): it must not sit in accept for ever, holding the
  // socket open for a sandbox nobody supervises. One that took an exec finishes it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != monitor) {
    ::_exit(1);  // the monitor died before the line above
  }
  auto signal_fd = block_into_signalfd({SIGTERM});  // the monitor's own signalfd was closed
  // Read ahead of the request: what a failure here means is reported to the request that comes.
  Result<rt::PreparedExec> sandbox =
      signal_fd.ok() ? runtime.prepare_exec(id) : Result<rt::PreparedExec>(signal_fd.error());
  Fd conn = wait_for_connection(listen_fd);
  ::prctl(PR_SET_PDEATHSIG, 0);
  ::close(listen_fd);
  while (::write(taken_fd, "t", 1) < 0 && errno == EINTR) {
  }
  ::close(taken_fd);
  Channel channel(conn.get());
  Result<json> raw = sandbox.ok() ? channel.read_spec(kRequestTimeout) : Result<json>(sandbox.error());
  Result<ExecRequest> request = raw.ok() ? parse_exec_request(*raw) : Result<ExecRequest>(std::move(raw).error());
  std::vector<Fd> fds = channel.take_fds();
  if (request.ok()) {
    if (auto placed = place_stdio(*request, fds, request->process); !placed.ok()) {
      request = std::move(placed).error();
    }
  }
  if (!request.ok()) {
    (void)channel.send({{"error", error_json(request.error())}});
    ::_exit(1);
  }
  int rc = serve_exec(channel, runtime, sandbox, request->process, request->timeout_ms, signal_fd->get(),
                      [&fds] { fds.clear(); });
  ::_exit(rc);
}

}  // namespace

Result<ExecServer> ExecServer::listen(const std::string& path) {
  SBX_ASSIGN(sockaddr_un addr, unix_address(path));
  ExecServer server;
  server.listen_ = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!server.listen_.valid()) {
    return sys_error("create the exec socket");
  }
  int taken[2];
  if (::pipe2(taken, O_CLOEXEC | O_NONBLOCK) < 0) {
    return sys_error("create the exec handlers' pipe");
  }
  server.taken_read_ = Fd(taken[0]);
  server.taken_write_ = Fd(taken[1]);
  (void)::unlink(path.c_str());  // a socket left by a monitor that was killed; the run dir is the sandbox's own
  if (::bind(server.listen_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
    return sys_error("bind the exec socket to '{}'", path);
  }
  server.path_ = path;
  if (::chmod(path.c_str(), 0600) < 0) {
    return sys_error("chmod 0600 '{}'", path);
  }
  if (::listen(server.listen_.get(), kBacklog) < 0) {
    return sys_error("listen on '{}'", path);
  }
  return server;
}

ExecServer::ExecServer(ExecServer&& o) noexcept
    : path_(std::exchange(o.path_, {})), listen_(std::move(o.listen_)), taken_read_(std::move(o.taken_read_)),
      taken_write_(std::move(o.taken_write_)), handlers_(std::move(o.handlers_)),
      spare_(std::exchange(o.spare_, -1)), spare_lost_at_(o.spare_lost_at_) {}

ExecServer& ExecServer::operator=(ExecServer&& o) noexcept {
  if (this != &o) {
    shutdown(std::chrono::milliseconds(0));
    path_ = std::exchange(o.path_, {});
    listen_ = std::move(o.listen_);
    taken_read_ = std::move(o.taken_read_);
    taken_write_ = std::move(o.taken_write_);
    handlers_ = std::move(o.handlers_);
    spare_ = std::exchange(o.spare_, -1);
    spare_lost_at_ = o.spare_lost_at_;
  }
  return *this;
}

ExecServer::~ExecServer() {
  if (!path_.empty()) {
    (void)::unlink(path_.c_str());
  }
}

std::vector<int> ExecServer::poll_fds() const {
  std::vector<int> fds;
  if (taken_read_.valid()) {
    fds.push_back(taken_read_.get());
  }
  for (const Handler& h : handlers_) {
    fds.push_back(h.pidfd.get());
  }
  return fds;
}

int ExecServer::poll_timeout_ms() const {
  if (!listen_.valid() || spare_ > 0) {
    return -1;
  }
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(spare_lost_at_ + kSpareRetry - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(wait, 0, kSpareRetry.count()));
}

void ExecServer::ensure_spare(rt::Runtime& runtime, const std::string& id, std::initializer_list<int> close_in_child) {
  if (!listen_.valid() || spare_ > 0 || Clock::now() < spare_lost_at_ + kSpareRetry) {
    return;
  }
  const pid_t monitor = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    spare_lost_at_ = Clock::now();
    std::fprintf(stderr, "sbx-monitor: sandbox=%s: fork an exec handler: %s\n", id.c_str(), std::strerror(errno));
    return;
  }
  if (pid == 0) {
    taken_read_.reset();
    for (int fd : close_in_child) {
      ::close(fd);
    }
    for (Handler& h : handlers_) {
      h.pidfd.reset();
    }
    run_spare(listen_.get(), taken_write_.get(), runtime, id, monitor);
  }
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    // It cannot be watched: take it back rather than leave it unreaped.
    ::kill(pid, SIGKILL);
    (void)::waitpid(pid, nullptr, 0);
    spare_lost_at_ = Clock::now();
    return;
  }
  handlers_.push_back({pid, std::move(pidfd)});
  spare_ = pid;
}

bool ExecServer::spare_taken() {
  char buf[16];
  bool taken = false;
  while (taken_read_.valid() && ::read(taken_read_.get(), buf, sizeof buf) > 0) {
    taken = true;
  }
  if (taken) {
    spare_ = -1;  // a handler now; the next spare is forked by ensure_spare
  }
  return taken;
}

void ExecServer::on_ready(int fd) {
  if (fd == taken_read_.get()) {
    (void)spare_taken();
    return;
  }
  for (auto it = handlers_.begin(); it != handlers_.end(); ++it) {
    siginfo_t info{};
    if (it->pidfd.get() != fd ||
        ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd), &info, WEXITED | WNOHANG) != 0 ||
        info.si_pid == 0) {
      continue;
    }
    // A spare that ended without taking a connection (killed, or it failed before it could) is replaced only after
    // a pause, so that one that keeps failing does not make the monitor fork in a loop.
    if (it->pid == spare_ && !spare_taken()) {
      spare_ = -1;
      spare_lost_at_ = Clock::now();
    }
    handlers_.erase(it);
    return;
  }
}

void ExecServer::shutdown(std::chrono::milliseconds grace) {
  listen_.reset();
  if (!path_.empty()) {
    (void)::unlink(path_.c_str());
    path_.clear();
  }
  if (spare_ > 0 && !spare_taken()) {
    // Idle in accept: nothing to finish. (One that took a connection meanwhile serves an exec that fails.)
    for (const Handler& h : handlers_) {
      if (h.pid == spare_) {
        ::syscall(SYS_pidfd_send_signal, h.pidfd.get(), SIGKILL, nullptr, 0);
      }
    }
  }
  spare_ = -1;
  const auto deadline = Clock::now() + grace;
  while (!handlers_.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    struct pollfd p = {handlers_.front().pidfd.get(), POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) == 0) {
      ::syscall(SYS_pidfd_send_signal, handlers_.front().pidfd.get(), SIGKILL, nullptr, 0);
    }
    siginfo_t info{};
    ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(handlers_.front().pidfd.get()), &info, WEXITED);
    handlers_.erase(handlers_.begin());
  }
}

}  // namespace sbx::monitor
