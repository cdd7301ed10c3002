#pragma once
// The sandbox's side of its network: run by the sandbox's first process inside its new network namespace, after
// the runtime has moved eth0 in (create_sandbox_veth). Returns 0 or an errno, and builds its netlink requests in
// stack buffers.
#include "runtime/plan.h"

namespace sbx::rt {

// eth0 up, with net.address (and so a route to the subnet), and a default route via net.gateway.
int configure_sandbox_eth0(const NetworkPlan& net) noexcept;

}  // namespace sbx::rt
