// A sandbox monitor's exec socket: sbxd starts an exec in a running sandbox by connecting to
// <run_root>/<id>/monitor.sock instead of starting an `sbx-monitor exec` process. The monitor forks one handler per
// connection; the handler reads the request line, with the process's stdio passed along as SCM_RIGHTS, and from
// there is an exec monitor on that connection (serve_exec): the same reports, requests and cancellation on EOF.
// The handler inherits the monitor's open runtime (sbx-init's memfd, the cgroup manager), so an exec costs a fork
// instead of an exec of a program, its dynamic linking and its runtime set-up.
//
// Only the monitor's own uid may connect: the socket is 0600 in the sandbox's 0700 run dir, and each connection's
// SO_PEERCRED is checked as well.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "monitor/monitor.h"

namespace sbx::monitor {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr int kBacklog = 64;

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error(fmt::format("the exec socket path '{}' is longer than the {} bytes a unix socket address holds",
                             path, sizeof addr.sun_path - 1), ENAMETOOLONG);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

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

// The handler process: one exec on connection `conn`. Never returns.
[[noreturn]] void handle_exec(Fd conn, rt::Runtime& runtime, const std::string& id) {
  Channel channel(conn.get());
  auto signal_fd = block_into_signalfd({SIGTERM});  // the monitor's own signalfd was closed
  Result<json> raw = signal_fd.ok() ? channel.read_spec(kRequestTimeout) : Result<json>(signal_fd.error());
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
  int rc = serve_exec(channel, runtime, id, request->process, request->timeout_ms, signal_fd->get(),
                      [&fds] { fds.clear(); });
  ::_exit(rc);
}

}  // namespace

Result<ExecServer> ExecServer::listen(const std::string& path) {
  SBX_ASSIGN(sockaddr_un addr, socket_address(path));
  ExecServer server;
  server.listen_ = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!server.listen_.valid()) {
    return sys_error("create the exec socket");
  }
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
    : path_(std::exchange(o.path_, {})), listen_(std::move(o.listen_)), handlers_(std::move(o.handlers_)) {}

ExecServer& ExecServer::operator=(ExecServer&& o) noexcept {
  if (this != &o) {
    shutdown(std::chrono::milliseconds(0));
    path_ = std::exchange(o.path_, {});
    listen_ = std::move(o.listen_);
    handlers_ = std::move(o.handlers_);
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
  if (listen_.valid()) {
    fds.push_back(listen_.get());
  }
  for (const Handler& h : handlers_) {
    fds.push_back(h.pidfd.get());
  }
  return fds;
}

void ExecServer::accept_all(rt::Runtime& runtime, const std::string& id, std::initializer_list<int> close_in_child) {
  while (listen_.valid()) {
    Fd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        std::fprintf(stderr, "sbx-monitor: sandbox=%s: accept on the exec socket: %s\n", id.c_str(),
                     std::strerror(errno));
      }
      return;
    }
    if (!peer_is_us(conn.get())) {
      continue;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
      (void)Channel(conn.get()).send({{"error", error_json(sys_error("fork the exec's handler"))}});
      continue;
    }
    if (pid == 0) {
      listen_.reset();
      for (int fd : close_in_child) {
        ::close(fd);
      }
      for (Handler& h : handlers_) {
        h.pidfd.reset();
      }
      handle_exec(std::move(conn), runtime, id);
    }
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd.valid()) {
      // Cannot be watched: wait for it right here rather than leave a zombie.
      (void)::waitpid(pid, nullptr, 0);
      continue;
    }
    handlers_.push_back({pid, std::move(pidfd)});
  }
}

void ExecServer::reap(int pidfd) {
  for (auto it = handlers_.begin(); it != handlers_.end(); ++it) {
    siginfo_t info{};
    if (it->pidfd.get() == pidfd &&
        ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) == 0 &&
        info.si_pid != 0) {
      handlers_.erase(it);
      return;
    }
  }
}

void ExecServer::shutdown(std::chrono::milliseconds grace) {
  listen_.reset();
  if (!path_.empty()) {
    (void)::unlink(path_.c_str());
    path_.clear();
  }
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
