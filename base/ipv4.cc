#include "base/ipv4.h"

#include <charconv>

namespace sbx {

namespace {

// One decimal octet: 0..255, no sign, no leading zero.
bool parse_octet(std::string_view s, uint32_t& out) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) {
    return false;
  }
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > 255) {
    return false;
  }
  out = v;
  return true;
}

}  // namespace

Result<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t address = 0;
  std::string_view rest = text;
  for (int i = 0; i < 4; ++i) {
    size_t dot = i < 3 ? rest.find('.') : rest.size();
    uint32_t octet = 0;
    if (dot == std::string_view::npos || !parse_octet(rest.substr(0, dot), octet)) {
      return Error(fmt::format("'{}' is not an IPv4 address (a.b.c.d)", text), EINVAL);
    }
    address = (address << 8) | octet;
    rest = i < 3 ? rest.substr(dot + 1) : std::string_view();
  }
  return address;
}

std::string format_ipv4(uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

Result<Ipv4Net> parse_ipv4_net(std::string_view text, bool strict) {
  size_t slash = text.find('/');
  Ipv4Net net;
  auto address = parse_ipv4(text.substr(0, slash));
  if (!address.ok()) {
    return Error(fmt::format("'{}' is not an IPv4 network (a.b.c.d/n)", text), EINVAL);
  }
  net.address = *address;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    unsigned prefix = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || prefix > 32 || (p.size() > 1 && p[0] == '0')) {
      return Error(fmt::format("'{}': the prefix length must be 0 to 32", text), EINVAL);
    }
    net.prefix = static_cast<uint8_t>(prefix);
  }
  if (strict && net.address != net.first()) {
    return Error(fmt::format("'{}' has host bits set (the network is {})", text,
                             format_ipv4_net({net.first(), net.prefix})),
                 EINVAL);
  }
  return net;
}

std::string format_ipv4_net(const Ipv4Net& net) { return fmt::format("{}/{}", format_ipv4(net.address), net.prefix); }

}  // namespace sbx
