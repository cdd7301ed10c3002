// The monitor's channel to sbxd (JSON lines on fd 3), the log file, and the helpers both modes share.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/file.h"
#include "monitor/monitor.h"

namespace sbx::monitor {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxLine = 8 << 20;  // a spec carries a plan: env, mounts, paths
constexpr size_t kReadChunk = 64 << 10;

// Waits until `fd` is ready for `events` or `deadline` passes (ETIMEDOUT).
Result<void> wait_ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return Error("timed out waiting for sbxd on fd 3", ETIMEDOUT);
    }
    struct pollfd p = {fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 60000)));
    if (n > 0) {
      return ok();
    }
    if (n < 0 && errno != EINTR) {
      return sys_error("poll fd 3");
    }
  }
}

}  // namespace

// Keeps the fds an SCM_RIGHTS message carried (received close-on-exec).
void Channel::keep_fds(struct msghdr& msg) {
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      continue;
    }
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds_.emplace_back(fd);
    }
  }
}

Result<size_t> Channel::read_some() {
  char buf[kReadChunk];
  alignas(struct cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  for (;;) {
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) {
      keep_fds(msg);
      if ((msg.msg_flags & MSG_CTRUNC) != 0) {
        return Error(fmt::format("sbxd passed more than {} fds with one message", kMaxFds), EMSGSIZE);
      }
      buffer_.append(buf, static_cast<size_t>(n));
      if (buffer_.size() > kMaxLine && buffer_.find('\n') == std::string::npos) {
        return Error(fmt::format("a line from sbxd is longer than {} bytes", kMaxLine), EMSGSIZE);
      }
      return static_cast<size_t>(n);
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      return Error("nothing to read on fd 3", EAGAIN);
    }
    if (errno == ECONNRESET) {
      return size_t{0};
    }
    return sys_error("read fd 3");
  }
}

Result<nlohmann::json> Channel::read_spec(std::chrono::milliseconds timeout) {
  const auto deadline = timeout == kNoTimeout ? Clock::time_point::max() : Clock::now() + timeout;
  while (buffer_.find('\n') == std::string::npos) {
    SBX_TRY_CTX(wait_ready(fd_, POLLIN, deadline), "read the spec");
    auto n = read_some();
    if (!n.ok() && n.error().sys_errno() == EAGAIN) {
      continue;
    }
    if (!n.ok()) {
      return std::move(n).error().context("read the spec");
    }
    if (*n == 0) {
      return Error("read the spec: fd 3 closed before a whole line came", EPIPE);
    }
  }
  size_t nl = buffer_.find('\n');
  nlohmann::json spec = nlohmann::json::parse(std::string_view(buffer_).substr(0, nl), nullptr, false);
  buffer_.erase(0, nl + 1);
  if (spec.is_discarded() || !spec.is_object()) {
    return Error("spec: not a JSON object", EINVAL);
  }
  return spec;
}

Result<std::vector<std::string>> Channel::read_lines(bool* eof) {
  *eof = false;
  auto n = read_some();
  if (!n.ok() && n.error().sys_errno() != EAGAIN) {
    return std::move(n).error();
  }
  *eof = n.ok() && *n == 0;
  std::vector<std::string> lines;
  for (size_t nl = buffer_.find('\n'); nl != std::string::npos; nl = buffer_.find('\n')) {
    lines.push_back(buffer_.substr(0, nl));
    buffer_.erase(0, nl + 1);
  }
  return lines;
}

Result<void> Channel::send(const nlohmann::json& message) {
  std::string line = message.dump() + "\n";
  std::string_view rest = line;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!rest.empty()) {
    ssize_t n = ::send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      rest.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      SBX_TRY_CTX(wait_ready(fd_, POLLOUT, deadline), "report to sbxd");
      continue;
    }
    return sys_error("report to sbxd on fd 3");
  }
  return ok();
}

nlohmann::json error_json(const Error& error) {
  return {{"message", error.message()}, {"errno", error.sys_errno()}};
}

Result<LogFile> LogFile::open(std::string path, uint64_t max_bytes) {
  LogFile log;
  log.path_ = std::move(path);
  log.half_ = std::max<uint64_t>(max_bytes / 2, 1);
  SBX_ASSIGN(log.fd_, open_at(AT_FDCWD, log.path_, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0600));
  struct stat st {};
  if (::fstat(log.fd_.get(), &st) < 0) {
    return sys_error("stat '{}'", log.path_);
  }
  log.size_ = static_cast<uint64_t>(st.st_size);
  return log;
}

Result<void> LogFile::rotate() {
  const std::string old = path_ + ".1";
  if (::rename(path_.c_str(), old.c_str()) < 0) {
    return sys_error("rotate the log: rename '{}' to '{}'", path_, old);
  }
  SBX_ASSIGN(fd_, open_at(AT_FDCWD, path_, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600));
  size_ = 0;
  return ok();
}

// Files are cut between lines where possible: what does not fit goes to this file up to its last whole line, the
// rest to a new one. Only a line longer than a whole file is split.
Result<void> LogFile::append(std::string_view data) {
  while (!data.empty()) {
    if (size_ >= half_) {
      SBX_TRY(rotate());
    }
    const size_t room = static_cast<size_t>(half_ - size_);
    size_t n = data.size();
    if (n > room) {
      size_t nl = data.rfind('\n', room - 1);
      if (nl == std::string_view::npos && size_ > 0) {
        SBX_TRY(rotate());
        continue;
      }
      n = nl == std::string_view::npos ? room : nl + 1;
    }
    SBX_TRY_CTX(write_all(fd_.get(), data.substr(0, n)), "append to '{}'", path_);
    size_ += n;
    data.remove_prefix(n);
  }
  return ok();
}

Result<Fd> block_into_signalfd(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) {
    sigaddset(&set, sig);
  }
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0) {
    return sys_error("block signals");
  }
  int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) {
    return sys_error("create a signalfd");
  }
  return Fd(fd);
}

int read_signal(int signal_fd) {
  struct signalfd_siginfo info {};
  ssize_t n = ::read(signal_fd, &info, sizeof info);
  return n == static_cast<ssize_t>(sizeof info) ? static_cast<int>(info.ssi_signo) : 0;
}

void ignore_signals(std::initializer_list<int> signals) {
  for (int sig : signals) {
    ::signal(sig, SIG_IGN);
  }
}

int64_t epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sbx::monitor
