#pragma once
// The sandboxes' firewall: one nftables table, `inet <table>`, holding
//   - base chains for the bridge: what sandboxes may send (forward), reach on the host (input: only the DNS
//     forwarder), masquerade on the way out, and DNAT for published ports;
//   - per sandbox: an element in the `egress` verdict map (its address -> its egress chain) and its published ports
//     in the `ports_tcp` / `ports_udp` maps. A sandbox with the default policy and no bandwidth cap jumps to the
//     shared chain `egress-default`; any other has a chain `sb-<key>` with its egress policy, a set `sb-<key>-dns`
//     of addresses its DNS answers allowed (entries expire), `sb-<key>-ports` of allowed destination ports, and
//     optionally `in-<key>` (a bandwidth cap on what it receives).
// Adding a sandbox is one transaction and so is removing it: the table never holds half a sandbox.
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/ipv4.h"

namespace sbx::rt {

struct FirewallConfig {
  std::string table = "sbx";
  std::string bridge;     // the sandboxes' bridge
  Ipv4Net subnet;         // its network: 10.66.0.0/16
  uint32_t gateway = 0;   // the bridge's address, where the DNS forwarder listens
  uint16_t dns_port = 53;
  // Destinations a sandbox in the default mode may not reach: private, loopback, link-local (cloud metadata),
  // shared, multicast and reserved ranges. The sandbox subnet is always added.
  std::vector<Ipv4Net> denied;
};

// The ranges FirewallConfig::denied holds unless configured otherwise.
std::vector<Ipv4Net> default_denied_networks();

struct PublishedPort {
  uint32_t host_address = 0;  // 127.0.0.1 by default
  uint16_t host_port = 0;
  uint16_t port = 0;          // in the sandbox
  uint8_t protocol = 0;       // IPPROTO_TCP or IPPROTO_UDP
  bool operator==(const PublishedPort&) const = default;
};

struct SandboxFirewall {
  std::string key;           // names the sandbox's chain and sets: [a-z0-9_.-]
  uint32_t address = 0;      // the sandbox's eth0
  // Allow-list mode: only `allow` and the addresses the sandbox's allowed names resolved to. Otherwise every
  // destination outside the denied ranges (an `allow` entry is checked first, so it can open a denied range).
  bool allow_list = false;
  std::vector<Ipv4Net> allow;
  std::vector<uint16_t> allow_ports;  // non-empty: only these destination ports (TCP and UDP; ICMP is then refused)
  std::vector<uint16_t> block_ports;  // TCP and UDP destination ports always refused
  std::vector<PublishedPort> ports;
  uint64_t bandwidth = 0;             // bytes per second each way; 0: no cap
};

// The table with its base chains and these sandboxes, replacing whatever table of that name was there, in one
// transaction. What the old table held beyond them (orphans of a crash, learned DNS addresses) is gone.
Result<void> firewall_reset(const FirewallConfig& config, const std::vector<SandboxFirewall>& sandboxes);
// Adds one sandbox; the table must exist (firewall_reset).
Result<void> firewall_add(const FirewallConfig& config, const SandboxFirewall& sandbox);
// Removes one sandbox; a sandbox (or table) that is not there is not an error.
Result<void> firewall_remove(const FirewallConfig& config, const SandboxFirewall& sandbox);
// Lets the sandbox reach `addresses` (learned from DNS answers) for `timeout_ms`.
Result<void> firewall_allow_learned(const FirewallConfig& config, const std::string& key,
                                    const std::vector<uint32_t>& addresses, uint64_t timeout_ms);
// Deletes the table, if it exists.
Result<void> firewall_delete(const FirewallConfig& config);
Result<bool> firewall_exists(const FirewallConfig& config);

}  // namespace sbx::rt
