#pragma once
// A blocking JSON-RPC client for sbxd's unix socket: one call at a time, notifications delivered as they arrive.
// Used by sbxctl, the tests and the benchmarks.
//
//   SBX_ASSIGN(auto client, api::Client::connect(api::default_socket_path()));
//   auto r = client.call("sandbox.exec", {{"id", "box"}, {"argv", {"ls"}}},
//                        [](const std::string& method, const json& params) { ... exec.output ... });
//   if (!r.ok()) { r.error().code() is the JSON-RPC code, client.last_error().data its data }
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fd.h"

namespace sbx::api {

using json = nlohmann::json;

// $SBX_SOCKET when set and not empty, else /run/sbx/sbxd.sock.
std::string default_socket_path();

// The JSON-RPC error of a failed call, as the daemon sent it. code 0: the call failed before an answer came
// (connection lost, malformed response); the Error returned by call() says why.
struct CallError {
  int code = 0;
  std::string message;
  json data;  // null when the daemon sent none

  // Error(message, data.errno) with code(): what call() returns.
  Error to_error() const;
};

struct Notification {
  std::string method;
  json params;
};

class Client {
 public:
  using NotificationHandler = std::function<void(const std::string& method, const json& params)>;

  // Connects to sbxd. A daemon that is not there (ENOENT, ECONNREFUSED) and a socket the caller may not use
  // (EACCES, EPERM) get messages that say what to do about it.
  static Result<Client> connect(std::string socket_path);

  Client(Client&&) = default;
  Client& operator=(Client&&) = default;

  // Sends a request with a fresh id and waits for its response. Notifications that arrive meanwhile go to
  // `on_notification` (dropped without one). Fails with code() = the JSON-RPC error code and message() = the
  // daemon's message (last_error() keeps its data), or with code() 0 when no response came.
  Result<json> call(const std::string& method, json params = nullptr, const NotificationHandler& on_notification = {});

  // Sends a notification: a message without an id, which nothing answers (image.data).
  Result<void> notify(const std::string& method, const json& params);

  // The next notification of an upload, given the request's id; nullopt once everything is sent.
  using UploadSource = std::function<Result<std::optional<Notification>>(uint64_t request_id)>;

  // A call whose data follows the request as notifications on the same connection (image.import with stream:
  // true). Sending and reading interleave (poll on both directions), so what the daemon sends meanwhile
  // (progress) goes to `on_notification` and neither side can block the other. A response that comes before the
  // upload is complete (a refusal) ends the call; an error of `next` fails it (the connection is then unusable).
  Result<json> call_with_upload(const std::string& method, json params, const UploadSource& next,
                                const NotificationHandler& on_notification = {});

  // Waits for the next notification (for subscriptions: events.subscribe). Responses to no pending call are
  // skipped. Fails when the connection ends.
  Result<Notification> next_notification();

  // The error of the last call that failed (code 0 and empty after a success).
  const CallError& last_error() const { return last_error_; }

  // Called when a blocking read or write is interrupted by a signal (EINTR): returning true abandons the call
  // with an ECANCELED error (the connection is then unusable: close it). Without one, EINTR is retried.
  void set_interrupt_check(std::function<bool()> check) { interrupted_ = std::move(check); }

  const std::string& socket_path() const { return socket_path_; }
  int fd() const { return fd_.get(); }

  // Refuses a single response or notification line longer than this (default 1 GiB).
  void set_max_line_bytes(size_t n) { max_line_bytes_ = n; }

  // Sends `tenant` with every call (for a trusted caller acting for that tenant); empty: none.
  void set_tenant(std::string tenant) { tenant_ = std::move(tenant); }

 private:
  Client(Fd fd, std::string socket_path) : fd_(std::move(fd)), socket_path_(std::move(socket_path)) {}

  // Sends a request with a fresh id (and the tenant); returns the id.
  Result<uint64_t> send_request(const std::string& method, json params);
  Result<void> send_line(std::string line);
  // Sends what it can of pending_ without blocking.
  Result<void> send_some();
  // Sends the rest of a line of pending_ that is partly sent (blocking) and empties it.
  void finish_pending_line();
  Result<json> read_message();
  // The next whole message already in buf_, if any; nothing is read.
  Result<std::optional<json>> take_message();
  // What a message that arrived during call `id` means: nullopt to keep waiting, else the call's outcome.
  std::optional<Result<json>> handle_message(json& msg, uint64_t id, const std::string& method,
                                             const NotificationHandler& on_notification);
  // Waits until the socket is readable or (with `want_write`) writable; returns whether it is writable.
  Result<bool> wait_io(bool want_write);
  Result<bool> fill_buffer();
  Error transport_error(Error error);

  Fd fd_;
  std::string socket_path_;
  uint64_t next_id_ = 1;
  std::string buf_;     // bytes read and not yet consumed: buf_[start_, size)
  size_t start_ = 0;
  size_t scanned_ = 0;  // buf_[start_, scanned_) holds no newline
  std::string pending_;  // an upload's bytes not yet sent: pending_[pending_start_, size)
  size_t pending_start_ = 0;
  size_t max_line_bytes_ = size_t{1} << 30;
  CallError last_error_;
  std::function<bool()> interrupted_;
  std::string tenant_;
};

}  // namespace sbx::api
