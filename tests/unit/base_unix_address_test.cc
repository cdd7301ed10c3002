// unix_address: the one place a socket path becomes a sockaddr_un.
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <cstring>
#include <string>

#include "base/unix_address.h"

using namespace sbx;

TEST_SUITE("base.unix_address") {

TEST_CASE("a path that fits is copied whole, NUL-terminated") {
  auto a = unix_address("/run/sbx/sbxd.sock");
  REQUIRE(a.ok());
  CHECK(a->sun_family == AF_UNIX);
  CHECK(std::string(a->sun_path) == "/run/sbx/sbxd.sock");
  const std::string longest(sizeof(sockaddr_un{}.sun_path) - 1, 'x');
  a = unix_address(longest);
  REQUIRE(a.ok());
  CHECK(std::strlen(a->sun_path) == longest.size());
}

TEST_CASE("an empty path or one that does not fit is ENAMETOOLONG, naming the path") {
  for (const std::string& path : {std::string(), std::string(sizeof(sockaddr_un{}.sun_path), 'y')}) {
    auto a = unix_address(path);
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().sys_errno() == ENAMETOOLONG);
    CHECK(a.error().message().find("'" + path + "'") != std::string::npos);
    CHECK(a.error().message().find("1 to 107 bytes") != std::string::npos);
  }
}

}  // TEST_SUITE
