#pragma once
// Bridge networking on the daemon's side: the bridge, the addresses (leases in the store), the firewall table and
// the DNS forwarder. The runtime makes each run's veth; this makes everything a veth plugs into, and decides what a
// sandbox may reach. Nothing is set up on the host until the first sandbox in bridge mode needs it.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/ipv4.h"
#include "daemon/config.h"
#include "daemon/dns_forwarder.h"
#include "daemon/store.h"
#include "runtime/firewall.h"
#include "runtime/plan.h"

typedef struct uv_loop_s uv_loop_t;

namespace sbx::daemon {

class Network {
 public:
  Network(uv_loop_t* loop, const DaemonConfig& config, Store& store);
  ~Network();

  // Brings the host in line with `sandboxes` (every sandbox in the store; `running`: those with a live run): leases
  // of sandboxes that are gone are freed; when any sandbox is in bridge mode or an earlier table exists, the
  // bridge is set up and the table rebuilt to hold exactly these sandboxes; veths of ours that no running sandbox
  // owns are deleted.
  Result<void> start(const std::vector<const SandboxRow*>& sandboxes, const std::set<std::string>& running);
  // A new sandbox in bridge mode: its address and firewall rules (and on first use the bridge and the forwarder).
  Result<void> attach(const SandboxRow& row);
  // Its rules and address go; a sandbox without them is not an error.
  Result<void> detach(const SandboxRow& row);
  // The network section of a run's plan; nullopt in mode none.
  Result<std::optional<rt::NetworkPlan>> plan(const SandboxRow& row) const;
  // resolv.conf for a sandbox in bridge mode.
  std::string resolv_conf() const;
  // {mode, address, gateway, ports...} for inspect.
  nlohmann::json describe(const SandboxRow& row) const;
  // The veth host end of the sandbox holding `address`: "sbxv" and the address in hex.
  static std::string host_ifname(uint32_t address);

 private:
  Result<void> ensure_ready();
  Result<void> start_dns();
  Result<uint32_t> allocate(const std::string& id);
  rt::SandboxFirewall firewall_of(const SandboxRow& row, uint32_t address) const;
  void sweep_links(const std::set<std::string>& keep);
  // Records that `row` holds `address` (for its plans, inspect and the DNS forwarder).
  void hold(const SandboxRow& row, uint32_t address);

  uv_loop_t* loop_;
  const DaemonConfig& config_;
  Store& store_;
  Ipv4Net subnet_;
  uint32_t gateway_ = 0;
  rt::FirewallConfig firewall_;
  bool ready_ = false;
  std::map<std::string, uint32_t> leases_;  // sandbox id -> address
  uint32_t next_ = 0;  // where the search for a free address starts: addresses are handed out round robin, so one
                       // is reused only after the whole subnet (its old veth and conntrack entries long gone)
  std::map<uint32_t, DnsClient> clients_;   // address -> what the DNS forwarder needs of its sandbox
  std::unique_ptr<DnsForwarder> dns_;
};

}  // namespace sbx::daemon
