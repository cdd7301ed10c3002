#include "daemon/network.h"

#include <algorithm>

#include "api/protocol.h"
#include "base/file.h"
#include "daemon/log.h"
#include "daemon/network_spec.h"
#include "runtime/net_link.h"

namespace sbx::daemon {

namespace {

constexpr uint64_t kMinLearnedMs = 300 * 1000;       // an answer's addresses stay reachable at least this long
constexpr uint64_t kMaxLearnedMs = 24 * 3600 * 1000;  // and at most this long (a client may cache past the TTL)
constexpr std::string_view kLinkPrefix = "sbxv";

bool is_our_link_name(const std::string& name) {
  return name.size() == kLinkPrefix.size() + 8 && name.starts_with(kLinkPrefix) &&
         name.find_first_not_of("0123456789abcdef", kLinkPrefix.size()) == std::string::npos;
}

std::vector<uint32_t> upstream_servers(const DaemonConfig& config) {
  std::vector<uint32_t> out;
  for (const auto& s : config.dns_servers) {
    out.push_back(*parse_ipv4(s));
  }
  if (out.empty()) {
    if (auto text = read_file("/etc/resolv.conf"); text.ok()) {
      out = resolv_conf_nameservers(*text);
    }
  }
  return out;
}

Result<void> write_sysctl(const std::string& path, std::string_view value) {
  SBX_TRY_CTX(write_file(path, value), "set {}", path);
  return ok();
}

}  // namespace

Network::Network(uv_loop_t* loop, const DaemonConfig& config, Store& store)
    : loop_(loop), config_(config), store_(store) {
  subnet_ = *parse_ipv4_net(config.subnet);  // checked with the config
  gateway_ = subnet_.first() + 1;
  firewall_.table = config.nft_table;
  firewall_.bridge = config.bridge;
  firewall_.subnet = subnet_;
  firewall_.gateway = gateway_;
  firewall_.denied = rt::default_denied_networks();
}

Network::~Network() = default;

std::string Network::host_ifname(uint32_t address) { return fmt::format("{}{:08x}", kLinkPrefix, address); }

rt::SandboxFirewall Network::firewall_of(const SandboxRow& row, uint32_t address) const {
  return firewall_for(row.id, address, row.spec["network"]);
}

Result<void> Network::start(const std::vector<const SandboxRow*>& sandboxes, const std::set<std::string>& running) {
  std::map<std::string, const SandboxRow*> bridged;
  for (const SandboxRow* row : sandboxes) {
    if (network_mode(row->spec) == "bridge") {
      bridged[row->id] = row;
    }
  }
  SBX_ASSIGN_CTX(auto leases, store_.leases(), "read the address leases");
  for (const LeaseRow& lease : leases) {
    if (!bridged.count(lease.sandbox_id) || !subnet_.contains(lease.address)) {
      log_warn("sandbox={}: freeing the address {} it no longer needs", lease.sandbox_id, format_ipv4(lease.address));
      (void)store_.delete_lease(lease.sandbox_id);
      continue;
    }
    next_ = std::max(next_, lease.address + 1);
    hold(*bridged[lease.sandbox_id], lease.address);
  }
  SBX_ASSIGN(bool table, rt::firewall_exists(firewall_));
  if (bridged.empty() && !table) {
    return ok();  // never used here: touch nothing on the host
  }
  SBX_TRY(ensure_ready());
  std::vector<rt::SandboxFirewall> rules;
  std::set<std::string> keep;
  for (const auto& [id, row] : bridged) {
    auto it = leases_.find(id);
    if (it == leases_.end()) {
      log_warn("sandbox={}: in bridge mode without an address: it gets one", id);
      SBX_ASSIGN(uint32_t address, allocate(id));
      hold(*row, address);
      it = leases_.find(id);
    }
    rules.push_back(firewall_of(*row, it->second));
    if (running.count(id)) {
      keep.insert(host_ifname(it->second));
    }
  }
  SBX_TRY_CTX(rt::firewall_reset(firewall_, rules), "rebuild the firewall");
  sweep_links(keep);
  return ok();
}

// Veths that no running sandbox owns: a monitor that died without its cleanup left them.
void Network::sweep_links(const std::set<std::string>& keep) {
  auto links = rt::list_links();
  if (!links.ok()) {
    log_warn("network: list links: {}", links.error().message());
    return;
  }
  for (const auto& link : *links) {
    if (is_our_link_name(link.name) && link.kind == "veth" && !keep.count(link.name)) {
      log_warn("network: deleting orphaned link {}", link.name);
      if (auto r = rt::delete_link(link.name); !r.ok()) {
        log_warn("network: {}", r.error().message());
      }
    }
  }
}

Result<void> Network::ensure_ready() {
  if (ready_) {
    return ok();
  }
  Ipv4Net bridge_address{gateway_, subnet_.prefix};
  SBX_TRY_CTX(rt::ensure_bridge(config_.bridge, bridge_address, config_.mtu), "set up the sandboxes' bridge");
  // Published ports reached on 127.0.0.1 are DNATed to the bridge: the kernel must route loopback sources there.
  SBX_TRY(write_sysctl(fmt::format("/proc/sys/net/ipv4/conf/{}/route_localnet", config_.bridge), "1"));
  if (config_.enable_ip_forward) {
    SBX_TRY(write_sysctl("/proc/sys/net/ipv4/ip_forward", "1"));
  }
  SBX_ASSIGN(bool table, rt::firewall_exists(firewall_));
  if (!table) {
    SBX_TRY_CTX(rt::firewall_reset(firewall_, {}), "create the firewall");
  }
  SBX_TRY(start_dns());
  ready_ = true;
  log_info("network: bridge {} at {}, firewall table inet {}", config_.bridge, format_ipv4_net(bridge_address),
           config_.nft_table);
  return ok();
}

Result<void> Network::start_dns() {
  auto upstreams = upstream_servers(config_);
  if (upstreams.empty()) {
    log_warn("network: no upstream DNS server (set [network] dns_servers): sandboxes' lookups will fail");
  }
  auto lookup = [this](uint32_t address) -> std::optional<DnsClient> {
    auto it = clients_.find(address);
    return it == clients_.end() ? std::nullopt : std::optional<DnsClient>(it->second);
  };
  auto learn = [this](const std::string& key, const std::vector<uint32_t>& addresses, uint32_t ttl) {
    uint64_t ms = std::clamp<uint64_t>(uint64_t(ttl) * 1000, kMinLearnedMs, kMaxLearnedMs);
    if (auto r = rt::firewall_allow_learned(firewall_, key, addresses, ms); !r.ok()) {
      log_warn("sandbox={}: {}", key, r.error().message());
    }
  };
  SBX_ASSIGN_CTX(dns_, DnsForwarder::start(loop_, gateway_, 53, std::move(upstreams), lookup, learn),
                 "start the DNS forwarder");
  return ok();
}

Result<uint32_t> Network::allocate(const std::string& id) {
  std::set<uint32_t> taken;
  for (const auto& [holder, address] : leases_) {
    taken.insert(address);
  }
  const uint32_t first = gateway_ + 1;
  const uint32_t count = subnet_.last() - first;  // the broadcast address excluded
  uint32_t start = next_ < first || next_ >= subnet_.last() ? first : next_;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t a = first + (start - first + i) % count;
    if (!taken.count(a)) {
      SBX_TRY_CTX(store_.add_lease({a, id, api::now_ms()}), "record the address of sandbox '{}'", id);
      next_ = a + 1;
      return a;
    }
  }
  return api::api_error(api::kLimitExceeded, "no free address left in {}", config_.subnet);
}

Result<void> Network::attach(const SandboxRow& row) {
  if (network_mode(row.spec) != "bridge") {
    return ok();
  }
  for (const char* cap : {"CAP_NET_RAW", "CAP_NET_ADMIN"}) {
    // Either would let the sandbox forge its source address, and with it another sandbox's policy.
    if (std::find(config_.capabilities.begin(), config_.capabilities.end(), cap) != config_.capabilities.end()) {
      return api::api_error(api::kInvalidParams, "network: bridge mode cannot be used while [defaults] capabilities "
                            "keeps {}", cap);
    }
  }
  SBX_TRY(ensure_ready());
  SBX_ASSIGN(uint32_t address, allocate(row.id));
  rt::SandboxFirewall rules = firewall_of(row, address);
  if (auto r = rt::firewall_add(firewall_, rules); !r.ok()) {
    (void)store_.delete_lease(row.id);
    if (r.error().sys_errno() == EEXIST) {
      return api::api_error(api::kConflict, "sandbox '{}': a published port is already taken by another sandbox",
                            row.name);
    }
    return r.error();
  }
  hold(row, address);
  return ok();
}

void Network::hold(const SandboxRow& row, uint32_t address) {
  leases_[row.id] = address;
  clients_[address] = {row.id, row.spec["network"].value("allow_hosts", std::vector<std::string>())};
}

Result<void> Network::detach(const SandboxRow& row) {
  auto it = leases_.find(row.id);
  if (it == leases_.end()) {
    return ok();
  }
  uint32_t address = it->second;
  SBX_TRY(rt::firewall_remove(firewall_, firewall_of(row, address)));
  SBX_TRY_CTX(store_.delete_lease(row.id), "free the address of sandbox '{}'", row.id);
  clients_.erase(address);
  leases_.erase(it);
  return ok();
}

Result<std::optional<rt::NetworkPlan>> Network::plan(const SandboxRow& row) const {
  if (network_mode(row.spec) != "bridge") {
    return std::optional<rt::NetworkPlan>();
  }
  auto it = leases_.find(row.id);
  if (it == leases_.end()) {
    return make_error("sandbox '{}' is in bridge mode but holds no address", row.id);
  }
  rt::NetworkPlan plan;
  plan.host_ifname = host_ifname(it->second);
  plan.bridge = config_.bridge;
  plan.address = {it->second, subnet_.prefix};
  plan.gateway = gateway_;
  plan.mtu = config_.mtu;
  return std::optional<rt::NetworkPlan>(plan);
}

std::string Network::resolv_conf() const { return fmt::format("nameserver {}\n", format_ipv4(gateway_)); }

nlohmann::json Network::describe(const SandboxRow& row) const {
  nlohmann::json out = row.spec.contains("network") && row.spec["network"].is_object()
                           ? row.spec["network"]
                           : nlohmann::json{{"mode", network_mode(row.spec)}};
  if (auto it = leases_.find(row.id); it != leases_.end()) {
    out["address"] = format_ipv4(it->second);
    out["gateway"] = format_ipv4(gateway_);
  }
  return out;
}

}  // namespace sbx::daemon
