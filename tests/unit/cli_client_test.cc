// api::Client against a scripted fake sbxd on a unix socket in a temp dir (no daemon, no root needed).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "api/client.h"
#include "api/protocol.h"
#include "base/file.h"

using namespace sbx;
using namespace sbx::api;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/sbx-cli-unit-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

Fd listen_on(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd.valid());
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  REQUIRE(::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd.get(), 4) == 0);
  return fd;
}

// Reads one "\n"-terminated line byte by byte (the fake server's side; small requests only).
bool read_line(int fd, std::string& line) {
  line.clear();
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) {
      return false;
    }
    if (c == '\n') {
      return true;
    }
    line += c;
  }
}

// Runs on the server thread: CHECK, never REQUIRE (which would throw out of the thread).
void send_line(int fd, const std::string& line) {
  CHECK(write_all(fd, line + "\n").ok());
}

// A fake sbxd: accepts one connection and hands each request to `serve`, which answers on the fd.
class FakeServer {
 public:
  using Handler = std::function<void(int fd, const json& request)>;

  explicit FakeServer(Handler serve) : dir_(temp_dir()), path_(dir_ + "/sbxd.sock"), listener_(listen_on(path_)) {
    thread_ = std::thread([this, serve = std::move(serve)] {
      Fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      std::string line;
      while (conn.valid() && read_line(conn.get(), line)) {
        json req = json::parse(line, nullptr, false);
        serve(conn.get(), req);
        if (req.is_discarded() || req.value("method", "") == "test.hangup") {
          break;
        }
      }
    });
  }
  ~FakeServer() {
    thread_.join();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
  Fd listener_;
  std::thread thread_;
};

void reply(int fd, const json& req, const json& result) {
  send_line(fd, encode_result(req["id"], result));
}

}  // namespace

TEST_SUITE("api.client") {

TEST_CASE("no daemon: the message says which socket and asks whether sbxd runs") {
  std::string dir = temp_dir();
  auto r = Client::connect(dir + "/none.sock");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "cannot connect to sbxd at " + dir + "/none.sock: is the daemon running? (ENOENT)");
  CHECK(r.error().sys_errno() == ENOENT);

  // A socket file nobody listens on any more: ECONNREFUSED.
  { Fd stale = listen_on(dir + "/stale.sock"); }
  auto refused = Client::connect(dir + "/stale.sock");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message() ==
        "cannot connect to sbxd at " + dir + "/stale.sock: is the daemon running? (ECONNREFUSED)");
  ::unlink((dir + "/stale.sock").c_str());
  ::rmdir(dir.c_str());
  CHECK_FALSE(Client::connect(std::string(200, 'x')).ok());
}

TEST_CASE("permission denied says which socket and that the user must be root or in its group") {
  std::string dir = temp_dir();
  std::string path = dir + "/sbxd.sock";
  Fd listener = listen_on(path);
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  // Root may connect anyway, so the attempt runs as nobody in a child.
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) {
      ::_exit(2);
    }
    auto r = Client::connect(path);
    std::string msg = r.ok() ? "connected" : r.error().message();
    (void)write_all(fds[1], msg);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) {
    msg.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(msg.starts_with("cannot connect to sbxd at " + path + ": permission denied (EACCES): you need to be root or"));
  CHECK(msg.find("in group '") != std::string::npos);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("$SBX_SOCKET overrides the default socket path") {
  ::unsetenv("SBX_SOCKET");
  CHECK(default_socket_path() == "/run/sbx/sbxd.sock");
  ::setenv("SBX_SOCKET", "/tmp/other.sock", 1);
  CHECK(default_socket_path() == "/tmp/other.sock");
  ::setenv("SBX_SOCKET", "", 1);
  CHECK(default_socket_path() == "/run/sbx/sbxd.sock");
  ::unsetenv("SBX_SOCKET");
}

TEST_CASE("a call gets its result; notifications before it are delivered in order; stray responses are skipped") {
  uint64_t first_id = 0;
  FakeServer server([&](int fd, const json& req) {
    if (first_id == 0) {
      first_id = req["id"].get<uint64_t>();
    }
    CHECK(req["jsonrpc"] == "2.0");
    send_line(fd, encode_result(9999, {{"stale", true}}));
    for (int i = 0; i < 3; ++i) {
      send_line(fd, encode_notification("exec.output", {{"n", i}}));
    }
    reply(fd, req, {{"echo", req.contains("params") ? req["params"] : json()}, {"method", req["method"]}});
  });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  std::vector<int> seen;
  auto r = client->call("sandbox.exec", {{"id", "box"}}, [&](const std::string& method, const json& params) {
    CHECK(method == "exec.output");
    seen.push_back(params["n"].get<int>());
  });
  REQUIRE(r.ok());
  CHECK((*r)["echo"] == json{{"id", "box"}});
  CHECK((*r)["method"] == "sandbox.exec");
  CHECK(seen == std::vector<int>{0, 1, 2});
  // Without a handler notifications are dropped; the id is fresh for each call.
  auto r2 = client->call("daemon.info");
  REQUIRE(r2.ok());
  CHECK((*r2)["echo"].is_null());
  CHECK(client->last_error().code == 0);
  auto bye = client->call("test.hangup");
  CHECK(bye.ok());
  CHECK(first_id > 0);
}

TEST_CASE("a JSON-RPC error keeps its code, message and data") {
  FakeServer server([](int fd, const json& req) {
    json err = {{"code", kSystemError},
                {"message", "exec 'nope': No such file or directory (ENOENT)"},
                {"data", {{"errno", ENOENT}, {"errname", "ENOENT"}}}};
    if (req["method"] == "test.hangup") {
      err = {{"code", kNotFound}, {"message", "no sandbox 'x'"}};
    }
    send_line(fd, encode_error(req["id"], err));
  });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  auto r = client->call("sandbox.exec", {{"id", "box"}, {"argv", {"nope"}}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == kSystemError);
  CHECK(r.error().message() == "exec 'nope': No such file or directory (ENOENT)");
  CHECK(r.error().sys_errno() == ENOENT);
  CHECK(client->last_error().code == kSystemError);
  CHECK(client->last_error().data["errname"] == "ENOENT");
  auto r2 = client->call("test.hangup");
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.error().code() == kNotFound);
  CHECK(r2.error().sys_errno() == 0);
  CHECK(client->last_error().data.is_null());
}

TEST_CASE("an error with a null id (the daemon could not read the request) fails the call") {
  FakeServer server([](int fd, const json&) {
    send_line(fd, encode_error(nullptr, {{"code", kInvalidRequest}, {"message", "request line too large"}}));
  });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  auto r = client->call("test.hangup");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == kInvalidRequest);
  CHECK(r.error().message() == "request line too large");
}

TEST_CASE("a connection that ends before the response fails with code 0 and says so") {
  FakeServer server([](int fd, const json&) { send_line(fd, encode_notification("exec.output", {{"x", 1}})); });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  auto r = client->call("test.hangup");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == 0);
  CHECK(r.error().message() == "call test.hangup: sbxd at " + server.path() + " closed the connection");
  CHECK(client->last_error().code == 0);
}

TEST_CASE("garbage from the daemon is an error, not a crash") {
  FakeServer server([](int fd, const json&) { send_line(fd, "{not json"); });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  auto r = client->call("test.hangup");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("not a JSON object") != std::string::npos);
}

TEST_CASE("50 MB of output as notifications and a 20 MB result line arrive whole and quickly") {
  constexpr int kChunks = 800;
  const std::string chunk(64 * 1024, 'x');
  const std::string chunk_b64 = base64_encode(chunk);
  const std::string big(20 << 20, 'y');
  FakeServer server([&](int fd, const json& req) {
    std::string batch;
    for (int i = 0; i < kChunks; ++i) {
      batch += encode_notification("exec.output", {{"stream", "stdout"}, {"data_b64", chunk_b64}}) + "\n";
      if (batch.size() > (1 << 20)) {
        CHECK(write_all(fd, batch).ok());
        batch.clear();
      }
    }
    CHECK(write_all(fd, batch).ok());
    reply(fd, req, {{"exit_code", 0}, {"stdout_b64", base64_encode(big)}});
  });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  size_t bytes = 0;
  auto start = std::chrono::steady_clock::now();
  auto r = client->call("test.hangup", nullptr, [&](const std::string&, const json& params) {
    auto data = base64_decode(params["data_b64"].get<std::string>());
    REQUIRE(data.ok());
    bytes += data->size();
  });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(r.ok());
  CHECK(bytes == size_t{kChunks} * chunk.size());
  CHECK(base64_decode((*r)["stdout_b64"].get<std::string>())->size() == big.size());
  CHECK(secs < 20);  // quadratic buffering would take minutes
  MESSAGE("50 MB of notifications + a 27 MB line in " << secs << "s");
}

TEST_CASE("after a subscription, notifications are read one by one") {
  FakeServer server([](int fd, const json& req) {
    reply(fd, req, json::object());
    send_line(fd, encode_notification("event", {{"seq", 1}}));
    send_line(fd, encode_result(12345, {}));  // a response to no pending call is skipped
    send_line(fd, encode_notification("event", {{"seq", 2}}));
  });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  REQUIRE(client->call("test.hangup").ok());
  auto n1 = client->next_notification();
  REQUIRE(n1.ok());
  CHECK(n1->method == "event");
  CHECK(n1->params["seq"] == 1);
  auto n2 = client->next_notification();
  REQUIRE(n2.ok());
  CHECK(n2->params["seq"] == 2);
  CHECK_FALSE(client->next_notification().ok());
}

// Reads lines from a socket in big reads (the fake server's side of an upload).
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  bool next(std::string& line) {
    for (;;) {
      size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        line = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 1;
        return true;
      }
      buf_.erase(0, pos_);
      pos_ = 0;
      char chunk[65536];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) {
        return false;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

TEST_CASE("an upload interleaves its notifications with what the daemon sends, without deadlock") {
  constexpr size_t kChunk = 256 * 1024;
  constexpr int kChunks = 24;
  // For every chunk the server floods the client with 2 MB of progress before reading on: a client that only
  // wrote would block on a full socket while the server blocks too.
  const std::string filler(64 * 1024, 'p');
  size_t received = 0;
  bool eof_seen = false;
  FakeServer server([&](int fd, const json& req) {
    if (req.value("method", "") != "image.import") {
      return;
    }
    LineReader reader(fd);
    std::string line;
    while (reader.next(line)) {
      json n = json::parse(line, nullptr, false);
      CHECK(n.value("method", "") == "image.data");
      CHECK_FALSE(n.contains("id"));
      CHECK(n["params"]["request_id"] == req["id"]);
      if (n["params"].value("eof", false)) {
        eof_seen = true;
        break;
      }
      received += base64_decode(n["params"]["data_b64"].get<std::string>())->size();
      for (int i = 0; i < 32; ++i) {
        send_line(fd, encode_notification("image.progress", {{"phase", "upload"}, {"bytes", received},
                                                            {"pad", filler}}));
      }
    }
    reply(fd, req, {{"id", "sha256:abc"}, {"size", received}});
  });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  int sent = 0;
  uint64_t seen_id = 0;
  Client::UploadSource source = [&](uint64_t request_id) -> Result<std::optional<Notification>> {
    seen_id = request_id;
    if (sent > kChunks) {
      return std::optional<Notification>();
    }
    json params = {{"request_id", request_id}};
    if (sent++ == kChunks) {
      params["eof"] = true;
    } else {
      params["data_b64"] = base64_encode(std::string(kChunk, 'd'));
    }
    return std::optional<Notification>(Notification{"image.data", std::move(params)});
  };
  size_t progress = 0;
  auto r = client->call_with_upload("image.import", {{"name", "x"}, {"stream", true}}, source,
                                    [&](const std::string& method, const json&) {
                                      CHECK(method == "image.progress");
                                      ++progress;
                                    });
  REQUIRE(r.ok());
  CHECK((*r)["size"] == kChunk * kChunks);
  CHECK(eof_seen);
  CHECK(progress == 32u * kChunks);
  CHECK(seen_id > 0);
}

TEST_CASE("an upload refused at once ends with the daemon's error; a failing source fails the call") {
  FakeServer server([](int fd, const json& req) {
    if (req.value("method", "") == "image.import") {
      send_line(fd, encode_error(req["id"], {{"code", kPermissionDenied}, {"message", "root only"}}));
    }
  });
  auto client = Client::connect(server.path());
  REQUIRE(client.ok());
  int asked = 0;
  Client::UploadSource slow = [&](uint64_t id) -> Result<std::optional<Notification>> {
    ++asked;
    usleep(20000);
    return std::optional<Notification>(Notification{"image.data", {{"request_id", id}, {"data_b64", "eHl6"}}});
  };
  auto r = client->call_with_upload("image.import", {{"name", "x"}}, slow);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == kPermissionDenied);
  CHECK(r.error().message() == "root only");
  CHECK(asked < 1000);

  auto r2 = client->call_with_upload("test.other", {}, [](uint64_t) -> Result<std::optional<Notification>> {
    return Error("read the image to import: Input/output error", EIO);
  });
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.error().message() == "call test.other: read the image to import: Input/output error");
}

}  // TEST_SUITE
