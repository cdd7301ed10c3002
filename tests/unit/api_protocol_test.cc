// The protocol as code: base64, byte sizes, times, the method table and params checking, the message encoders.
#include <doctest/doctest.h>

#include <random>
#include <set>
#include <string>

#include "api/protocol.h"

using namespace sbx;
using namespace sbx::api;

namespace {

// What the daemon sees of `j`: parsed from its text, so non-negative integers are unsigned as on the wire.
json wire(const json& j) { return json::parse(j.dump()); }

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) {
    s += static_cast<char>(i);
  }
  return s;
}

std::string decoded(std::string_view text) {
  auto r = base64_decode(text);
  REQUIRE_MESSAGE(r.ok(), "decode '" << std::string(text) << "': " << r.error().message());
  return *r;
}

uint64_t size_of(std::string_view text) {
  auto r = parse_size(text);
  REQUIRE_MESSAGE(r.ok(), "parse_size('" << std::string(text) << "'): " << r.error().message());
  return *r;
}

const MethodSpec& method(std::string_view name) {
  const MethodSpec* m = find_method(name);
  REQUIRE_MESSAGE(m != nullptr, "no method " << std::string(name));
  return *m;
}

// The error check_params gives, which must be kInvalidParams; its message.
std::string params_error(std::string_view name, const json& params) {
  auto r = check_params(method(name), wire(params));
  REQUIRE_MESSAGE(!r.ok(), "check_params(" << std::string(name) << ", " << params.dump() << ") passed");
  CHECK(r.error().code() == kInvalidParams);
  return r.error().message();
}

bool params_ok(std::string_view name, const json& params) {
  auto r = check_params(method(name), wire(params));
  if (!r.ok()) {
    MESSAGE(r.error().message());
  }
  return r.ok();
}

}  // namespace

TEST_SUITE("api.protocol") {

TEST_CASE("base64 encodes the RFC 4648 test vectors") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foob") == "Zm9vYg==");
  CHECK(base64_encode("fooba") == "Zm9vYmE=");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(decoded("") == "");
  CHECK(decoded("Zg==") == "f");
  CHECK(decoded("Zm8=") == "fo");
  CHECK(decoded("Zm9vYmFy") == "foobar");
}

TEST_CASE("base64 round-trips every byte value, at every alignment") {
  const std::string bytes = all_bytes();
  CHECK(decoded(base64_encode(bytes)) == bytes);
  for (size_t skip = 0; skip < 3; ++skip) {
    std::string s = bytes.substr(skip);
    CHECK(decoded(base64_encode(s)) == s);
  }
  // The 62nd and 63rd symbols and the high bits come out right.
  CHECK(base64_encode(std::string("\xff\xff\xff", 3)) == "////");
  CHECK(base64_encode(std::string("\xfb\xef\xbe", 3)) == "++++");
  CHECK(base64_encode(std::string("\0\0\0", 3)) == "AAAA");
}

TEST_CASE("base64 round-trips random data of every length up to 1000 bytes") {
  std::mt19937 rng(42);
  for (size_t len = 0; len <= 1000; ++len) {
    std::string s(len, '\0');
    for (auto& c : s) {
      c = static_cast<char>(rng() & 0xff);
    }
    std::string text = base64_encode(s);
    CHECK(text.size() == (len + 2) / 3 * 4);
    CHECK(decoded(text) == s);
  }
}

TEST_CASE("base64 refuses malformed input with invalid params") {
  for (const char* bad : {"Z", "Zg", "Zg=", "Zm9vY", "Zg==Zg==", "Z===", "====", "=AAA", "Zm=v", "Zm9v!A==",
                          "Zm9v\nYmFy", "Zm 9v", "Zm9v-_==", "Zg=A"}) {
    auto r = base64_decode(bad);
    CHECK_MESSAGE(!r.ok(), "accepted '" << bad << "'");
    if (!r.ok()) {
      CHECK(r.error().code() == kInvalidParams);
      CHECK(r.error().message().find("base64") != std::string::npos);
    }
  }
}

TEST_CASE("parse_size reads bytes and K, M, G, T in powers of 1024") {
  CHECK(size_of("0") == 0);
  CHECK(size_of("1048576") == 1048576);
  CHECK(size_of("512K") == 512ull << 10);
  CHECK(size_of("512k") == 512ull << 10);
  CHECK(size_of("512M") == 512ull << 20);
  CHECK(size_of("1.5G") == 3ull << 29);
  CHECK(size_of("1.5K") == 1536);
  CHECK(size_of("2Gi") == 2ull << 30);
  CHECK(size_of("2GiB") == 2ull << 30);
  CHECK(size_of("3MB") == 3ull << 20);
  CHECK(size_of("1T") == 1ull << 40);
  CHECK(size_of("10B") == 10);
  CHECK(size_of("10b") == 10);
}

TEST_CASE("parse_size refuses what is not a size, with invalid params naming the text") {
  for (const char* bad : {"", "M", "abc", "-1", "12X", "1..2", "1 M", "1e3", " 1", "1KX", "1iB", "99999999999T",
                          "1.5.5K", "0x10"}) {
    auto r = parse_size(bad);
    CHECK_MESSAGE(!r.ok(), "accepted '" << bad << "'");
    if (!r.ok()) {
      CHECK(r.error().code() == kInvalidParams);
      CHECK(r.error().message().find(std::string("'") + bad + "'") != std::string::npos);
    }
  }
}

TEST_CASE("size_param takes an unsigned integer or a size string and names the field on errors") {
  auto n = size_param(wire(4096), "limits.memory");
  REQUIRE(n.ok());
  CHECK(*n == 4096);
  auto s = size_param(json("64M"), "limits.memory");
  REQUIRE(s.ok());
  CHECK(*s == 64ull << 20);
  for (const json& bad : {json(-1), json(1.5), json(true), json::array(), json("lots")}) {
    auto r = size_param(wire(bad), "limits.memory");
    CHECK_MESSAGE(!r.ok(), "accepted " << bad.dump());
    if (!r.ok()) {
      CHECK(r.error().code() == kInvalidParams);
      CHECK(r.error().message().rfind("params.limits.memory: ", 0) == 0);
    }
  }
}

TEST_CASE("format_size prints exact powers without a fraction and others with one decimal") {
  CHECK(format_size(0) == "0");
  CHECK(format_size(1023) == "1023");
  CHECK(format_size(1024) == "1K");
  CHECK(format_size(1536) == "1.5K");
  CHECK(format_size(512ull << 20) == "512M");
  CHECK(format_size(1ull << 30) == "1G");
  CHECK(format_size(3ull << 29) == "1.5G");
  CHECK(format_size(1ull << 40) == "1T");
  CHECK(format_size(2048ull << 40) == "2048T");
}

TEST_CASE("format_size and parse_size agree on exact sizes") {
  for (uint64_t v : {0ull, 1ull, 1000ull, 1024ull, 1536ull, 4ull << 20, 512ull << 20, 3ull << 29, 1ull << 40}) {
    CHECK(size_of(format_size(v)) == v);
  }
}

TEST_CASE("times are RFC 3339 UTC with milliseconds") {
  CHECK(format_time_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_time_ms(1700000000123) == "2023-11-14T22:13:20.123Z");
  CHECK(format_time_ms(951782400007) == "2000-02-29T00:00:00.007Z");
  int64_t now = now_ms();
  CHECK(now > 1700000000000);
  CHECK(format_time_ms(now).size() == 24);
}

TEST_CASE("the method table has unique names, each documented, and find_method finds each") {
  std::set<std::string_view> names;
  for (const auto& m : methods()) {
    CHECK_MESSAGE(names.insert(m.name).second, "duplicate method " << m.name);
    CHECK(m.name.find('.') != std::string_view::npos);
    CHECK(!m.summary.empty());
    CHECK(!m.result.empty());
    CHECK(find_method(m.name) == &m);
    std::set<std::string_view> params;
    for (const auto& p : m.params) {
      CHECK_MESSAGE(params.insert(p.name).second, m.name << ": duplicate param " << p.name);
      CHECK(!p.doc.empty());
    }
  }
  for (const char* name : {"daemon.info", "daemon.health", "sandbox.create", "sandbox.start", "sandbox.stop",
                           "sandbox.restart", "sandbox.kill", "sandbox.remove", "sandbox.list", "sandbox.inspect",
                           "sandbox.stats", "sandbox.exec", "sandbox.logs", "file.write", "file.read", "file.list",
                           "file.remove", "events.subscribe", "events.list", "execs.list"}) {
    CHECK_MESSAGE(find_method(name) != nullptr, "missing " << name);
  }
  CHECK(find_method("sandbox.nope") == nullptr);
  CHECK(find_method("") == nullptr);
}

TEST_CASE("check_params accepts well-formed params, and null for a method without required ones") {
  CHECK(params_ok("daemon.info", json()));
  CHECK(params_ok("daemon.info", json::object()));
  CHECK(params_ok("sandbox.list", json()));
  CHECK(params_ok("sandbox.exec", {{"id", "box"}, {"argv", {"ls", "-l"}}}));
  CHECK(params_ok("sandbox.exec", {{"id", "box"},
                                   {"argv", json::array({"true"})},
                                   {"env", {"A=b"}},
                                   {"cwd", "/tmp"},
                                   {"user", 1000},
                                   {"stdin_b64", "Zg=="},
                                   {"timeout", 1.5},
                                   {"output_limit", "1M"},
                                   {"stream", false}}));
  CHECK(params_ok("sandbox.exec", {{"id", "box"}, {"argv", {"true"}}, {"user", "1000:1000"}, {"timeout", 3},
                                   {"output_limit", 100}}));
  CHECK(params_ok("sandbox.create", {{"rootfs", "/r"}, {"labels", {{"a", "b"}}}, {"limits", {{"memory", "1G"}}},
                                     {"mounts", json::array()}, {"ttl", 10}, {"start", false}}));
  CHECK(params_ok("sandbox.kill", {{"id", "x"}, {"signal", "TERM"}}));
  CHECK(params_ok("sandbox.kill", {{"id", "x"}, {"signal", 15}}));
  CHECK(params_ok("sandbox.list", {{"label", "a=b"}, {"owner", 0}}));
}

TEST_CASE("check_params refuses unknown params, naming them") {
  CHECK(params_error("daemon.info", {{"verbose", true}}).find("params.verbose") != std::string::npos);
  std::string msg = params_error("sandbox.exec", {{"id", "box"}, {"argv", {"true"}}, {"timout", 1}});
  CHECK(msg.rfind("params.timout: ", 0) == 0);
  CHECK(msg.find("sandbox.exec") != std::string::npos);
}

TEST_CASE("check_params refuses missing required params, naming them") {
  CHECK(params_error("sandbox.exec", json()).rfind("params.id: required", 0) == 0);
  CHECK(params_error("sandbox.exec", json::object()).rfind("params.id: required", 0) == 0);
  CHECK(params_error("sandbox.exec", {{"id", "box"}}).rfind("params.argv: required", 0) == 0);
  CHECK(params_error("file.write", {{"id", "box"}, {"path", "/x"}}).rfind("params.data_b64: required", 0) == 0);
  CHECK(params_error("sandbox.inspect", json()).rfind("params.id: required", 0) == 0);
}

TEST_CASE("check_params refuses params of the wrong type, naming them and the type") {
  struct Case {
    const char* method;
    json params;
    const char* field;
  };
  const Case cases[] = {
      {"sandbox.inspect", {{"id", 5}}, "id"},
      {"sandbox.exec", {{"id", "b"}, {"argv", "ls"}}, "argv"},
      {"sandbox.exec", {{"id", "b"}, {"argv", {"ls", 1}}}, "argv"},
      {"sandbox.exec", {{"id", "b"}, {"argv", {"ls"}}, {"timeout", "1"}}, "timeout"},
      {"sandbox.exec", {{"id", "b"}, {"argv", {"ls"}}, {"output_limit", -1}}, "output_limit"},
      {"sandbox.exec", {{"id", "b"}, {"argv", {"ls"}}, {"output_limit", 1.5}}, "output_limit"},
      {"sandbox.exec", {{"id", "b"}, {"argv", {"ls"}}, {"user", true}}, "user"},
      {"sandbox.exec", {{"id", "b"}, {"argv", {"ls"}}, {"stream", 1}}, "stream"},
      {"sandbox.exec", {{"id", "b"}, {"argv", {"ls"}}, {"env", {{"A", "b"}}}}, "env"},
      {"sandbox.create", {{"rootfs", "/r"}, {"ttl", 1.5}}, "ttl"},
      {"sandbox.create", {{"rootfs", "/r"}, {"labels", json::array()}}, "labels"},
      {"sandbox.create", {{"rootfs", "/r"}, {"mounts", json::object()}}, "mounts"},
      {"sandbox.create", {{"rootfs", "/r"}, {"start", "yes"}}, "start"},
      {"sandbox.list", {{"owner", "root"}}, "owner"},
      {"sandbox.kill", {{"id", "x"}, {"signal", 1.5}}, "signal"},
      {"events.list", {{"limit", "10"}}, "limit"},
  };
  for (const auto& c : cases) {
    std::string msg = params_error(c.method, c.params);
    CHECK_MESSAGE(msg.rfind(fmt::format("params.{}: must be ", c.field), 0) == 0, c.method << ": " << msg);
  }
}

TEST_CASE("check_params refuses params that are not an object") {
  CHECK(params_error("daemon.info", json::array()).find("object") != std::string::npos);
  CHECK(params_error("sandbox.list", json::array({1, 2})).find("object") != std::string::npos);
  CHECK(params_error("sandbox.list", json("x")).find("object") != std::string::npos);
  CHECK(params_error("sandbox.list", json(1)).find("object") != std::string::npos);
}

TEST_CASE("error_object carries the API code, or the errno as a system error, or an internal error") {
  json coded = error_object(api_error(kNotFound, "no sandbox '{}'", "x"));
  CHECK(coded["code"] == kNotFound);
  CHECK(coded["message"] == "no sandbox 'x'");
  CHECK(!coded.contains("data"));
  json sys = error_object(Error::from_errno("open '/x'", ENOENT));
  CHECK(sys["code"] == kSystemError);
  CHECK(sys["data"]["errno"] == ENOENT);
  CHECK(sys["data"]["errname"] == "ENOENT");
  json both = error_object(Error("missing", ENOENT).with_code(kNotFound));
  CHECK(both["code"] == kNotFound);
  CHECK(both["data"]["errname"] == "ENOENT");
  json internal = error_object(Error("something odd"));
  CHECK(internal["code"] == kInternalError);
  CHECK(param_error("limits.memory", "too small").message() == "params.limits.memory: too small");
  CHECK(param_error("x", "y").code() == kInvalidParams);
}

TEST_CASE("error codes have stable names") {
  CHECK(error_code_name(kParseError) == "parse_error");
  CHECK(error_code_name(kInvalidRequest) == "invalid_request");
  CHECK(error_code_name(kMethodNotFound) == "method_not_found");
  CHECK(error_code_name(kInvalidParams) == "invalid_params");
  CHECK(error_code_name(kInternalError) == "internal_error");
  CHECK(error_code_name(kNotFound) == "not_found");
  CHECK(error_code_name(kPermissionDenied) == "permission_denied");
  CHECK(error_code_name(kInvalidState) == "invalid_state");
  CHECK(error_code_name(kConflict) == "conflict");
  CHECK(error_code_name(kLimitExceeded) == "limit_exceeded");
  CHECK(error_code_name(kSystemError) == "system_error");
  CHECK(error_code_name(12345) == "unknown");
}

TEST_CASE("messages are single JSON lines of JSON-RPC 2.0") {
  std::string req = encode_request(7, "sandbox.inspect", {{"id", "a\nb"}});
  CHECK(req.find('\n') == std::string::npos);
  json r = json::parse(req, nullptr, false);
  REQUIRE(!r.is_discarded());
  CHECK(r["jsonrpc"] == "2.0");
  CHECK(r["id"] == 7);
  CHECK(r["method"] == "sandbox.inspect");
  CHECK(r["params"]["id"] == "a\nb");
  json bare = json::parse(encode_request(8, "daemon.info", json()), nullptr, false);
  CHECK(!bare.contains("params"));

  json res = json::parse(encode_result("abc", {{"x", 1}}), nullptr, false);
  CHECK(res["id"] == "abc");
  CHECK(res["result"]["x"] == 1);
  CHECK(!res.contains("error"));
  json err = json::parse(encode_error(json(), error_object(api_error(kParseError, "bad"))), nullptr, false);
  CHECK(err["id"].is_null());
  CHECK(err["error"]["code"] == kParseError);
  json note = json::parse(encode_notification("event", {{"seq", 1}}), nullptr, false);
  CHECK(!note.contains("id"));
  CHECK(note["method"] == "event");
  CHECK(note["params"]["seq"] == 1);
}

TEST_CASE("encoders survive strings that are not valid UTF-8") {
  std::string line = encode_result(1, {{"s", std::string("\xff\xfe ok", 5)}});
  json j = json::parse(line, nullptr, false);
  REQUIRE(!j.is_discarded());
  CHECK(j["result"]["s"].get<std::string>().find("ok") != std::string::npos);
}

}  // TEST_SUITE
