#pragma once
// The JSON-RPC server: a listening unix socket on the daemon's loop, connections that frame newline-delimited
// JSON, check the envelope and each request's params against the method table, and hand calls to the dispatcher.
// Writes are queued per connection; long-running calls watch the queue (backpressure) and the connection's close.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "api/protocol.h"
#include "base/error.h"

struct uv_loop_s;

namespace sbx::daemon {

using json = api::json;

enum class Role { kRoot, kTrusted, kUser };
std::string_view role_name(Role role);

// Who is calling, from SO_PEERCRED, and the tenant a trusted caller acts for in this call.
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  pid_t pid = 0;
  Role role = Role::kUser;
  std::string tenant;
};

class Connection;

// One request. Replying (result or error) ends it; a call whose connection has gone replies into nothing.
class Call {
 public:
  Call(std::weak_ptr<Connection> conn, json id, bool notification, std::string method, json params, Caller caller)
      : conn_(std::move(conn)), id_(std::move(id)), notification_(notification), method_(std::move(method)),
        params_(std::move(params)), caller_(std::move(caller)) {}

  const std::string& method() const { return method_; }
  // The request's id: streamed notifications carry it as request_id, so concurrent calls can be told apart.
  const json& id() const { return id_; }
  const json& params() const { return params_; }
  const Caller& caller() const { return caller_; }

  void reply(const json& result);
  void fail(const Error& error);
  void finish(const Result<json>& r) { r.ok() ? reply(r.value()) : fail(r.error()); }
  void notify(std::string_view method, const json& params);
  bool done() const { return done_; }
  // Whether the client is still there to hear from this call.
  bool connected() const;
  std::shared_ptr<Connection> connection() const { return conn_.lock(); }

 private:
  std::weak_ptr<Connection> conn_;
  json id_;
  bool notification_;
  std::string method_;
  json params_;
  Caller caller_;
  bool done_ = false;
};
using CallPtr = std::shared_ptr<Call>;

struct ServerOptions {
  std::string socket_path;
  uint32_t socket_mode = 0660;
  int socket_gid = -1;  // -1: leave root's group
  uint64_t max_request_bytes = 16ull << 20;
};

class Server {
 public:
  using Dispatch = std::function<void(CallPtr)>;
  // Resolves a peer's role from its uid.
  using RoleOf = std::function<Role(uint32_t uid)>;

  Server(uv_loop_s* loop, ServerOptions options, Dispatch dispatch, RoleOf role_of);
  ~Server();
  // Binds (replacing a stale socket file; refusing when another daemon answers on it) and listens.
  Result<void> listen();
  // Stops accepting, closes every connection, removes the socket file.
  void close();
  size_t connections() const { return conns_.size(); }

 private:
  friend class Connection;
  void accept_one();
  void forget(Connection* conn);

  uv_loop_s* loop_;
  ServerOptions options_;
  Dispatch dispatch_;
  RoleOf role_of_;
  struct Listener;
  std::unique_ptr<Listener> listener_;
  std::map<Connection*, std::shared_ptr<Connection>> conns_;
};

// One client. Reads requests line by line, writes replies and notifications through a queue.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  static constexpr size_t kHighWater = 1 << 20;  // long-running calls pause their sources above this
  static constexpr size_t kLowWater = 256 << 10;  // ... and resume below this

  ~Connection();
  void send_line(std::string line);
  size_t queued_bytes() const { return queued_; }
  bool closed() const { return closed_; }
  void close();

  // Hooks, removed with the token they return: `on_drain` once, when the queue next falls below kLowWater;
  // `on_close` when the connection closes (to cancel what runs for it).
  uint64_t on_drain(std::function<void()> fn);
  uint64_t on_close(std::function<void()> fn);
  void remove_hook(uint64_t token);

 private:
  friend class Server;
  struct Io;
  Connection(Server* server, const Caller& peer);
  Result<void> start(uv_loop_s* loop, int fd);
  void on_read(const char* data, size_t len);
  void handle_line(std::string_view line);
  void reject(const json& id, const Error& error);
  void wrote(size_t bytes);

  Server* server_;
  Caller peer_;
  std::unique_ptr<Io> io_;
  std::string inbuf_;
  bool discarding_ = false;  // inside a request line that exceeded max_request_bytes
  size_t queued_ = 0;
  bool closed_ = false;
  uint64_t next_token_ = 1;
  std::map<uint64_t, std::function<void()>> drain_hooks_;
  std::map<uint64_t, std::function<void()>> close_hooks_;
};

}  // namespace sbx::daemon
