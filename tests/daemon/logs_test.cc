// sandbox.logs: the main command's output, its last lines, following it until the command ends, rotation.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "api/protocol.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

bool logs_contain(const std::string& id, const std::string& text) {
  return logs_of(id).find(text) != std::string::npos;
}

}  // namespace

TEST_SUITE("daemon.logs") {

TEST_CASE("logs hold the main command's stdout and stderr; tail gives the last lines") {
  Sandbox s(json{{"cmd", {"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2; sleep 1000"}}});
  REQUIRE(wait_until([&] { return logs_contain(s.id(), "err\n"); }));
  CHECK(logs_of(s.id()) == "line1\nline2\nline3\nline4\nline5\nerr\n");
  CHECK(logs_of(s.id(), {{"tail", 2}}) == "line5\nerr\n");
  CHECK(logs_of(s.id(), {{"tail", 1}}) == "err\n");
  CHECK(logs_of(s.id(), {{"tail", 0}}) == "");
  CHECK(logs_of(s.id(), {{"tail", 100}}) == "line1\nline2\nline3\nline4\nline5\nerr\n");
  json r = call_ok("sandbox.logs", {{"id", s.id()}, {"tail", 2}});
  CHECK(r["bytes"] == 10);
}

TEST_CASE("logs follow sends what is printed later and ends when the main command exits") {
  Sandbox s(json{{"cmd", {"sh", "-c",
                          "echo first; while [ ! -e /tmp/go ]; do sleep 1; done; echo second; sleep 1; echo third"}}});
  REQUIRE(wait_until([&] { return logs_contain(s.id(), "first\n"); }));
  std::string text;
  bool triggered = false;
  auto c = connect();
  auto r = c.call("sandbox.logs", {{"id", s.id()}, {"follow", true}}, [&](const std::string& method, const json& p) {
    if (method != "logs.output") {
      return;
    }
    CHECK(p["id"] == s.id());
    auto data = api::base64_decode(p["data_b64"].get<std::string>());
    REQUIRE(data.ok());
    text += *data;
    if (!triggered && text.find("first\n") != std::string::npos) {
      triggered = true;  // only now let the command go on: what follows is printed while we follow
      call_ok("file.write", {{"id", s.id()}, {"path", "/tmp/go"}, {"data_b64", ""}});
    }
  });
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(triggered);
  CHECK(text == "first\nsecond\nthird\n");
  CHECK((*r)["bytes"] == text.size());
  CHECK(s.state() == "exited");
  // Following an exited sandbox gives what it printed and ends at once.
  CHECK(logs_of(s.id(), {{"follow", true}}) == "first\nsecond\nthird\n");
}

TEST_CASE("logs follow with tail starts from the last lines") {
  Sandbox s(json{{"cmd", {"sh", "-c", "echo a; echo b; echo c; while [ ! -e /tmp/go ]; do sleep 1; done; echo d"}}});
  REQUIRE(wait_until([&] { return logs_contain(s.id(), "c\n"); }));
  std::string text;
  auto c = connect();
  bool triggered = false;
  auto r = c.call("sandbox.logs", {{"id", s.id()}, {"follow", true}, {"tail", 1}},
                  [&](const std::string&, const json& p) {
                    text += *api::base64_decode(p["data_b64"].get<std::string>());
                    if (!triggered) {
                      triggered = true;
                      call_ok("file.write", {{"id", s.id()}, {"path", "/tmp/go"}, {"data_b64", ""}});
                    }
                  });
  REQUIRE(r.ok());
  CHECK(text == "c\nd\n");
}

TEST_CASE("a sandbox without a main command has empty logs, and following them ends when it stops") {
  Sandbox s;
  CHECK(logs_of(s.id()) == "");
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    auto c = api::Client::connect(TestEnv::get().daemon().socket());
    if (c.ok()) {
      stopped = c->call("sandbox.stop", {{"id", s.id()}, {"timeout", 5}}).ok();
    }
  });
  auto c = connect();
  auto r = c.call("sandbox.logs", {{"id", s.id()}, {"follow", true}});
  stopper.join();
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(stopped);
  CHECK((*r)["bytes"] == 0);
}

TEST_CASE("a log past half its cap rotates; logs return whole consecutive lines ending with the last") {
  Sandbox s(json{{"cmd", {"sh", "-c", "seq 1 1000000; echo end"}}});
  REQUIRE(wait_until([&] { return s.state() == "exited"; }));
  std::string text = logs_of(s.id());
  CHECK(text.size() <= (8u << 20));  // the daemon's default log_max_bytes
  CHECK(text.size() > (3u << 20));
  REQUIRE(text.size() > 20);
  CHECK(text.substr(text.size() - 12) == "1000000\nend\n");
  // Whole lines, consecutive numbers: nothing lost or torn inside what is kept.
  size_t pos = 0;
  long expected = -1;
  bool consecutive = true;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      consecutive = false;  // a torn last line
      break;
    }
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line == "end") {
      break;
    }
    long v = std::stol(line);
    if (expected >= 0 && v != expected) {
      consecutive = false;
      MESSAGE("after " << expected - 1 << " came " << v);
      break;
    }
    expected = v + 1;
  }
  CHECK(consecutive);
  CHECK(expected == 1000001);
  CHECK(logs_of(s.id(), {{"tail", 3}}) == "999999\n1000000\nend\n");
}

}  // TEST_SUITE
