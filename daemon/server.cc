#include "daemon/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>

#include "base/fd.h"
#include "base/unix_address.h"
#include "daemon/log.h"
#include "daemon/uv_handle.h"

namespace sbx::daemon {

namespace {

constexpr size_t kReadChunk = 64 << 10;

// Removes a socket file no daemon answers on; refuses to take over one that answers.
Result<void> clear_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    return errno == ENOENT ? ok() : Result<void>(sys_error("stat '{}'", path));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return make_error("'{}' exists and is not a socket; refusing to replace it", path);
  }
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (probe.valid() && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    return make_error("another sbxd is already listening on '{}'", path);
  }
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    return sys_error("remove stale socket '{}'", path);
  }
  return ok();
}

Result<Fd> bind_socket(const ServerOptions& o) {
  SBX_ASSIGN(sockaddr_un addr, unix_address(o.socket_path));
  SBX_TRY(clear_stale_socket(o.socket_path, addr));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    return sys_error("create socket");
  }
  // Bound owner-only; opened up to the configured mode and group only once both are set.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old);
  if (rc < 0) {
    return Error::from_errno(fmt::format("bind '{}'", o.socket_path), err);
  }
  if (o.socket_gid >= 0 && ::chown(o.socket_path.c_str(), 0, static_cast<gid_t>(o.socket_gid)) < 0) {
    return sys_error("chown '{}' to group {}", o.socket_path, o.socket_gid);
  }
  if (::chmod(o.socket_path.c_str(), o.socket_mode) < 0) {
    return sys_error("chmod '{}' to {:o}", o.socket_path, o.socket_mode);
  }
  if (::listen(fd.get(), 128) < 0) {
    return sys_error("listen on '{}'", o.socket_path);
  }
  return fd;
}

// A queued write: owns its bytes and keeps the connection alive until libuv is done with it.
struct WriteReq {
  uv_write_t req{};
  std::string data;
  std::shared_ptr<Connection> conn;
};

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kRoot:
      return "root";
    case Role::kTrusted:
      return "trusted";
    case Role::kUser:
      return "user";
  }
  return "user";
}

// ---- Call ----

void Call::reply(const json& result) {
  if (done_) {
    return;
  }
  done_ = true;
  if (auto conn = conn_.lock(); conn && !notification_) {
    conn->send_line(api::encode_result(id_, result));
  }
}

void Call::fail(const Error& error) {
  if (done_) {
    return;
  }
  done_ = true;
  if (auto conn = conn_.lock(); conn && !notification_) {
    conn->send_line(api::encode_error(id_, api::error_object(error)));
  }
}

void Call::notify(std::string_view method, const json& params) {
  if (auto conn = conn_.lock()) {
    conn->send_line(api::encode_notification(method, params));
  }
}

bool Call::connected() const {
  auto conn = conn_.lock();
  return conn && !conn->closed();
}

// ---- Server ----

struct Server::Listener {
  Fd fd;
  UvHandle<uv_poll_t> poll;
};

Server::Server(uv_loop_s* loop, ServerOptions options, Dispatch dispatch, RoleOf role_of)
    : loop_(loop), options_(std::move(options)), dispatch_(std::move(dispatch)), role_of_(std::move(role_of)) {}

Server::~Server() { close(); }

Result<void> Server::listen() {
  SBX_ASSIGN(Fd fd, bind_socket(options_));
  auto listener = std::make_unique<Listener>();
  listener->fd = std::move(fd);
  listener->poll = UvHandle<uv_poll_t>::make();
  if (int rc = uv_poll_init(loop_, listener->poll.get(), listener->fd.get()); rc < 0) {
    return make_error("watch socket '{}': {}", options_.socket_path, uv_strerror(rc));
  }
  listener->poll.get()->data = this;
  uv_poll_start(listener->poll.get(), UV_READABLE, [](uv_poll_t* h, int, int) {
    if (h->data != nullptr) {
      static_cast<Server*>(h->data)->accept_one();
    }
  });
  listener_ = std::move(listener);
  return ok();
}

void Server::accept_one() {
  for (int i = 0; i < 64; ++i) {
    Fd fd(::accept4(listener_->fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        log_warn("accept on '{}': {}", options_.socket_path, errno_name(errno));
      }
      return;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
      log_warn("SO_PEERCRED on a new connection: {}", errno_name(errno));
      continue;
    }
    Caller peer{cred.uid, cred.gid, cred.pid, role_of_(cred.uid), ""};
    std::shared_ptr<Connection> conn(new Connection(this, peer));
    if (auto r = conn->start(loop_, fd.get()); !r.ok()) {
      log_warn("connection from uid {}: {}", cred.uid, r.error().message());
      continue;
    }
    (void)fd.release();  // libuv owns it now
    log_debug("connection from uid {} pid {}", cred.uid, cred.pid);
    conns_[conn.get()] = std::move(conn);
  }
}

void Server::forget(Connection* conn) { conns_.erase(conn); }

void Server::close() {
  if (listener_) {
    listener_.reset();
    ::unlink(options_.socket_path.c_str());
  }
  auto conns = conns_;  // close() calls back into forget() later, from the loop
  for (auto& [raw, conn] : conns) {
    conn->close();
  }
}

// ---- Connection ----

struct Connection::Io {
  uv_pipe_t* pipe = nullptr;
  char buf[kReadChunk];
};

Connection::Connection(Server* server, const Caller& peer) : server_(server), peer_(peer) {}

Connection::~Connection() = default;

Result<void> Connection::start(uv_loop_s* loop, int fd) {
  io_ = std::make_unique<Io>();
  io_->pipe = new uv_pipe_t{};
  uv_pipe_init(loop, io_->pipe, 0);
  io_->pipe->data = this;
  if (int rc = uv_pipe_open(io_->pipe, fd); rc < 0) {
    io_->pipe->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(io_->pipe), [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    io_->pipe = nullptr;
    return make_error("open connection: {}", uv_strerror(rc));
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(io_->pipe),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<Connection*>(h->data);
        *buf = uv_buf_init(self->io_->buf, sizeof self->io_->buf);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* self = static_cast<Connection*>(s->data);
        if (self == nullptr) {
          return;
        }
        if (n < 0) {
          self->close();
          return;
        }
        self->on_read(buf->base, static_cast<size_t>(n));
      });
  return ok();
}

void Connection::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  auto keep = shared_from_this();
  auto hooks = std::move(close_hooks_);
  close_hooks_.clear();
  drain_hooks_.clear();
  for (auto& [token, fn] : hooks) {
    fn();
  }
  if (io_ && io_->pipe != nullptr) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(io_->pipe));
    uv_close(reinterpret_cast<uv_handle_t*>(io_->pipe), [](uv_handle_t* h) {
      auto* self = static_cast<Connection*>(h->data);
      delete reinterpret_cast<uv_pipe_t*>(h);
      if (self != nullptr) {
        self->io_->pipe = nullptr;
        self->server_->forget(self);  // may destroy self: last use
      }
    });
  }
}

void Connection::on_read(const char* data, size_t len) {
  const size_t max = server_->options_.max_request_bytes;
  while (len > 0 && !closed_) {
    const char* nl = static_cast<const char*>(std::memchr(data, '\n', len));
    size_t take = nl != nullptr ? static_cast<size_t>(nl - data) : len;
    if (discarding_) {
      if (nl != nullptr) {
        discarding_ = false;
      }
    } else if (inbuf_.size() + take > max) {
      inbuf_.clear();
      inbuf_.shrink_to_fit();
      discarding_ = nl == nullptr;
      reject(nullptr, api::api_error(api::kInvalidRequest, "request line exceeds the daemon's limit of {} bytes "
                                     "(max_request_bytes)", max));
    } else {
      inbuf_.append(data, take);
      if (nl != nullptr) {
        std::string line = std::move(inbuf_);
        inbuf_.clear();
        handle_line(line);
      }
    }
    if (nl == nullptr) {
      return;
    }
    data += take + 1;
    len -= take + 1;
  }
}

void Connection::reject(const json& id, const Error& error) {
  send_line(api::encode_error(id, api::error_object(error)));
}

void Connection::handle_line(std::string_view line) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
    return;
  }
  json msg = json::parse(line, nullptr, false);
  if (msg.is_discarded()) {
    return reject(nullptr, api::api_error(api::kParseError, "parse error: the line is not valid JSON"));
  }
  if (msg.is_array()) {
    return reject(nullptr, api::api_error(api::kInvalidRequest, "batch requests are not supported"));
  }
  if (!msg.is_object()) {
    return reject(nullptr, api::api_error(api::kInvalidRequest, "a request must be a JSON object"));
  }
  json id = msg.contains("id") ? msg["id"] : json();
  // A notification (no id) is never answered, not even with an error, once it is a well-formed request.
  const bool notification = !msg.contains("id");
  auto refuse = [&](const Error& error) {
    if (!notification) {
      reject(id, error);
    }
  };
  if (!id.is_null() && !id.is_string() && !id.is_number_integer()) {
    return reject(nullptr, api::api_error(api::kInvalidRequest, "id must be a string, an integer or null"));
  }
  if (!msg.contains("jsonrpc") || msg["jsonrpc"] != "2.0") {
    return reject(id, api::api_error(api::kInvalidRequest, "jsonrpc must be \"2.0\""));
  }
  if (!msg.contains("method") || !msg["method"].is_string()) {
    return reject(id, api::api_error(api::kInvalidRequest, "method must be a string"));
  }
  std::string method = msg["method"].get<std::string>();
  const api::MethodSpec* spec = api::find_method(method);
  if (spec == nullptr) {
    return refuse(api::api_error(api::kMethodNotFound, "method not found: '{}'", method));
  }
  json params = msg.contains("params") ? msg["params"] : json();
  Caller caller = peer_;
  if (params.is_object() && params.contains("tenant")) {
    if (caller.role == Role::kUser) {
      return refuse(api::api_error(api::kPermissionDenied, "uid {} may not act for a tenant", caller.uid));
    }
    if (!params["tenant"].is_string() || params["tenant"].get<std::string>().empty()) {
      return refuse(api::param_error("tenant", "must be a non-empty string"));
    }
    caller.tenant = params["tenant"].get<std::string>();
    bool declared = false;
    for (const auto& p : spec->params) {
      declared = declared || p.name == "tenant";
    }
    if (!declared) {
      params.erase("tenant");
    }
  }
  if (auto r = api::check_params(*spec, params); !r.ok()) {
    return refuse(r.error());
  }
  auto call = std::make_shared<Call>(weak_from_this(), id, notification, method,
                                     params.is_null() ? json::object() : std::move(params), caller);
  server_->dispatch_(std::move(call));
}

void Connection::send_line(std::string line) {
  if (closed_ || !io_ || io_->pipe == nullptr) {
    return;
  }
  line += '\n';
  auto* w = new WriteReq{};
  w->data = std::move(line);
  w->conn = shared_from_this();
  queued_ += w->data.size();
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(io_->pipe), &buf, 1, [](uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    auto conn = std::move(w->conn);
    size_t n = w->data.size();
    delete w;
    conn->wrote(n);
    if (status < 0 && status != UV_ECANCELED) {
      conn->close();
    }
  });
  if (rc < 0) {
    queued_ -= w->data.size();
    delete w;
    close();
  }
}

void Connection::wrote(size_t bytes) {
  queued_ -= bytes;
  if (queued_ < kLowWater && !drain_hooks_.empty()) {
    auto hooks = std::move(drain_hooks_);  // one-shot: a source that pauses again registers again
    drain_hooks_.clear();
    for (auto& [token, fn] : hooks) {
      fn();
    }
  }
}

uint64_t Connection::on_drain(std::function<void()> fn) {
  uint64_t t = next_token_++;
  drain_hooks_[t] = std::move(fn);
  return t;
}

uint64_t Connection::on_close(std::function<void()> fn) {
  uint64_t t = next_token_++;
  close_hooks_[t] = std::move(fn);
  return t;
}

void Connection::remove_hook(uint64_t token) {
  drain_hooks_.erase(token);
  close_hooks_.erase(token);
}

}  // namespace sbx::daemon
