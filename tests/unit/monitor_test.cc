// sbx-monitor's pure parts: the size-capped log and the spec lines.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <string>

#include "base/file.h"
#include "monitor/monitor.h"

using namespace sbx;
using namespace sbx::monitor;
using nlohmann::json;

namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/monitor-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { (void)remove_tree(path); }
  std::string path;
};

std::string content(const std::string& path) {
  auto text = read_file(path);
  return text.ok() ? *text : std::string("<missing>");
}

LogFile open_log(const std::string& path, uint64_t max) {
  auto log = LogFile::open(path, max);
  REQUIRE_MESSAGE(log.ok(), log.error().message());
  return std::move(*log);
}

json exec_spec() {
  return json::parse(R"({"runtime": {"run_root": "/run/x", "cgroup": {"mode": "auto"}}, "id": "box",
                         "process": {"argv": ["true"], "env": ["A=b"]}, "timeout_ms": 1500})");
}

}  // namespace

TEST_SUITE("monitor") {

TEST_CASE("the log appends, and rotates to .1 at half the cap, between lines") {
  TempDir dir;
  const std::string path = dir.path + "/main.log";
  REQUIRE(create_file(path, "old\n").ok());
  LogFile log = open_log(path, 20);  // two files of at most 10 bytes
  CHECK(log.size() == 4);
  REQUIRE(log.append("abc\n").ok());
  CHECK(content(path) == "old\nabc\n");
  REQUIRE(log.append("defg\n").ok());  // 8 + 5 > 10: a new file, the old one kept as .1
  CHECK(content(path + ".1") == "old\nabc\n");
  CHECK(content(path) == "defg\n");
  REQUIRE(log.append("h\ni\njklm\n").ok());  // fills up to the last whole line that fits, then rotates
  CHECK(content(path + ".1") == "defg\nh\ni\n");
  CHECK(content(path) == "jklm\n");
}

TEST_CASE("a line longer than half the cap is split, and no file ever exceeds half the cap") {
  TempDir dir;
  const std::string path = dir.path + "/main.log";
  LogFile log = open_log(path, 8);
  REQUIRE(log.append("0123456789ab").ok());
  CHECK(content(path + ".1") == "4567");
  CHECK(content(path) == "89ab");
  REQUIRE(log.append("x").ok());
  CHECK(content(path + ".1") == "89ab");
  CHECK(content(path) == "x");
}

TEST_CASE("an exec spec is parsed, and its errors name the field") {
  auto spec = parse_exec_spec(exec_spec());
  REQUIRE_MESSAGE(spec.ok(), spec.error().message());
  CHECK(spec->id == "box");
  CHECK(spec->process.argv == std::vector<std::string>{"true"});
  CHECK(spec->timeout_ms == 1500);
  CHECK(spec->runtime.run_root == "/run/x");

  json bad = exec_spec();
  bad.erase("id");
  CHECK(parse_exec_spec(bad).error().message() == "spec.id: missing");
  bad = exec_spec();
  bad["timeout_ms"] = -1;
  CHECK(parse_exec_spec(bad).error().message().starts_with("spec.timeout_ms:"));
  bad = exec_spec();
  bad["process"]["cwd"] = 1;
  CHECK(parse_exec_spec(bad).error().message() == "spec.process.cwd: expected a string, got number 1");
  bad = exec_spec();
  bad["extra"] = true;
  CHECK(parse_exec_spec(bad).error().message() == "spec: unknown field 'extra'");
}

TEST_CASE("a sandbox spec needs a log path only with a main command") {
  json spec = json::parse(R"({"runtime": {}, "plan": {"id": "a"}, "exit_path": "/tmp/a.exit"})");
  auto parsed = parse_sandbox_spec(spec);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error().message());
  CHECK(parsed->log_max_bytes == 1u << 20);
  spec["plan"]["main"] = {{"argv", {"true"}}};
  CHECK(parse_sandbox_spec(spec).error().message() == "spec.log_path: missing");
  spec["log_path"] = "/tmp/a.log";
  spec["log_max_bytes"] = 1;
  CHECK(parse_sandbox_spec(spec).error().message().starts_with("spec.log_max_bytes: 1 is below"));
  spec["log_max_bytes"] = 4096;
  spec["plan"]["limits"] = {{"pids_max", "many"}};
  CHECK(parse_sandbox_spec(spec).error().message().starts_with("spec.plan.limits.pids_max:"));
}

TEST_CASE("a sandbox spec's exec socket is optional, and a string when given") {
  json spec = json::parse(R"({"runtime": {}, "plan": {"id": "a"}, "exit_path": "/tmp/a.exit"})");
  auto parsed = parse_sandbox_spec(spec);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error().message());
  CHECK(parsed->exec_socket.empty());
  spec["exec_socket"] = "/run/sbx/a/monitor.sock";
  parsed = parse_sandbox_spec(spec);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error().message());
  CHECK(parsed->exec_socket == "/run/sbx/a/monitor.sock");
  spec["exec_socket"] = 7;
  CHECK(parse_sandbox_spec(spec).error().message() == "spec.exec_socket: expected a non-empty string");
}

}  // TEST_SUITE
