#pragma once
// The sandbox's side of its network: run by the sandbox's first process inside its new network namespace, after
// the runtime has moved eth0 in (create_sandbox_veth). Returns 0 or an errno, and builds its netlink requests in
// stack buffers.
#include "runtime/plan.h"

namespace sbx::rt {

// Turns IPv6 off on `ifname` in the caller's network namespace (net.ipv6.conf.<ifname>.disable_ipv6), before the
// link goes up: sandbox networking is IPv4 only, so the link gets no link-local address, does no duplicate address
// detection or router solicitation, and offers no IPv6 path around the IPv4 firewall. 0 also when the kernel has no
// IPv6; else an errno.
int disable_ipv6(const char* ifname) noexcept;

// eth0 up (no IPv6 addresses), with net.address (and so a route to the subnet), and a default route via net.gateway.
int configure_sandbox_eth0(const NetworkPlan& net) noexcept;

}  // namespace sbx::rt
