#pragma once
// cgroup v2 delegation under systemd. With Delegate=yes, systemd hands sbxd the cgroup of sbxd.service, but sbxd
// itself lives in it, and v2 lets a cgroup either hold processes or enable controllers for its children, not both.
// So, at start-up under systemd on v2, sbxd moves itself (and so every monitor it starts later) into the leaf
// <service cgroup>/supervisor, enables the controllers the service cgroup has for its children, and fixes the
// sandboxes' parent at <service cgroup>/<parent_name>. Outside systemd, or with an explicit parent, nothing moves.
#include "base/error.h"
#include "daemon/config.h"

namespace sbx::daemon {

// Returns whether it moved the daemon; updates config.cgroup_parent when it did.
Result<bool> take_v2_delegation(DaemonConfig* config);

}  // namespace sbx::daemon
