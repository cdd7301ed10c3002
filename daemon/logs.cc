// sandbox.logs: the main command's output from its size-capped log (main.log, and main.log.1 after a
// rotation), the last N lines, and with follow, what arrives until the main command has ended.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/file.h"
#include "daemon/daemon.h"

namespace sbx::daemon {

namespace {

constexpr uint64_t kFollowPollMs = 100;
constexpr size_t kChunk = 64 << 10;

// The last `lines` lines of `text` (all of it for a negative count).
std::string_view tail_lines(std::string_view text, int64_t lines) {
  if (lines < 0) {
    return text;
  }
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') {
    --end;  // a final newline ends the last line, it does not start another
  }
  size_t pos = end;
  for (int64_t n = 0; n < lines; ++n) {
    size_t nl = pos == 0 ? std::string_view::npos : text.rfind('\n', pos - 1);
    if (nl == std::string_view::npos) {
      return text;
    }
    pos = nl;
  }
  return lines == 0 ? text.substr(text.size()) : text.substr(pos + 1);
}

Result<std::string> read_rest(int fd, uint64_t max) {
  std::string out;
  char buf[kChunk];
  while (out.size() < max) {
    ssize_t n = ::read(fd, buf, std::min<uint64_t>(sizeof buf, max - out.size()));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("read log");
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

class LogFollower {
 public:
  LogFollower(Daemon& d, CallPtr call, uint64_t token, std::string id, Fd fd, uint64_t sent)
      : d_(d), call_(std::move(call)), token_(token), id_(std::move(id)), fd_(std::move(fd)), sent_(sent) {}
  ~LogFollower() {
    if (auto conn = call_->connection(); conn && close_token_ != 0) {
      conn->remove_hook(close_token_);
    }
  }

  void start() {
    if (auto conn = call_->connection()) {
      close_token_ = conn->on_close([this] {
        close_token_ = 0;
        d_.retire_follower(token_);
      });
    }
    timer_ = UvHandle<uv_timer_t>::make();
    uv_timer_init(d_.loop(), timer_.get());
    timer_.get()->data = this;
    uv_timer_start(timer_.get(), [](uv_timer_t* t) {
      if (t->data != nullptr) {
        static_cast<LogFollower*>(t->data)->poll();
      }
    }, kFollowPollMs, kFollowPollMs);
  }

 private:
  void poll() {
    auto conn = call_->connection();
    if (!conn || conn->queued_bytes() > Connection::kHighWater) {
      return;  // the client is slow: the log keeps the bytes meanwhile
    }
    SandboxEntry* e = d_.entry(id_);
    bool running = e != nullptr && (e->row.state == "running" || e->launch);
    pump();
    if (rotated()) {
      pump();
      auto fd = open_at(AT_FDCWD, d_.log_path(id_), O_RDONLY | O_CLOEXEC);
      if (fd.ok()) {
        fd_ = std::move(*fd);
        pump();
      }
    }
    if (!running) {
      timer_.reset();
      call_->reply({{"bytes", sent_}});
      d_.retire_follower(token_);
    }
  }

  void pump() {
    if (!fd_.valid()) {
      return;
    }
    auto data = read_rest(fd_.get(), 4 * kChunk);
    if (!data.ok() || data->empty()) {
      return;
    }
    sent_ += data->size();
    call_->notify("logs.output",
                  {{"id", id_}, {"request_id", call_->id()}, {"data_b64", api::base64_encode(*data)}});
  }

  // Whether the monitor has started a new file since ours was opened.
  bool rotated() const {
    struct stat ours {}, current {};
    if (!fd_.valid()) {
      return ::stat(d_.log_path(id_).c_str(), &current) == 0;
    }
    return ::fstat(fd_.get(), &ours) == 0 && ::stat(d_.log_path(id_).c_str(), &current) == 0 &&
           (ours.st_ino != current.st_ino || ours.st_dev != current.st_dev);
  }

  Daemon& d_;
  CallPtr call_;
  uint64_t token_;
  std::string id_;
  Fd fd_;
  uint64_t sent_;
  uint64_t close_token_ = 0;
  UvHandle<uv_timer_t> timer_;
};

void Daemon::retire_follower(uint64_t token) {
  auto it = followers_.find(token);
  if (it != followers_.end()) {
    graveyard_.push_back(std::move(it->second));
    followers_.erase(it);
  }
}

void Daemon::sandbox_logs(CallPtr call) {
  auto found = find(call->caller(), call->params()["id"]);
  if (!found.ok()) {
    return call->fail(found.error());
  }
  const std::string id = (*found)->row.id;
  int64_t tail = call->params().value("tail", int64_t(-1));
  // The current file is opened first, so nothing written between reading and following is lost.
  Fd current;
  if (auto fd = open_at(AT_FDCWD, log_path(id), O_RDONLY | O_CLOEXEC); fd.ok()) {
    current = std::move(*fd);
  }
  std::string text;
  if (auto old = read_file(log_path(id) + ".1", config_.log_max_bytes); old.ok()) {
    text = std::move(*old);
  }
  if (current.valid()) {
    auto rest = read_rest(current.get(), config_.log_max_bytes);
    if (!rest.ok()) {
      return call->fail(rest.error());
    }
    text += *rest;
  }
  std::string_view shown = tail_lines(text, tail);
  for (size_t off = 0; off < shown.size(); off += kChunk) {
    call->notify("logs.output", {{"id", id},
                                 {"request_id", call->id()},
                                 {"data_b64", api::base64_encode(shown.substr(off, kChunk))}});
  }
  if (!call->params().value("follow", false)) {
    return call->reply({{"bytes", shown.size()}});
  }
  uint64_t token = next_session_++;
  auto f = std::make_shared<LogFollower>(*this, call, token, id, std::move(current), shown.size());
  LogFollower* raw = f.get();
  followers_[token] = std::move(f);
  raw->start();
}

}  // namespace sbx::daemon
