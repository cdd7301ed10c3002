#pragma once
// The DNS forwarder sandboxes in bridge mode use (their resolv.conf names the bridge's address). It answers on the
// bridge's address only, relays queries to the upstream resolvers, and enforces each sandbox's name allow-list:
// a name off the list gets NXDOMAIN, and the IPv4 addresses an allowed name resolves to are handed to `learn` (the
// firewall lets the sandbox reach them) before the answer is relayed, so the sandbox never holds an address it
// cannot connect to yet. UDP only.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

typedef struct uv_loop_s uv_loop_t;

namespace sbx::daemon {

struct DnsClient {
  std::string key;                       // the sandbox
  std::vector<std::string> allow_hosts;  // normalized patterns; empty: every name, and nothing to learn
};

class DnsForwarder {
 public:
  using Lookup = std::function<std::optional<DnsClient>(uint32_t address)>;
  using Learn = std::function<void(const std::string& key, const std::vector<uint32_t>& addresses, uint32_t ttl)>;

  static Result<std::unique_ptr<DnsForwarder>> start(uv_loop_t* loop, uint32_t address, uint16_t port,
                                                     std::vector<uint32_t> upstreams, Lookup lookup, Learn learn);
  ~DnsForwarder();
  DnsForwarder(const DnsForwarder&) = delete;
  DnsForwarder& operator=(const DnsForwarder&) = delete;

  struct Impl;

 private:
  explicit DnsForwarder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The nameservers of a resolv.conf's text (IPv4 only).
std::vector<uint32_t> resolv_conf_nameservers(std::string_view text);

}  // namespace sbx::daemon
