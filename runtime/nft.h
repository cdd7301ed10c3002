#pragma once
// nftables over netlink (libnftnl + libmnl): rules, chains, sets and maps of one `inet` table, sent as one atomic
// transaction. Rules are built as data here and turned into netlink expressions only in nft.cc, the one file that
// includes libnftnl. IPv4 only, which is all sandboxes have.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/ipv4.h"

struct nftnl_rule;

namespace sbx::rt::nft {

// conntrack bits for Rule::ct_state and Rule::ct_status.
constexpr uint32_t kCtEstablished = 1u << 1;
constexpr uint32_t kCtRelated = 1u << 2;
constexpr uint32_t kCtStatusDstNat = 1u << 5;  // IPS_DST_NAT

// A rule: its matches in order, then its statement. Each call appends one step.
class Rule {
 public:
  explicit Rule(std::string chain) : chain_(std::move(chain)) {}
  const std::string& chain() const { return chain_; }

  Rule& ipv4();  // meta nfproto ipv4: every rule that reads the IP header starts with it
  Rule& iifname(std::string_view name, bool equal = true);
  Rule& oifname(std::string_view name, bool equal = true);
  Rule& saddr(const Ipv4Net& net, bool in = true);
  Rule& daddr(const Ipv4Net& net, bool in = true);
  Rule& daddr_in_set(const std::string& set);
  Rule& l4proto(uint8_t proto);            // IPPROTO_TCP, IPPROTO_UDP
  Rule& dport(uint16_t port);              // after l4proto (tcp and udp keep it at the same offset)
  Rule& dport_in_set(const std::string& set);
  Rule& ct_state(uint32_t mask);           // any of the bits
  Rule& ct_status(uint32_t mask);
  Rule& limit_over(uint64_t bytes_per_second);  // matches the traffic beyond the rate
  Rule& counter();
  // Statements.
  Rule& accept();
  Rule& drop();
  Rule& jump(const std::string& chain);  // a chain that ends without a verdict returns here
  Rule& saddr_vmap(const std::string& map);  // ip saddr vmap @map
  Rule& daddr_vmap(const std::string& map);
  Rule& dnat_by_map(const std::string& map, uint8_t proto);  // dnat ip to ip daddr . th dport map @map
  Rule& masquerade();

  void build(nftnl_rule* r) const;

 private:
  std::string chain_;
  std::vector<std::function<void(nftnl_rule*)>> steps_;
};

struct Hook {
  enum class Type { kFilter, kNat };
  Type type;
  uint32_t hook;  // NF_INET_FORWARD, ...
  int32_t priority;
};

struct SetSpec {
  std::string name;
  uint32_t key_type;  // nft's datatype number (for `nft list`); 7: ipv4_addr, 13: inet_service, concat: a<<6|b
  uint32_t key_len;   // bytes; each part of a concatenation takes a multiple of 4
  bool timeout = false;            // elements expire
  std::optional<uint32_t> data_len;  // a map to data of this many bytes (data type = key_type)
  bool verdict_map = false;          // a map to verdicts
};

struct Element {
  std::string key;   // bytes, network order
  std::string data;  // bytes, for a data map
  std::string jump;  // chain, for a verdict map
  uint64_t timeout_ms = 0;
};

// Byte encodings of keys.
std::string ipv4_key(uint32_t address);
std::string port_key(uint16_t port);  // 2 bytes, padded to 4 when part of a concatenation: see concat_key
std::string concat_key(uint32_t address, uint16_t port);

// One transaction on table `inet <table>`: everything commits or nothing does.
class Transaction {
 public:
  explicit Transaction(std::string table);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void add_table();
  void delete_table();
  void add_chain(const std::string& name, std::optional<Hook> hook = std::nullopt);
  void flush_chain(const std::string& name);
  void delete_chain(const std::string& name);
  void add_set(const SetSpec& spec);
  void delete_set(const std::string& name);
  void add_elements(const std::string& set, const std::vector<Element>& elements);
  void delete_elements(const std::string& set, const std::vector<Element>& elements);
  void add_rule(const Rule& rule);
  bool empty() const { return messages_ == 0; }

  // Sends the transaction and waits for the kernel's verdict on every message.
  Result<void> commit();

 private:
  void append(const std::function<void(char* buf, uint32_t seq)>& build);
  std::string table_;
  std::string batch_;
  std::vector<char> scratch_;    // where each message is built before it joins the batch
  std::vector<uint16_t> kinds_;  // each message's type, for errors
  uint32_t seq_ = 0;
  uint32_t first_seq_ = 0;
  size_t messages_ = 0;
};

Result<bool> table_exists(const std::string& table);
Result<bool> chain_exists(const std::string& table, const std::string& chain);

}  // namespace sbx::rt::nft
