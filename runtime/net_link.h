#pragma once
// Network links on the host side (libnl-route): the bridge sandboxes join, each sandbox's veth pair, and their
// traffic counters. Runs in the caller's network namespace (the daemon's).
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/ipv4.h"
#include "runtime/plan.h"

namespace sbx::rt {

// Byte and packet counts as the host end of a sandbox's veth sees them: what it receives is what the sandbox sent.
struct LinkCounters {
  uint64_t rx_bytes = 0;
  uint64_t rx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_packets = 0;
};

struct LinkInfo {
  std::string name;
  std::string kind;    // "veth", "bridge", ... ("" for a link without one, such as lo or a physical NIC)
  std::string master;  // the bridge it is a port of, or ""
};

// The veth pair of a sandbox: `net.host_ifname` in the caller's namespace, an isolated port of `net.bridge` (ports so
// marked cannot reach one another, only the bridge), up; the other end, eth0, created directly in the network
// namespace of `pid`. eth0's address and routes are the sandbox's own business (configure_sandbox_eth0). A link
// already named `net.host_ifname` is taken for a previous run's veth still on its way out, and replaced. Nothing
// needs to delete the pair afterwards: the kernel does when the sandbox's network namespace goes.
Result<void> create_sandbox_veth(const NetworkPlan& net, pid_t pid);

// Deletes a link (both ends of a veth); a link that is already gone is not an error.
Result<void> delete_link(const std::string& name);

Result<LinkCounters> link_counters(const std::string& name);

// Makes `name` a bridge with `address` (its own address, with the subnet's prefix) and `mtu`, and up. An existing
// bridge of that name is kept: it is given the address if it lacks it, and brought up. An existing link of another
// kind is an error.
Result<void> ensure_bridge(const std::string& name, const Ipv4Net& address, uint32_t mtu);

Result<std::vector<LinkInfo>> list_links();

}  // namespace sbx::rt
