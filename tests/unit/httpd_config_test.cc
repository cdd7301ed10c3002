// sbx-httpd's configuration file and listen addresses.
#include <doctest/doctest.h>

#include "httpd/config.h"

using namespace sbx::httpd;

TEST_SUITE("httpd.config") {

TEST_CASE("an empty file keeps every default") {
  auto c = parse_config("", "t.toml");
  REQUIRE(c.ok());
  CHECK(c->listen == "127.0.0.1:8080");
  CHECK(c->threads == 64);
  CHECK(c->rate == 20);
  CHECK(c->burst == 40);
  CHECK(c->auth_failures == 10);
  CHECK(c->max_body == 64ull << 20);
}

TEST_CASE("every key is read, sizes take suffixes") {
  auto c = parse_config("listen = \"0.0.0.0:9000\"\nsocket = \"/s\"\nthreads = 8\nrate = 2.5\nburst = 5\n"
                        "auth_failures = 3\nauth_failure_window = 10\nmax_body = \"1M\"\nheartbeat = 2\n",
                        "t.toml");
  REQUIRE_MESSAGE(c.ok(), c.error().message());
  CHECK(c->listen == "0.0.0.0:9000");
  CHECK(c->socket == "/s");
  CHECK(c->threads == 8);
  CHECK(c->rate == 2.5);
  CHECK(c->burst == 5);
  CHECK(c->auth_failures == 3);
  CHECK(c->auth_failure_window == 10);
  CHECK(c->max_body == 1u << 20);
  CHECK(c->heartbeat == 2);
}

TEST_CASE("unknown keys, wrong types and bad values are errors naming the key") {
  auto unknown = parse_config("rates = 1\n", "t.toml");
  REQUIRE(!unknown.ok());
  CHECK(unknown.error().message().find("rates: unknown key") != std::string::npos);
  auto type = parse_config("threads = \"many\"\n", "t.toml");
  REQUIRE(!type.ok());
  CHECK(type.error().message().find("threads") != std::string::npos);
  CHECK(!parse_config("rate = 0\n", "t.toml").ok());
  CHECK(!parse_config("listen = \"8080\"\n", "t.toml").ok());
  CHECK(!parse_config("threads = [\n", "t.toml").ok());
}

TEST_CASE("listen addresses split at the last colon, IPv6 in brackets") {
  auto a = parse_listen("127.0.0.1:8080");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 8080);
  auto b = parse_listen("[::1]:80");
  REQUIRE(b.ok());
  CHECK(b->host == "::1");
  CHECK(!parse_listen("host:0").ok());
  CHECK(!parse_listen("host:99999").ok());
  CHECK(!parse_listen(":80").ok());
  CHECK(!parse_listen("host:").ok());
}

}
