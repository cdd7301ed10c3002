#include "api/client.h"

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "api/protocol.h"
#include "base/unix_address.h"

namespace sbx::api {

namespace {

constexpr size_t kMinRead = 64 * 1024;
constexpr size_t kMaxRead = 16 * 1024 * 1024;

// The name of the group owning `path`, or "" when it cannot be found out.
std::string socket_group(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return "";
  }
  std::vector<char> buf(16384);
  struct group grp {};
  struct group* found = nullptr;
  if (::getgrgid_r(st.st_gid, &grp, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return std::to_string(st.st_gid);
  }
  return found->gr_name;
}

Error connect_error(const std::string& path, int err) {
  if (err == ENOENT || err == ECONNREFUSED) {
    return Error(fmt::format("cannot connect to sbxd at {}: is the daemon running? ({})", path, errno_name(err)), err);
  }
  if (err == EACCES || err == EPERM) {
    std::string group = socket_group(path);
    std::string who = group.empty() ? "in the socket's group" : fmt::format("in group '{}', the socket's group", group);
    return Error(fmt::format("cannot connect to sbxd at {}: permission denied ({}): you need to be root or {}", path,
                             errno_name(err), who),
                 err);
  }
  return Error::from_errno(fmt::format("cannot connect to sbxd at {}", path), err);
}

std::string string_member(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return "";
  }
  return it->get<std::string>();
}

CallError call_error_of(const json& err) {
  CallError e;
  if (!err.is_object()) {
    e.code = kInternalError;
    e.message = "sbxd sent a malformed error";
    return e;
  }
  auto code = err.find("code");
  e.code = code != err.end() && code->is_number_integer() ? code->get<int>() : kInternalError;
  e.message = string_member(err, "message");
  auto data = err.find("data");
  if (data != err.end()) {
    e.data = *data;
  }
  return e;
}

}  // namespace

std::string default_socket_path() {
  const char* env = std::getenv("SBX_SOCKET");
  if (env != nullptr && env[0] != '\0') {
    return env;
  }
  return kDefaultSocket;
}

Error CallError::to_error() const {
  int err = 0;
  if (data.is_object()) {
    auto it = data.find("errno");
    if (it != data.end() && it->is_number_integer()) {
      err = it->get<int>();
    }
  }
  std::string msg = message.empty() ? fmt::format("sbxd returned error {} ({})", code, error_code_name(code)) : message;
  return Error(std::move(msg), err).with_code(code);
}

Result<Client> Client::connect(std::string socket_path) {
  auto address = unix_address(socket_path);
  if (!address.ok()) {
    return std::move(address).error().context("cannot connect to sbxd");
  }
  const sockaddr_un addr = *address;
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return sys_error("create a unix socket to connect to sbxd");
  }
  int rc = 0;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EISCONN) {
    return connect_error(socket_path, errno);
  }
  return Client(std::move(fd), std::move(socket_path));
}

Error Client::transport_error(Error error) {
  last_error_ = CallError{0, error.message(), nullptr};
  return error;
}

Result<void> Client::send_line(std::string line) {
  line += '\n';
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd_.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      if (interrupted_ && interrupted_()) {
        return Error("interrupted", ECANCELED);
      }
      continue;
    }
    if (n < 0) {
      return sys_error("write to sbxd at {}", socket_path_);
    }
    off += static_cast<size_t>(n);
  }
  return ok();
}

// Reads more bytes into buf_; false at EOF.
Result<bool> Client::fill_buffer() {
  if (start_ > 0) {
    buf_.erase(0, start_);
    scanned_ -= start_;
    start_ = 0;
  }
  size_t want = std::clamp(buf_.size(), kMinRead, kMaxRead);
  size_t old = buf_.size();
  buf_.resize(old + want);
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf_.data() + old, want);
    if (n < 0 && errno == EINTR) {
      if (interrupted_ && interrupted_()) {
        buf_.resize(old);
        return Error("interrupted", ECANCELED);
      }
      continue;
    }
    if (n < 0) {
      int err = errno;
      buf_.resize(old);
      return Error::from_errno(fmt::format("read from sbxd at {}", socket_path_), err);
    }
    buf_.resize(old + static_cast<size_t>(n));
    return n > 0;
  }
}

Result<std::optional<json>> Client::take_message() {
  size_t pos = buf_.find('\n', scanned_);
  if (pos == std::string::npos) {
    scanned_ = buf_.size();
    if (buf_.size() - start_ > max_line_bytes_) {
      return Error(fmt::format("sbxd at {} sent a line longer than {} bytes", socket_path_, max_line_bytes_), EMSGSIZE);
    }
    return std::optional<json>();
  }
  json msg = json::parse(buf_.data() + start_, buf_.data() + pos, nullptr, false);
  start_ = pos + 1;
  scanned_ = start_;
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = scanned_ = 0;
    if (buf_.capacity() > kMaxRead) {
      buf_.shrink_to_fit();
    }
  }
  if (msg.is_discarded() || !msg.is_object()) {
    return Error(fmt::format("sbxd at {} sent a line that is not a JSON object", socket_path_), EPROTO);
  }
  return std::optional<json>(std::move(msg));
}

Result<json> Client::read_message() {
  for (;;) {
    SBX_ASSIGN(std::optional<json> msg, take_message());
    if (msg) {
      return std::move(*msg);
    }
    SBX_ASSIGN(bool more, fill_buffer());
    if (!more) {
      const char* where = buf_.size() > start_ ? " in the middle of a message" : "";
      return Error(fmt::format("sbxd at {} closed the connection{}", socket_path_, where), ECONNRESET);
    }
  }
}

Result<uint64_t> Client::send_request(const std::string& method, json params) {
  last_error_ = CallError{};
  if (!tenant_.empty() && (params.is_null() || params.is_object())) {
    params["tenant"] = tenant_;
  }
  uint64_t id = next_id_++;
  SBX_TRY(send_line(encode_request(id, method, params)));
  return id;
}

std::optional<Result<json>> Client::handle_message(json& msg, uint64_t id, const std::string& method,
                                                   const NotificationHandler& on_notification) {
  auto mid = msg.find("id");
  if (mid == msg.end()) {
    std::string name = string_member(msg, "method");
    if (!name.empty() && on_notification) {
      auto p = msg.find("params");
      on_notification(name, p != msg.end() ? *p : json(nullptr));
    }
    return std::nullopt;
  }
  bool ours = mid->is_number_unsigned() && mid->get<uint64_t>() == id;
  // A null id: the daemon could not read our request (parse error, line too large).
  bool unreadable = mid->is_null() && msg.contains("error");
  if (!ours && !unreadable) {
    return std::nullopt;
  }
  if (auto err = msg.find("error"); err != msg.end()) {
    last_error_ = call_error_of(*err);
    return Result<json>(last_error_.to_error());
  }
  if (auto res = msg.find("result"); res != msg.end()) {
    return Result<json>(std::move(*res));
  }
  return Result<json>(transport_error(
      Error(fmt::format("call {}: sbxd sent a response with neither result nor error", method), EPROTO)));
}

Result<json> Client::call(const std::string& method, json params, const NotificationHandler& on_notification) {
  auto id = send_request(method, std::move(params));
  if (!id.ok()) {
    return transport_error(std::move(id).error().context(fmt::format("call {}", method)));
  }
  for (;;) {
    auto msg = read_message();
    if (!msg.ok()) {
      return transport_error(std::move(msg).error().context(fmt::format("call {}", method)));
    }
    if (auto outcome = handle_message(*msg, *id, method, on_notification)) {
      return std::move(*outcome);
    }
  }
}

Result<void> Client::notify(const std::string& method, const json& params) {
  return send_line(encode_notification(method, params));
}

Result<bool> Client::wait_io(bool want_write) {
  struct pollfd p {};
  p.fd = fd_.get();
  p.events = static_cast<short>(POLLIN | (want_write ? POLLOUT : 0));
  for (;;) {
    int n = ::poll(&p, 1, -1);
    if (n < 0 && errno == EINTR) {
      if (interrupted_ && interrupted_()) {
        return Error("interrupted", ECANCELED);
      }
      continue;
    }
    if (n < 0) {
      return sys_error("poll the connection to sbxd at {}", socket_path_);
    }
    return want_write && (p.revents & (POLLOUT | POLLERR)) != 0 && (p.revents & (POLLIN | POLLHUP)) == 0;
  }
}

Result<void> Client::send_some() {
  while (pending_start_ < pending_.size()) {
    ssize_t n = ::send(fd_.get(), pending_.data() + pending_start_, pending_.size() - pending_start_,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return ok();
    }
    if (n < 0) {
      return sys_error("write to sbxd at {}", socket_path_);
    }
    pending_start_ += static_cast<size_t>(n);
  }
  pending_.clear();
  pending_start_ = 0;
  return ok();
}

void Client::finish_pending_line() {
  // A line half sent would garble the next message on this connection: the rest of it goes out (without its "\n"
  // the daemon could not tell where the next one starts).
  if (pending_start_ > 0 && pending_start_ < pending_.size()) {
    (void)send_line(pending_.substr(pending_start_, pending_.size() - pending_start_ - 1));
  }
  pending_.clear();
  pending_start_ = 0;
}

Result<json> Client::call_with_upload(const std::string& method, json params, const UploadSource& next,
                                      const NotificationHandler& on_notification) {
  auto fail = [&](Error e) { return transport_error(std::move(e).context(fmt::format("call {}", method))); };
  auto id = send_request(method, std::move(params));
  if (!id.ok()) {
    return fail(std::move(id).error());
  }
  bool source_done = false;
  pending_.clear();
  pending_start_ = 0;
  for (;;) {
    // Whatever the daemon already sent comes first: its answer may end the upload early.
    for (;;) {
      auto msg = take_message();
      if (!msg.ok()) {
        return fail(std::move(msg).error());
      }
      if (!*msg) {
        break;
      }
      if (auto outcome = handle_message(**msg, *id, method, on_notification)) {
        finish_pending_line();
        return std::move(*outcome);
      }
    }
    if (pending_.empty() && !source_done) {
      auto n = next(*id);
      if (!n.ok()) {
        return fail(std::move(n).error());
      }
      if (*n) {
        pending_ = encode_notification((*n)->method, (*n)->params) + "\n";
      } else {
        source_done = true;
      }
    }
    auto writable = wait_io(!pending_.empty());
    if (!writable.ok()) {
      return fail(std::move(writable).error());
    }
    if (*writable) {
      if (auto s = send_some(); !s.ok()) {
        return fail(std::move(s).error());
      }
      continue;
    }
    auto more = fill_buffer();
    if (!more.ok()) {
      return fail(std::move(more).error());
    }
    if (!*more) {
      const char* where = buf_.size() > start_ ? " in the middle of a message" : "";
      return fail(Error(fmt::format("sbxd at {} closed the connection{}", socket_path_, where), ECONNRESET));
    }
  }
}

Result<Notification> Client::next_notification() {
  for (;;) {
    SBX_ASSIGN(json msg, read_message());
    if (msg.contains("id")) {
      continue;
    }
    std::string name = string_member(msg, "method");
    if (name.empty()) {
      continue;
    }
    auto p = msg.find("params");
    return Notification{std::move(name), p != msg.end() ? std::move(*p) : json(nullptr)};
  }
}

}  // namespace sbx::api
