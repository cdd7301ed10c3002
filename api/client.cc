#include "api/client.h"

#include <grp.h>
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

Result<json> Client::read_message() {
  for (;;) {
    size_t pos = buf_.find('\n', scanned_);
    if (pos != std::string::npos) {
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
      return msg;
    }
    scanned_ = buf_.size();
    if (buf_.size() - start_ > max_line_bytes_) {
      return Error(fmt::format("sbxd at {} sent a line longer than {} bytes", socket_path_, max_line_bytes_), EMSGSIZE);
    }
    SBX_ASSIGN(bool more, fill_buffer());
    if (!more) {
      const char* where = buf_.size() > start_ ? " in the middle of a message" : "";
      return Error(fmt::format("sbxd at {} closed the connection{}", socket_path_, where), ECONNRESET);
    }
  }
}

Result<json> Client::call(const std::string& method, json params, const NotificationHandler& on_notification) {
  last_error_ = CallError{};
  if (!tenant_.empty() && (params.is_null() || params.is_object())) {
    params["tenant"] = tenant_;
  }
  uint64_t id = next_id_++;
  auto sent = send_line(encode_request(id, method, params));
  if (!sent.ok()) {
    return transport_error(std::move(sent).error().context(fmt::format("call {}", method)));
  }
  for (;;) {
    auto msg = read_message();
    if (!msg.ok()) {
      return transport_error(std::move(msg).error().context(fmt::format("call {}", method)));
    }
    auto mid = msg->find("id");
    if (mid == msg->end()) {
      std::string name = string_member(*msg, "method");
      if (!name.empty() && on_notification) {
        auto p = msg->find("params");
        on_notification(name, p != msg->end() ? *p : json(nullptr));
      }
      continue;
    }
    bool ours = mid->is_number_unsigned() && mid->get<uint64_t>() == id;
    // A null id: the daemon could not read our request (parse error, line too large).
    bool unreadable = mid->is_null() && msg->contains("error");
    if (!ours && !unreadable) {
      continue;
    }
    if (auto err = msg->find("error"); err != msg->end()) {
      last_error_ = call_error_of(*err);
      return last_error_.to_error();
    }
    if (auto res = msg->find("result"); res != msg->end()) {
      return std::move(*res);
    }
    return transport_error(
        Error(fmt::format("call {}: sbxd sent a response with neither result nor error", method), EPROTO));
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
