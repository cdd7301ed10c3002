// The JSON-RPC framing spoken byte by byte: malformed JSON, unknown methods, bad params, invalid requests,
// oversized lines, batches, notifications, ids, and clients that misbehave. After each, the same connection and
// the daemon keep answering.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "api/protocol.h"
#include "base/file.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

std::string socket_path() { return TestEnv::get().daemon().socket(); }

// The next message, which must be an error response with `code`; returns it.
json expect_error(RawConnection& raw, int code) {
  auto msg = raw.read_json();
  REQUIRE_MESSAGE(msg.has_value(), "no response");
  REQUIRE_MESSAGE(msg->contains("error"), msg->dump());
  CHECK((*msg)["jsonrpc"] == "2.0");
  CHECK_MESSAGE((*msg)["error"]["code"] == code, msg->dump());
  CHECK((*msg)["error"]["message"].is_string());
  return *msg;
}

// daemon.info with `id` answers on this connection, and the next message is that answer.
void check_answers(RawConnection& raw, int id) {
  raw.send(api::encode_request(id, "daemon.info", json()) + "\n");
  auto msg = raw.read_json();
  REQUIRE_MESSAGE(msg.has_value(), "no answer to daemon.info");
  CHECK_MESSAGE((*msg)["id"] == id, msg->dump());
  CHECK_MESSAGE(msg->contains("result"), msg->dump());
}

std::string request(const json& id, const std::string& method, const json& params) {
  json msg = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) {
    msg["params"] = params;
  }
  return msg.dump() + "\n";
}

}  // namespace

TEST_SUITE("daemon.protocol") {

TEST_CASE("a line that is not JSON gets a parse error with a null id, and the connection goes on") {
  RawConnection raw(socket_path());
  for (const char* bad : {"{bad json\n", "{\"jsonrpc\":\"2.0\",\"id\":1,\n", "\xff\xfe\n", "nul\n"}) {
    CAPTURE(bad);
    raw.send(bad);
    json e = expect_error(raw, api::kParseError);
    CHECK(e["id"].is_null());
  }
  check_answers(raw, 1);
}

TEST_CASE("an unknown method gets method not found, with the request's id") {
  RawConnection raw(socket_path());
  raw.send(request(7, "sandbox.nope", json::object()));
  CHECK(expect_error(raw, api::kMethodNotFound)["id"] == 7);
  raw.send(request("s1", "", json::object()));
  CHECK(expect_error(raw, api::kMethodNotFound)["id"] == "s1");
  check_answers(raw, 8);
}

TEST_CASE("bad params get invalid params naming the parameter: wrong type, unknown, missing") {
  RawConnection raw(socket_path());
  raw.send(request(1, "sandbox.inspect", {{"id", 5}}));
  json wrong = expect_error(raw, api::kInvalidParams);
  CHECK(wrong["id"] == 1);
  CHECK(wrong["error"]["message"].get<std::string>().find("params.id") != std::string::npos);
  raw.send(request(2, "daemon.info", {{"bogus", 1}}));
  CHECK(expect_error(raw, api::kInvalidParams)["error"]["message"].get<std::string>().find("params.bogus") !=
        std::string::npos);
  raw.send(request(3, "sandbox.exec", {{"id", "x"}}));
  CHECK(expect_error(raw, api::kInvalidParams)["error"]["message"].get<std::string>().find("params.argv") !=
        std::string::npos);
  raw.send(request(4, "sandbox.list", json::array({1, 2})));
  CHECK(expect_error(raw, api::kInvalidParams)["id"] == 4);
  raw.send(request(5, "sandbox.create", {{"rootfs", TestEnv::rootfs()}, {"limits", {{"memory", "lots"}}}}));
  CHECK(expect_error(raw, api::kInvalidParams)["error"]["message"].get<std::string>().find("limits.memory") !=
        std::string::npos);
  check_answers(raw, 6);
}

TEST_CASE("an invalid-params error names the parameter in data.field, as the protocol documents") {
  RawConnection raw(socket_path());
  raw.send(request(1, "sandbox.exec", {{"id", "x"}, {"argv", "ls"}}));
  json wrong = expect_error(raw, api::kInvalidParams);
  CHECK_MESSAGE(wrong["error"].value("data", json::object()).value("field", "") == "argv", wrong.dump());
  raw.send(request(2, "sandbox.exec", {{"id", "x"}}));
  json missing = expect_error(raw, api::kInvalidParams);
  CHECK_MESSAGE(missing["error"].value("data", json::object()).value("field", "") == "argv", missing.dump());
}

TEST_CASE("invalid requests get invalid request: a batch, not an object, wrong version, no method, bad id") {
  RawConnection raw(socket_path());
  raw.send(R"([{"jsonrpc":"2.0","id":1,"method":"daemon.info"},{"jsonrpc":"2.0","id":2,"method":"daemon.info"}])" "\n");
  CHECK(expect_error(raw, api::kInvalidRequest)["id"].is_null());
  raw.send("[]\n");
  expect_error(raw, api::kInvalidRequest);
  raw.send("42\n");
  expect_error(raw, api::kInvalidRequest);
  raw.send("\"daemon.info\"\n");
  expect_error(raw, api::kInvalidRequest);
  raw.send(R"({"jsonrpc":"1.0","id":1,"method":"daemon.info"})" "\n");
  CHECK(expect_error(raw, api::kInvalidRequest)["id"] == 1);
  raw.send(R"({"id":2,"method":"daemon.info"})" "\n");
  CHECK(expect_error(raw, api::kInvalidRequest)["id"] == 2);
  raw.send(R"({"jsonrpc":"2.0","id":3})" "\n");
  CHECK(expect_error(raw, api::kInvalidRequest)["id"] == 3);
  raw.send(R"({"jsonrpc":"2.0","id":4,"method":7})" "\n");
  CHECK(expect_error(raw, api::kInvalidRequest)["id"] == 4);
  raw.send(R"({"jsonrpc":"2.0","id":{"a":1},"method":"daemon.info"})" "\n");
  CHECK(expect_error(raw, api::kInvalidRequest)["id"].is_null());
  raw.send(R"({"jsonrpc":"2.0","id":1.5,"method":"daemon.info"})" "\n");
  expect_error(raw, api::kInvalidRequest);
  check_answers(raw, 9);
}

TEST_CASE("blank lines are ignored; ids come back as sent") {
  RawConnection raw(socket_path());
  raw.send("\n \n\r\n");
  for (const json& id : {json("abc"), json(0), json(9007199254740993ull), json(-5)}) {
    CAPTURE(id.dump());
    raw.send(request(id, "daemon.info", json()));
    auto msg = raw.read_json();
    REQUIRE(msg.has_value());
    CHECK((*msg)["id"] == id);
    CHECK(msg->contains("result"));
  }
}

TEST_CASE("a notification (a request without an id) gets no response") {
  RawConnection raw(socket_path());
  raw.send(R"({"jsonrpc":"2.0","method":"daemon.info"})" "\n");
  raw.send(R"({"jsonrpc":"2.0","method":"daemon.health","params":{}})" "\n");
  check_answers(raw, 3);  // the next message is the answer to id 3: nothing came for the notifications
}

TEST_CASE("a notification for a method that does not exist gets no response either") {
  // JSON-RPC 2.0: "The Server MUST NOT reply to a Notification", errors included.
  RawConnection raw(socket_path());
  raw.send(R"({"jsonrpc":"2.0","method":"sandbox.nope"})" "\n");
  raw.send(R"({"jsonrpc":"2.0","method":"sandbox.inspect","params":{"id":5}})" "\n");
  check_answers(raw, 4);
}

TEST_CASE("a 100 MB request line gets invalid request; the same connection and the daemon keep answering") {
  RawConnection raw(socket_path());
  const pid_t daemon = TestEnv::get().daemon().pid();
  REQUIRE(write_file(fmt::format("/proc/{}/clear_refs", daemon), "5").ok());
  const uint64_t rss_before = proc_status_bytes(daemon, "VmRSS");
  raw.send(R"({"jsonrpc":"2.0","id":1,"method":"daemon.info","params":{"pad":")");
  const std::string chunk(1 << 20, 'x');
  for (int i = 0; i < 100; ++i) {
    raw.send(chunk);
  }
  raw.send("\"}}\n");
  json e = expect_error(raw, api::kInvalidRequest);
  CHECK(e["id"].is_null());
  CHECK(e["error"]["message"].get<std::string>().find("max_request_bytes") != std::string::npos);
  check_answers(raw, 2);
  RawConnection other(socket_path());
  check_answers(other, 1);
  const uint64_t hwm = proc_status_bytes(daemon, "VmHWM");
  MESSAGE("sbxd RSS before " << (rss_before >> 10) << " KiB, peak while reading the line " << (hwm >> 10)
                             << " KiB");
  CHECK(hwm - rss_before < (48ull << 20));  // it did not hold the 100 MB
  // And twice in a row on one connection, the second line split over many writes.
  raw.send(std::string(20 << 20, 'y'));
  raw.send("\n");
  expect_error(raw, api::kInvalidRequest);
  check_answers(raw, 3);
}

TEST_CASE("a request line just under the limit is read whole") {
  RawConnection raw(socket_path());
  std::string pad(15 << 20, 'p');
  raw.send(request(1, "sandbox.inspect", {{"id", pad}}));
  json e = expect_error(raw, api::kNotFound);
  CHECK(e["id"] == 1);
}

TEST_CASE("a client that hangs up mid-line, or mid-call, does not disturb the daemon") {
  {
    RawConnection raw(socket_path());
    raw.send(R"({"jsonrpc":"2.0","id":1,"method":"daemon.)");
  }
  {
    RawConnection raw(socket_path());
    raw.send(request(1, "daemon.info", json()));
  }  // gone before reading its answer
  RawConnection raw(socket_path());
  check_answers(raw, 1);
}

TEST_CASE("a client that stops reading a big exec holds up only that exec; hanging up ends it") {
  Sandbox s;
  const pid_t daemon = TestEnv::get().daemon().pid();
  REQUIRE(write_file(fmt::format("/proc/{}/clear_refs", daemon), "5").ok());
  const uint64_t rss_before = proc_status_bytes(daemon, "VmRSS");
  {
    RawConnection lazy(socket_path());
    lazy.send(request(1, "sandbox.exec", {{"id", s.id()}, {"argv", {"sh", "-c", "yes | head -c 500000000"}}}));
    // The exec is stuck on its full pipe: the daemon stopped reading it. Others are served meanwhile.
    REQUIRE(wait_until([&] { return sh(s.id(), "ps -o args").find("yes") != std::string::npos; }));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    CHECK(call_ok("daemon.info")["pid"] == daemon);
    CHECK(sh(s.id(), "ps -o args").find("yes") != std::string::npos);  // still there, blocked
  }
  CHECK(wait_until([&] { return sh(s.id(), "ps -o args").find("yes") == std::string::npos; }));
  const uint64_t hwm = proc_status_bytes(daemon, "VmHWM");
  CHECK(hwm - rss_before < (16ull << 20));
}

}  // TEST_SUITE
