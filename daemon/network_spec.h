#pragma once
// A sandbox's network as requested, checked and normalized (pure; unit-tested without root). The request's
// "network" is a mode string ("none", "bridge") or an object:
//   {mode, ports: ["8080:80", "127.0.0.1:5353:53/udp", {host_ip, host_port, port, protocol}],
//    allow: ["198.51.100.0/24"], allow_ports: [443], allow_hosts: ["api.github.com", "*.example.com"],
//    block_ports: [25], bandwidth: "1M" (bytes per second, each way)}
// The normalized form, stored in the sandbox's spec, is always the object with every key.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "daemon/config.h"
#include "runtime/firewall.h"

namespace sbx::daemon {

using json = nlohmann::json;

// `value` is the request's "network" (null: the daemon's default mode). Errors are kInvalidParams naming the field.
Result<json> normalize_network(const json& value, const DaemonConfig& config);

// A stored spec's network: "none" for specs written before bridge mode existed (a bare "none").
std::string network_mode(const json& spec);

// One published port, "[HOST_IP:]HOST_PORT:PORT[/tcp|/udp]" or an object, as {host_ip, host_port, port, protocol}.
Result<json> parse_published_port(const json& value, std::string_view field);

// The firewall's view of a normalized bridge spec for the sandbox `key` at `address`.
rt::SandboxFirewall firewall_for(const std::string& key, uint32_t address, const json& network);

}  // namespace sbx::daemon
