// file.*: binary round trips, listing, removing, creating parents, and the confinement of every path to the
// sandbox's root: symlinks and ".." planted by the sandbox never reach a host file, FIFOs and devices never block
// the daemon, kernel file systems are refused.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) {
    s += static_cast<char>(i);
  }
  return s;
}

json write_file_in(const std::string& id, const std::string& path, const std::string& data, json extra = {}) {
  json params = {{"id", id}, {"path", path}, {"data_b64", api::base64_encode(data)}};
  if (extra.is_object()) {
    params.update(extra);
  }
  return call_ok("file.write", params);
}

std::string read_file_in(const std::string& id, const std::string& path) {
  json r = call_ok("file.read", {{"id", id}, {"path", path}});
  auto data = api::base64_decode(r["data_b64"].get<std::string>());
  REQUIRE(data.ok());
  return *data;
}

std::map<std::string, json> entries(const std::string& id, const std::string& path) {
  std::map<std::string, json> out;
  json r = call_ok("file.list", {{"id", id}, {"path", path}});
  for (const auto& e : r["entries"]) {
    out[e["name"].get<std::string>()] = e;
  }
  return out;
}

// file.read of `path` must either fail or return the sandbox's own file (what `cat` shows inside), never `host`.
void check_confined_read(const std::string& id, const std::string& path, const std::string& inside,
                         const std::string& host) {
  CAPTURE(path);
  auto c = connect();
  auto r = c.call("file.read", {{"id", id}, {"path", path}});
  if (!r.ok()) {
    CHECK(c.last_error().code != 0);
    return;
  }
  auto data = api::base64_decode((*r)["data_b64"].get<std::string>());
  REQUIRE(data.ok());
  CHECK(*data != host);
  CHECK(*data == inside);
}

}  // namespace

TEST_SUITE("daemon.files") {

TEST_CASE("file.write then file.read round-trips every byte value") {
  Sandbox s;
  const std::string bytes = all_bytes();
  CHECK(write_file_in(s.id(), "/tmp/bin", bytes)["bytes"] == 256);
  CHECK(read_file_in(s.id(), "/tmp/bin") == bytes);
  // The process inside sees the same bytes.
  CHECK(sh(s.id(), "od -An -tx1 -v /tmp/bin | tr -d ' \\n' | head -c 16") == "0001020304050607");
  CHECK(sh(s.id(), "wc -c < /tmp/bin") == "256\n");
  // What a process writes, file.read returns.
  sh(s.id(), "printf 'a\\0b\\377' > /tmp/made");
  CHECK(read_file_in(s.id(), "/tmp/made") == std::string("a\0b\xff", 4));
  // offset and length
  json part = call_ok("file.read", {{"id", s.id()}, {"path", "/tmp/bin"}, {"offset", 250}, {"length", 3}});
  CHECK(part["size"] == 256);
  CHECK(part["eof"] == false);
  CHECK(*api::base64_decode(part["data_b64"].get<std::string>()) == bytes.substr(250, 3));
  json rest = call_ok("file.read", {{"id", s.id()}, {"path", "/tmp/bin"}, {"offset", 250}});
  CHECK(rest["eof"] == true);
  CHECK(*api::base64_decode(rest["data_b64"].get<std::string>()) == bytes.substr(250));
  // append and replace
  write_file_in(s.id(), "/tmp/bin", "xyz", {{"append", true}});
  CHECK(read_file_in(s.id(), "/tmp/bin") == bytes + "xyz");
  write_file_in(s.id(), "/tmp/bin", "new");
  CHECK(read_file_in(s.id(), "/tmp/bin") == "new");
  CHECK(call_err("file.read", {{"id", s.id()}, {"path", "/tmp/none"}}).code == api::kNotFound);
  CHECK(call_err("file.read", {{"id", s.id()}, {"path", "tmp/bin"}}).code == api::kInvalidParams);
  CHECK(call_err("file.write", {{"id", s.id()}, {"path", "/tmp/x"}, {"data_b64", "!!"}}).code ==
        api::kInvalidParams);
}

TEST_CASE("file.write sets mode and owner, and creates parents only with mkdirs") {
  Sandbox s;
  CHECK(call_err("file.write", {{"id", s.id()}, {"path", "/a/b/c/file"}, {"data_b64", api::base64_encode("x")}})
            .code == api::kNotFound);
  write_file_in(s.id(), "/a/b/c/file", "x", {{"mkdirs", true}, {"mode", 0600}, {"uid", 1000}, {"gid", 1001}});
  CHECK(sh(s.id(), "stat -c '%a %u %g' /a/b/c/file") == "600 1000 1001\n");
  auto in_b = entries(s.id(), "/a/b");
  REQUIRE(in_b.count("c") == 1);
  CHECK(in_b["c"]["type"] == "dir");
  auto in_c = entries(s.id(), "/a/b/c");
  REQUIRE(in_c.count("file") == 1);
  CHECK(in_c["file"]["type"] == "file");
  CHECK(in_c["file"]["size"] == 1);
  CHECK(in_c["file"]["mode"] == 0600);
  CHECK(in_c["file"]["mtime"].get<int64_t>() > 0);
}

TEST_CASE("file.list shows names, types and sizes") {
  Sandbox s;
  sh(s.id(), "mkdir /tmp/l && cd /tmp/l && echo -n 12345 > f && mkdir d && ln -s f link && mkfifo p");
  auto e = entries(s.id(), "/tmp/l");
  CHECK(e.size() == 4);
  CHECK(e["f"]["type"] == "file");
  CHECK(e["f"]["size"] == 5);
  CHECK(e["d"]["type"] == "dir");
  CHECK(e["link"]["type"] == "symlink");
  CHECK(e["p"]["type"] == "other");
  CHECK(entries(s.id(), "/").count("bin") == 1);
  CHECK(call_err("file.list", {{"id", s.id()}, {"path", "/no/such/dir"}}).code == api::kNotFound);
}

TEST_CASE("file.remove removes a file, an empty dir, and a tree only when recursive") {
  Sandbox s;
  sh(s.id(), "mkdir -p /tmp/t/a/b && touch /tmp/t/a/b/f /tmp/t/g && mkdir /tmp/empty && touch /tmp/one");
  CHECK(call_ok("file.remove", {{"id", s.id()}, {"path", "/tmp/one"}}) == json::object());
  CHECK(call_ok("file.remove", {{"id", s.id()}, {"path", "/tmp/empty"}}) == json::object());
  auto err = call_err("file.remove", {{"id", s.id()}, {"path", "/tmp/t"}});
  CHECK(err.code != 0);
  CHECK(sh(s.id(), "ls /tmp/t/a/b") == "f\n");
  CHECK(call_ok("file.remove", {{"id", s.id()}, {"path", "/tmp/t"}, {"recursive", true}}) == json::object());
  CHECK(sh(s.id(), "ls -a /tmp") == ".\n..\n");
  CHECK(call_err("file.remove", {{"id", s.id()}, {"path", "/tmp/t"}}).code == api::kNotFound);
}

TEST_CASE("a symlink planted in the sandbox never leads file.read to the host's /etc/shadow") {
  REQUIRE_MESSAGE(std::filesystem::exists("/etc/shadow"), "the host has no /etc/shadow to protect");
  const std::string host = host_file("/etc/shadow");
  Sandbox s;
  // Without a shadow file inside, the link leads nowhere; with one, to the sandbox's own.
  sh(s.id(), "ln -s /etc/shadow /tmp/s; ln -s ../../../../../../etc/shadow /tmp/rel; ln -s / /tmp/root");
  check_confined_read(s.id(), "/tmp/s", "", host);
  check_confined_read(s.id(), "/tmp/rel", "", host);
  check_confined_read(s.id(), "/../../../../etc/shadow", "", host);
  check_confined_read(s.id(), "/tmp/../../../../etc/shadow", "", host);
  check_confined_read(s.id(), "/tmp/root/etc/shadow", "", host);
  sh(s.id(), "echo sandbox-shadow > /etc/shadow");
  check_confined_read(s.id(), "/tmp/s", "sandbox-shadow\n", host);
  check_confined_read(s.id(), "/tmp/rel", "sandbox-shadow\n", host);
  check_confined_read(s.id(), "/../../../../etc/shadow", "sandbox-shadow\n", host);
  check_confined_read(s.id(), "/tmp/root/etc/shadow", "sandbox-shadow\n", host);
  // A link to a directory lists the sandbox's, not the host's.
  auto root = entries(s.id(), "/tmp/root");
  CHECK(root.count("bin") == 1);
  CHECK(root.count("work") == 0);
  // Magic links (/proc/<pid>/root and the like) are not followed out either.
  sh(s.id(), "ln -s /proc/1/root /tmp/magic");
  check_confined_read(s.id(), "/tmp/magic/etc/shadow", "sandbox-shadow\n", host);
}

TEST_CASE("writes through planted symlinks stay inside the sandbox") {
  Sandbox s;
  const std::string marker = fmt::format("/etc/sbx-test-daemon-marker-{}", ::getpid());
  sh(s.id(), "ln -s /etc /tmp/etc; ln -s " + marker + " /tmp/direct");
  auto c = connect();
  for (const char* path : {"/tmp/etc/sbx-test-daemon-marker", "/tmp/direct", "/../../etc/sbx-test-daemon-m2"}) {
    CAPTURE(path);
    (void)c.call("file.write", {{"id", s.id()}, {"path", path}, {"data_b64", api::base64_encode("x")}});
  }
  CHECK(!std::filesystem::exists("/etc/sbx-test-daemon-marker"));
  CHECK(!std::filesystem::exists(marker));
  CHECK(!std::filesystem::exists("/etc/sbx-test-daemon-m2"));
  (void)c.call("file.remove", {{"id", s.id()}, {"path", "/tmp/etc/passwd"}});
  CHECK(std::filesystem::exists("/etc/passwd"));
}

TEST_CASE("a FIFO or a device in the sandbox does not hang file.read, and the daemon keeps answering") {
  Sandbox s;
  sh(s.id(), "mkfifo /tmp/fifo");
  auto c = connect();
  auto r = c.call("file.read", {{"id", s.id()}, {"path", "/tmp/fifo"}});
  CHECK(!r.ok());
  CHECK(c.last_error().code != 0);  // an answer from the daemon, not a timeout
  auto w = c.call("file.write", {{"id", s.id()}, {"path", "/tmp/fifo"}, {"data_b64", api::base64_encode("x")}});
  CHECK(!w.ok());
  CHECK(c.last_error().code != 0);
  for (const char* dev : {"/dev/zero", "/dev/urandom", "/dev/null"}) {
    CAPTURE(dev);
    auto d = c.call("file.read", {{"id", s.id()}, {"path", dev}});
    CHECK(!d.ok());
    CHECK(c.last_error().code != 0);
  }
  CHECK(call_ok("daemon.info")["pid"] == TestEnv::get().daemon().pid());
}

TEST_CASE("paths on /proc and /sys are refused") {
  Sandbox s;
  for (const char* path :
       {"/proc/self/status", "/proc/1/environ", "/proc/sys/kernel/hostname", "/sys/kernel/uevent_seqnum"}) {
    CAPTURE(path);
    auto c = connect();
    CHECK(!c.call("file.read", {{"id", s.id()}, {"path", path}}).ok());
    CHECK(c.last_error().code != 0);
  }
  std::string hostname = host_file("/proc/sys/kernel/hostname");
  auto c = connect();
  CHECK(!c.call("file.write", {{"id", s.id()}, {"path", "/proc/sys/kernel/hostname"},
                               {"data_b64", api::base64_encode("pwned")}})
             .ok());
  CHECK(host_file("/proc/sys/kernel/hostname") == hostname);
  CHECK(!c.call("file.list", {{"id", s.id()}, {"path", "/proc"}}).ok());
  CHECK(!c.call("file.remove", {{"id", s.id()}, {"path", "/proc/1"}, {"recursive", true}}).ok());
  sh(s.id(), "ln -s /proc/self /tmp/p");
  CHECK(!c.call("file.read", {{"id", s.id()}, {"path", "/tmp/p/status"}}).ok());
}

TEST_CASE("file operations need a running sandbox") {
  Sandbox s(json{{"start", false}});
  CHECK(call_err("file.read", {{"id", s.id()}, {"path", "/etc/passwd"}}).code == api::kInvalidState);
  CHECK(call_err("file.list", {{"id", s.id()}, {"path", "/"}}).code == api::kInvalidState);
}

}  // TEST_SUITE
