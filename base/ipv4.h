#pragma once
// IPv4 addresses and networks as numbers (host byte order), parsed from and printed as the usual dotted text.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace sbx {

struct Ipv4Net {
  uint32_t address = 0;  // host byte order; for a network, its first address
  uint8_t prefix = 32;

  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t(0) << (32 - prefix); }
  uint32_t first() const { return address & mask(); }
  uint32_t last() const { return first() | ~mask(); }
  bool contains(uint32_t a) const { return (a & mask()) == first(); }
  bool overlaps(const Ipv4Net& o) const { return contains(o.first()) || o.contains(first()); }
  bool operator==(const Ipv4Net&) const = default;
};

// "192.0.2.1": four decimal octets, no leading zeros (so "010.0.0.1" is not read as octal by one tool and decimal by
// another).
Result<uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(uint32_t address);

// "192.0.2.0/24", or an address alone (a /32). With `strict`, host bits must be zero ("192.0.2.1/24" is refused);
// without, `address` keeps them (an interface address such as "10.66.0.1/16").
Result<Ipv4Net> parse_ipv4_net(std::string_view text, bool strict = true);
std::string format_ipv4_net(const Ipv4Net& net);

}  // namespace sbx
