#include "daemon/network_spec.h"

#include <netinet/in.h>

#include <charconv>
#include <set>

#include "api/protocol.h"
#include "base/ipv4.h"
#include "daemon/dns_message.h"

namespace sbx::daemon {

namespace {

using api::param_error;

constexpr size_t kMaxEntries = 256;  // per list: ports, CIDRs, names

Result<uint16_t> parse_port(std::string_view text, std::string_view field) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v == 0 || v > 65535) {
    return param_error(field, fmt::format("'{}' is not a port (1 to 65535)", text));
  }
  return static_cast<uint16_t>(v);
}

Result<uint16_t> port_value(const json& v, std::string_view field) {
  if (v.is_number_integer()) {
    int64_t n = v.get<int64_t>();
    if (n < 1 || n > 65535) {
      return param_error(field, fmt::format("{} is not a port (1 to 65535)", n));
    }
    return static_cast<uint16_t>(n);
  }
  if (v.is_string()) {
    return parse_port(v.get<std::string>(), field);
  }
  return param_error(field, "must be a port number");
}

Result<json> port_list(const json& v, std::string_view field) {
  if (!v.is_array() || v.size() > kMaxEntries) {
    return param_error(field, fmt::format("must be an array of up to {} ports", kMaxEntries));
  }
  std::set<uint16_t> ports;
  for (size_t i = 0; i < v.size(); ++i) {
    SBX_ASSIGN(uint16_t p, port_value(v[i], fmt::format("{}[{}]", field, i)));
    ports.insert(p);
  }
  return json(std::vector<uint16_t>(ports.begin(), ports.end()));
}

Result<json> cidr_list(const json& v, std::string_view field) {
  if (!v.is_array() || v.size() > kMaxEntries) {
    return param_error(field, fmt::format("must be an array of up to {} IPv4 networks", kMaxEntries));
  }
  json out = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    auto net = v[i].is_string() ? parse_ipv4_net(v[i].get<std::string>()) : Result<Ipv4Net>(Error("not a string"));
    if (!net.ok()) {
      return param_error(fmt::format("{}[{}]", field, i), net.error().message());
    }
    out.push_back(format_ipv4_net(*net));
  }
  return out;
}

Result<json> host_list(const json& v, std::string_view field) {
  if (!v.is_array() || v.size() > kMaxEntries) {
    return param_error(field, fmt::format("must be an array of up to {} host names", kMaxEntries));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < v.size(); ++i) {
    auto name = v[i].is_string() ? dns::normalize_host_pattern(v[i].get<std::string>())
                                 : Result<std::string>(Error("not a string"));
    if (!name.ok()) {
      return param_error(fmt::format("{}[{}]", field, i), name.error().message());
    }
    names.insert(*name);
  }
  return json(std::vector<std::string>(names.begin(), names.end()));
}

Result<json> published_ports(const json& v) {
  if (!v.is_array() || v.size() > kMaxEntries) {
    return param_error("network.ports", fmt::format("must be an array of up to {} ports", kMaxEntries));
  }
  json out = json::array();
  std::set<std::string> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string field = fmt::format("network.ports[{}]", i);
    SBX_ASSIGN(json p, parse_published_port(v[i], field));
    std::string key = fmt::format("{}:{}/{}", p["host_ip"].get<std::string>(), p["host_port"].get<int>(),
                                  p["protocol"].get<std::string>());
    if (!seen.insert(key).second) {
      return param_error(field, fmt::format("{} is published twice", key));
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<json> parse_bandwidth(const json& v) {
  auto bytes = v.is_number_integer() && v.get<int64_t>() >= 0 ? Result<uint64_t>(v.get<uint64_t>())
               : v.is_string()        ? api::parse_size(v.get<std::string>())
                                      : Result<uint64_t>(Error("not a size"));
  if (!bytes.ok() || (*bytes != 0 && *bytes < 1024)) {
    return param_error("network.bandwidth", "must be bytes per second, at least 1K (\"10M\"), or 0 for no cap");
  }
  return json(*bytes);
}

const std::set<std::string> kNetworkKeys = {"mode", "ports", "allow", "allow_ports", "allow_hosts", "block_ports",
                                            "bandwidth"};

Result<void> check_bridge_only(const json& in, const std::string& mode) {
  for (const auto& [key, value] : in.items()) {
    if (!kNetworkKeys.count(key)) {
      return param_error("network." + key, "unknown key");
    }
    if (mode != "bridge" && key != "mode") {
      return param_error("network." + key, "needs network mode \"bridge\"");
    }
  }
  return ok();
}

}  // namespace

Result<json> parse_published_port(const json& value, std::string_view field) {
  std::string host_ip = "127.0.0.1";
  std::string protocol = "tcp";
  uint16_t host_port = 0;
  uint16_t port = 0;
  if (value.is_string()) {
    std::string text = value.get<std::string>();
    if (size_t slash = text.rfind('/'); slash != std::string::npos) {
      protocol = text.substr(slash + 1);
      text.resize(slash);
    }
    size_t last = text.rfind(':');
    if (last == std::string::npos) {
      return param_error(field, fmt::format("'{}' is not [HOST_IP:]HOST_PORT:PORT[/tcp|/udp]",
                                            value.get<std::string>()));
    }
    size_t first = text.rfind(':', last - 1);
    SBX_ASSIGN(port, parse_port(text.substr(last + 1), field));
    if (first != std::string::npos && last > 0) {
      host_ip = text.substr(0, first);
      SBX_ASSIGN(host_port, parse_port(text.substr(first + 1, last - first - 1), field));
    } else {
      SBX_ASSIGN(host_port, parse_port(text.substr(0, last), field));
    }
  } else if (value.is_object()) {
    host_ip = value.value("host_ip", host_ip);
    protocol = value.value("protocol", protocol);
    SBX_ASSIGN(host_port, port_value(value.value("host_port", json()), std::string(field) + ".host_port"));
    SBX_ASSIGN(port, port_value(value.value("port", json()), std::string(field) + ".port"));
  } else {
    return param_error(field, "must be \"[HOST_IP:]HOST_PORT:PORT[/tcp|/udp]\" or an object");
  }
  auto ip = parse_ipv4(host_ip);
  if (!ip.ok() || *ip == 0) {
    return param_error(field, fmt::format("host address '{}' must be one IPv4 address (not 0.0.0.0)", host_ip));
  }
  if (protocol != "tcp" && protocol != "udp") {
    return param_error(field, fmt::format("protocol '{}' must be tcp or udp", protocol));
  }
  return json{{"host_ip", host_ip}, {"host_port", host_port}, {"port", port}, {"protocol", protocol}};
}

Result<json> normalize_network(const json& value, const DaemonConfig& config) {
  json in = value.is_null() ? json(config.network_default) : value;
  if (in.is_string()) {
    in = json{{"mode", in}};
  }
  if (!in.is_object()) {
    return param_error("network", "must be a mode (\"none\", \"bridge\") or an object");
  }
  std::string mode = in.value("mode", json(config.network_default)).is_string()
                         ? in.value("mode", config.network_default)
                         : std::string();
  if (mode != "none" && mode != "bridge") {
    return param_error("network.mode", fmt::format("unknown network mode '{}' (none or bridge)", mode));
  }
  SBX_TRY(check_bridge_only(in, mode));
  json out = {{"mode", mode}};
  if (mode == "none") {
    return out;
  }
  SBX_ASSIGN(out["ports"], published_ports(in.value("ports", json::array())));
  SBX_ASSIGN(out["allow"], cidr_list(in.value("allow", json::array()), "network.allow"));
  SBX_ASSIGN(out["allow_ports"], port_list(in.value("allow_ports", json::array()), "network.allow_ports"));
  SBX_ASSIGN(out["allow_hosts"], host_list(in.value("allow_hosts", json::array()), "network.allow_hosts"));
  SBX_ASSIGN(out["block_ports"], port_list(in.value("block_ports", json::array()), "network.block_ports"));
  SBX_ASSIGN(out["bandwidth"], parse_bandwidth(in.value("bandwidth", json(0))));
  return out;
}

std::string network_mode(const json& spec) {
  const json& n = spec.contains("network") ? spec["network"] : json();
  if (n.is_object()) {
    return n.value("mode", "none");
  }
  return n.is_string() ? n.get<std::string>() : "none";
}

rt::SandboxFirewall firewall_for(const std::string& key, uint32_t address, const json& n) {
  rt::SandboxFirewall f;
  f.key = key;
  f.address = address;
  for (const auto& c : n.value("allow", json::array())) {
    f.allow.push_back(*parse_ipv4_net(c.get<std::string>()));
  }
  f.allow_list = !n.value("allow", json::array()).empty() || !n.value("allow_hosts", json::array()).empty();
  f.allow_ports = n.value("allow_ports", json::array()).get<std::vector<uint16_t>>();
  f.block_ports = n.value("block_ports", json::array()).get<std::vector<uint16_t>>();
  for (const auto& p : n.value("ports", json::array())) {
    f.ports.push_back({*parse_ipv4(p["host_ip"].get<std::string>()), p["host_port"].get<uint16_t>(),
                       p["port"].get<uint16_t>(),
                       static_cast<uint8_t>(p["protocol"].get<std::string>() == "udp" ? IPPROTO_UDP : IPPROTO_TCP)});
  }
  f.bandwidth = n.value("bandwidth", uint64_t(0));
  return f;
}

}  // namespace sbx::daemon
