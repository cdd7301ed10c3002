#include <doctest/doctest.h>

#include "base/ipv4.h"

using namespace sbx;

TEST_SUITE("base.ipv4") {

TEST_CASE("addresses parse from and print as dotted quads") {
  auto a = parse_ipv4("10.66.0.5");
  REQUIRE(a.ok());
  CHECK(*a == 0x0a420005u);
  CHECK(format_ipv4(*a) == "10.66.0.5");
  CHECK(*parse_ipv4("0.0.0.0") == 0);
  CHECK(*parse_ipv4("255.255.255.255") == 0xffffffffu);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.-4", "1..2.3", "a.b.c.d",
                          "1.2.3.4 ", " 1.2.3.4", "1.2.3.4/8"}) {
    CHECK_MESSAGE(!parse_ipv4(bad).ok(), bad);
  }
}

TEST_CASE("networks need zero host bits unless asked otherwise, and know their range") {
  auto n = parse_ipv4_net("10.66.0.0/16");
  REQUIRE(n.ok());
  CHECK(n->first() == 0x0a420000u);
  CHECK(n->last() == 0x0a42ffffu);
  CHECK(n->contains(*parse_ipv4("10.66.200.1")));
  CHECK_FALSE(n->contains(*parse_ipv4("10.67.0.1")));
  CHECK(format_ipv4_net(*n) == "10.66.0.0/16");
  CHECK_FALSE(parse_ipv4_net("10.66.0.1/16").ok());
  auto iface = parse_ipv4_net("10.66.0.1/16", false);
  REQUIRE(iface.ok());
  CHECK(iface->address == 0x0a420001u);
  CHECK(parse_ipv4_net("192.0.2.7")->prefix == 32);
  CHECK(parse_ipv4_net("0.0.0.0/0")->contains(0xdeadbeef));
  CHECK(parse_ipv4_net("10.0.0.0/8")->overlaps(*parse_ipv4_net("10.66.0.0/16")));
  CHECK_FALSE(parse_ipv4_net("10.0.0.0/8")->overlaps(*parse_ipv4_net("11.0.0.0/8")));
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "10.0.0.0/x", "/8"}) {
    CHECK_MESSAGE(!parse_ipv4_net(bad).ok(), bad);
  }
}

}  // TEST_SUITE
