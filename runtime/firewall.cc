#include "runtime/firewall.h"

#include <netinet/in.h>
// after <netinet/in.h>: it then skips its own copy of the IP protocol numbers
#include <linux/netfilter.h>

#include "runtime/nft.h"

namespace sbx::rt {

namespace {

using nft::Rule;
using nft::Transaction;

constexpr uint32_t kTypeIpv4 = 7;      // nft's ipv4_addr
constexpr uint32_t kTypeService = 13;  // inet_service
constexpr uint32_t kTypeIpv4Service = (kTypeIpv4 << 6) | kTypeService;
constexpr uint32_t kCtOpen = nft::kCtEstablished | nft::kCtRelated;
constexpr int32_t kPriorityFilter = 0;
constexpr int32_t kPriorityDstNat = -100;
constexpr int32_t kPrioritySrcNat = 100;

const std::string kEgressMap = "egress";
const std::string kIngressMap = "ingress";
const std::string kDenyChain = "deny";
// The egress of every sandbox with the default policy (and no bandwidth cap): most sandboxes, which then cost one map
// element each, and no chain or set of their own.
const std::string kDefaultEgressChain = "egress-default";
const std::string kPortMaps[] = {"ports_tcp", "ports_udp"};
constexpr uint8_t kProtocols[] = {IPPROTO_TCP, IPPROTO_UDP};

std::string egress_chain(const std::string& key) { return "sb-" + key; }
std::string ingress_chain(const std::string& key) { return "in-" + key; }
std::string dns_set(const std::string& key) { return "sb-" + key + "-dns"; }
std::string ports_set(const std::string& key) { return "sb-" + key + "-ports"; }
const std::string& port_map(uint8_t protocol) { return kPortMaps[protocol == IPPROTO_TCP ? 0 : 1]; }

Ipv4Net host(uint32_t address) { return {address, 32}; }

// (Designated initializers would leave members unnamed, which -Wmissing-field-initializers refuses.)
nft::SetSpec set_spec(std::string name, uint32_t key_type, uint32_t key_len) {
  nft::SetSpec spec;
  spec.name = std::move(name);
  spec.key_type = key_type;
  spec.key_len = key_len;
  return spec;
}

nft::SetSpec verdict_map(std::string name) {
  nft::SetSpec spec = set_spec(std::move(name), kTypeIpv4, 4);
  spec.verdict_map = true;
  return spec;
}

nft::Element element(std::string key, std::string data = {}, std::string jump = {}, uint64_t timeout_ms = 0) {
  nft::Element e;
  e.key = std::move(key);
  e.data = std::move(data);
  e.jump = std::move(jump);
  e.timeout_ms = timeout_ms;
  return e;
}

void add_maps(Transaction& t) {
  t.add_set(verdict_map(kEgressMap));
  t.add_set(verdict_map(kIngressMap));
  for (const auto& map : kPortMaps) {
    nft::SetSpec spec = set_spec(map, kTypeIpv4Service, 8);
    spec.data_len = 8;
    t.add_set(spec);
  }
}

void add_deny_chain(Transaction& t, const FirewallConfig& c) {
  t.add_chain(kDenyChain);
  for (const Ipv4Net& net : c.denied) {
    t.add_rule(Rule(kDenyChain).ipv4().daddr(net).drop());
  }
  t.add_rule(Rule(kDenyChain).ipv4().daddr(c.subnet).drop());
}

// Sandboxes' traffic through the host: each sandbox's own chain decides what it sends; what comes back must belong
// to a connection it opened or to a published port.
void add_forward_chain(Transaction& t, const FirewallConfig& c) {
  const std::string chain = "forward";
  t.add_chain(chain, nft::Hook{nft::Hook::Type::kFilter, NF_INET_FORWARD, kPriorityFilter});
  t.add_rule(Rule(chain).oifname(c.bridge).ipv4().daddr_vmap(kIngressMap));
  t.add_rule(Rule(chain).iifname(c.bridge).ipv4().saddr_vmap(kEgressMap));
  t.add_rule(Rule(chain).iifname(c.bridge).drop());
  t.add_rule(Rule(chain).oifname(c.bridge).ct_state(kCtOpen).accept());
  t.add_rule(Rule(chain).oifname(c.bridge).ct_status(nft::kCtStatusDstNat).accept());
  t.add_rule(Rule(chain).oifname(c.bridge).drop());
}

// The host itself is off limits to sandboxes, but for the DNS forwarder on the gateway.
void add_input_chain(Transaction& t, const FirewallConfig& c) {
  const std::string chain = "input";
  t.add_chain(chain, nft::Hook{nft::Hook::Type::kFilter, NF_INET_LOCAL_IN, kPriorityFilter});
  t.add_rule(Rule(chain).iifname(c.bridge).ct_state(kCtOpen).accept());
  for (uint8_t proto : kProtocols) {
    t.add_rule(Rule(chain).iifname(c.bridge).ipv4().daddr(host(c.gateway)).l4proto(proto).dport(c.dns_port).accept());
  }
  t.add_rule(Rule(chain).iifname(c.bridge).drop());
}

void add_nat_chains(Transaction& t, const FirewallConfig& c) {
  for (auto [chain, hook] : {std::pair{"prerouting", NF_INET_PRE_ROUTING}, {"output", NF_INET_LOCAL_OUT}}) {
    t.add_chain(chain, nft::Hook{nft::Hook::Type::kNat, static_cast<uint32_t>(hook), kPriorityDstNat});
    for (uint8_t proto : kProtocols) {
      t.add_rule(Rule(chain).ipv4().dnat_by_map(port_map(proto), proto));
    }
  }
  const std::string chain = "postrouting";
  t.add_chain(chain, nft::Hook{nft::Hook::Type::kNat, NF_INET_POST_ROUTING, kPrioritySrcNat});
  t.add_rule(Rule(chain).ipv4().saddr(c.subnet).oifname(c.bridge, false).masquerade());
  // A published port reached from the host's loopback: the sandbox must see an address it can answer.
  t.add_rule(Rule(chain).ipv4().oifname(c.bridge).saddr({0x7f000000, 8}).masquerade());
}

bool has_default_policy(const SandboxFirewall& s) {
  return !s.allow_list && s.allow.empty() && s.allow_ports.empty() && s.block_ports.empty() && s.bandwidth == 0;
}

// What add_egress_chain makes of a sandbox with the default policy, shared.
void add_default_egress_chain(Transaction& t) {
  t.add_chain(kDefaultEgressChain);
  t.add_rule(Rule(kDefaultEgressChain).ct_state(kCtOpen).accept());
  t.add_rule(Rule(kDefaultEgressChain).jump(kDenyChain));
  t.add_rule(Rule(kDefaultEgressChain).accept());
}

// `to` accepted, or when ports are restricted, only to those ports.
void accept_to(Transaction& t, const SandboxFirewall& s, const std::function<Rule()>& to) {
  if (s.allow_ports.empty()) {
    t.add_rule(to().accept());
    return;
  }
  for (uint8_t proto : kProtocols) {
    t.add_rule(to().l4proto(proto).dport_in_set(ports_set(s.key)).accept());
  }
}

void add_egress_chain(Transaction& t, const SandboxFirewall& s) {
  const std::string chain = egress_chain(s.key);
  t.add_chain(chain);
  if (s.bandwidth > 0) {
    t.add_rule(Rule(chain).limit_over(s.bandwidth).drop());
  }
  t.add_rule(Rule(chain).ct_state(kCtOpen).accept());
  for (uint16_t port : s.block_ports) {
    for (uint8_t proto : kProtocols) {
      t.add_rule(Rule(chain).l4proto(proto).dport(port).drop());
    }
  }
  for (const Ipv4Net& net : s.allow) {
    accept_to(t, s, [&] { return Rule(chain).ipv4().daddr(net); });
  }
  accept_to(t, s, [&] { return Rule(chain).ipv4().daddr_in_set(dns_set(s.key)); });
  if (!s.allow_list) {
    t.add_rule(Rule(chain).jump(kDenyChain));
    accept_to(t, s, [&] { return Rule(chain); });
  }
  t.add_rule(Rule(chain).drop());
}

std::vector<nft::Element> port_elements(const SandboxFirewall& s, uint8_t proto, bool with_data) {
  std::vector<nft::Element> out;
  for (const PublishedPort& p : s.ports) {
    if (p.protocol == proto) {
      out.push_back(element(nft::concat_key(p.host_address, p.host_port),
                            with_data ? nft::concat_key(s.address, p.port) : std::string()));
    }
  }
  return out;
}

void add_published_ports(Transaction& t, const SandboxFirewall& s) {
  for (uint8_t proto : kProtocols) {
    if (auto elements = port_elements(s, proto, true); !elements.empty()) {
      t.add_elements(port_map(proto), elements);
    }
  }
}

void add_sandbox(Transaction& t, const SandboxFirewall& s) {
  if (has_default_policy(s)) {
    t.add_elements(kEgressMap, {element(nft::ipv4_key(s.address), {}, kDefaultEgressChain)});
    add_published_ports(t, s);
    return;
  }
  nft::SetSpec learned = set_spec(dns_set(s.key), kTypeIpv4, 4);
  learned.timeout = true;
  t.add_set(learned);
  t.add_set(set_spec(ports_set(s.key), kTypeService, 2));
  if (!s.allow_ports.empty()) {
    std::vector<nft::Element> ports;
    for (uint16_t p : s.allow_ports) {
      ports.push_back(element(nft::port_key(p)));
    }
    t.add_elements(ports_set(s.key), ports);
  }
  add_egress_chain(t, s);
  t.add_elements(kEgressMap, {element(nft::ipv4_key(s.address), {}, egress_chain(s.key))});
  if (s.bandwidth > 0) {
    t.add_chain(ingress_chain(s.key));
    t.add_rule(Rule(ingress_chain(s.key)).limit_over(s.bandwidth).drop());
    t.add_elements(kIngressMap, {element(nft::ipv4_key(s.address), {}, ingress_chain(s.key))});
  }
  add_published_ports(t, s);
}

}  // namespace

std::vector<Ipv4Net> default_denied_networks() {
  std::vector<Ipv4Net> out;
  for (const char* cidr : {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                           "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4",
                           "240.0.0.0/4"}) {
    out.push_back(*parse_ipv4_net(cidr));
  }
  return out;
}

Result<void> firewall_reset(const FirewallConfig& config, const std::vector<SandboxFirewall>& sandboxes) {
  SBX_ASSIGN(bool exists, nft::table_exists(config.table));
  Transaction t(config.table);
  if (exists) {
    t.delete_table();
  }
  t.add_table();
  add_maps(t);
  add_deny_chain(t, config);
  add_default_egress_chain(t);
  add_forward_chain(t, config);
  add_input_chain(t, config);
  add_nat_chains(t, config);
  for (const SandboxFirewall& s : sandboxes) {
    add_sandbox(t, s);
  }
  return t.commit();
}

Result<void> firewall_add(const FirewallConfig& config, const SandboxFirewall& sandbox) {
  Transaction t(config.table);
  add_sandbox(t, sandbox);
  SBX_TRY_CTX(t.commit(), "firewall rules of sandbox '{}'", sandbox.key);
  return ok();
}

Result<void> firewall_remove(const FirewallConfig& config, const SandboxFirewall& s) {
  auto ctx = [&] { return fmt::format("remove the firewall rules of sandbox '{}'", s.key); };
  Transaction t(config.table);
  t.delete_elements(kEgressMap, {element(nft::ipv4_key(s.address))});
  if (s.bandwidth > 0) {
    t.delete_elements(kIngressMap, {element(nft::ipv4_key(s.address))});
    t.flush_chain(ingress_chain(s.key));
    t.delete_chain(ingress_chain(s.key));
  }
  for (uint8_t proto : kProtocols) {
    if (auto elements = port_elements(s, proto, false); !elements.empty()) {
      t.delete_elements(port_map(proto), elements);
    }
  }
  const bool shared = has_default_policy(s);
  if (!shared) {
    t.flush_chain(egress_chain(s.key));
    t.delete_chain(egress_chain(s.key));
    t.delete_set(dns_set(s.key));
    t.delete_set(ports_set(s.key));
  }
  auto removed = t.commit();
  if (removed.ok() || removed.error().sys_errno() != ENOENT) {
    return removed.ok() ? ok() : std::move(removed).error().context(ctx());
  }
  // Something is missing: the sandbox was added in one transaction, so if its chain is gone, all of it is (or the
  // whole table is). Anything else missing is a table changed behind our back: an error. A sandbox on the shared
  // chain has nothing of its own but map elements, all added at once: one missing means none is there.
  SBX_ASSIGN_CTX(bool table, nft::table_exists(config.table), "{}", ctx());
  if (!table || shared) {
    return ok();
  }
  SBX_ASSIGN_CTX(bool present, nft::chain_exists(config.table, egress_chain(s.key)), "{}", ctx());
  if (!present) {
    return ok();
  }
  return std::move(removed).error().context(ctx());
}

Result<void> firewall_allow_learned(const FirewallConfig& config, const std::string& key,
                                    const std::vector<uint32_t>& addresses, uint64_t timeout_ms) {
  if (addresses.empty()) {
    return ok();
  }
  std::vector<nft::Element> elements;
  for (uint32_t a : addresses) {
    elements.push_back(element(nft::ipv4_key(a), {}, {}, timeout_ms));
  }
  Transaction t(config.table);
  t.add_elements(dns_set(key), elements);
  SBX_TRY_CTX(t.commit(), "allow sandbox '{}' the addresses its DNS answer named", key);
  return ok();
}

Result<void> firewall_delete(const FirewallConfig& config) {
  SBX_ASSIGN(bool exists, nft::table_exists(config.table));
  if (!exists) {
    return ok();
  }
  Transaction t(config.table);
  t.delete_table();
  return t.commit();
}

Result<bool> firewall_exists(const FirewallConfig& config) { return nft::table_exists(config.table); }

}  // namespace sbx::rt
