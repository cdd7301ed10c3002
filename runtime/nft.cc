#include "runtime/nft.h"

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>


namespace sbx::rt::nft {

namespace {

constexpr uint32_t kReg = NFT_REG_1;             // a 16-byte register: names, single values
constexpr uint32_t kRegAddr = NFT_REG32_00;      // concatenations: address, then port
constexpr uint32_t kRegPort = NFT_REG32_01;
constexpr uint32_t kIpSaddrOffset = 12;
constexpr uint32_t kIpDaddrOffset = 16;
constexpr uint32_t kDportOffset = 2;             // in both the TCP and the UDP header

void add(nftnl_rule* r, nftnl_expr* e) { nftnl_rule_add_expr(r, e); }

nftnl_expr* meta(uint32_t key, uint32_t dreg) {
  nftnl_expr* e = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
  return e;
}

nftnl_expr* cmp(uint32_t sreg, uint32_t op, const void* data, uint32_t len) {
  nftnl_expr* e = nftnl_expr_alloc("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  return e;
}

nftnl_expr* payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
  nftnl_expr* e = nftnl_expr_alloc("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  return e;
}

nftnl_expr* bitwise_and(uint32_t reg, const void* mask, uint32_t len) {
  static const uint8_t kZero[16] = {};
  nftnl_expr* e = nftnl_expr_alloc("bitwise");
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, reg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, reg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, kZero, len);
  return e;
}

nftnl_expr* lookup(const std::string& set, uint32_t sreg, std::optional<uint32_t> dreg) {
  nftnl_expr* e = nftnl_expr_alloc("lookup");
  nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
  if (dreg) {
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, *dreg);
  }
  return e;
}

nftnl_expr* verdict(int code) {
  nftnl_expr* e = nftnl_expr_alloc("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(code));
  return e;
}

// Any of `mask`'s bits set in the 4-byte conntrack value `key`.
void ct_bits(nftnl_rule* r, uint32_t key, uint32_t mask) {
  nftnl_expr* e = nftnl_expr_alloc("ct");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, kReg);
  add(r, e);
  add(r, bitwise_and(kReg, &mask, sizeof mask));  // conntrack values are host-order words
  uint32_t zero = 0;
  add(r, cmp(kReg, NFT_CMP_NEQ, &zero, sizeof zero));
}

void ifname(nftnl_rule* r, uint32_t key, const std::string& name, bool equal) {
  add(r, meta(key, kReg));
  add(r, cmp(kReg, equal ? NFT_CMP_EQ : NFT_CMP_NEQ, name.c_str(), static_cast<uint32_t>(name.size() + 1)));
}

void address(nftnl_rule* r, uint32_t offset, const Ipv4Net& net, bool in) {
  add(r, payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 4, kReg));
  if (net.prefix < 32) {
    uint32_t mask = htonl(net.mask());
    add(r, bitwise_and(kReg, &mask, 4));
  }
  uint32_t value = htonl(net.first());
  add(r, cmp(kReg, in ? NFT_CMP_EQ : NFT_CMP_NEQ, &value, 4));
}

}  // namespace

// ---- rules ----

Rule& Rule::ipv4() {
  steps_.push_back([](nftnl_rule* r) {
    add(r, meta(NFT_META_NFPROTO, kReg));
    uint8_t v4 = NFPROTO_IPV4;
    add(r, cmp(kReg, NFT_CMP_EQ, &v4, 1));
  });
  return *this;
}

Rule& Rule::iifname(std::string_view name, bool equal) {
  steps_.push_back([n = std::string(name), equal](nftnl_rule* r) { ifname(r, NFT_META_IIFNAME, n, equal); });
  return *this;
}

Rule& Rule::oifname(std::string_view name, bool equal) {
  steps_.push_back([n = std::string(name), equal](nftnl_rule* r) { ifname(r, NFT_META_OIFNAME, n, equal); });
  return *this;
}

Rule& Rule::saddr(const Ipv4Net& net, bool in) {
  steps_.push_back([net, in](nftnl_rule* r) { address(r, kIpSaddrOffset, net, in); });
  return *this;
}

Rule& Rule::daddr(const Ipv4Net& net, bool in) {
  steps_.push_back([net, in](nftnl_rule* r) { address(r, kIpDaddrOffset, net, in); });
  return *this;
}

Rule& Rule::daddr_in_set(const std::string& set) {
  steps_.push_back([set](nftnl_rule* r) {
    add(r, payload(NFT_PAYLOAD_NETWORK_HEADER, kIpDaddrOffset, 4, kReg));
    add(r, lookup(set, kReg, std::nullopt));
  });
  return *this;
}

Rule& Rule::l4proto(uint8_t proto) {
  steps_.push_back([proto](nftnl_rule* r) {
    add(r, meta(NFT_META_L4PROTO, kReg));
    add(r, cmp(kReg, NFT_CMP_EQ, &proto, 1));
  });
  return *this;
}

Rule& Rule::dport(uint16_t port) {
  steps_.push_back([port](nftnl_rule* r) {
    add(r, payload(NFT_PAYLOAD_TRANSPORT_HEADER, kDportOffset, 2, kReg));
    uint16_t be = htons(port);
    add(r, cmp(kReg, NFT_CMP_EQ, &be, 2));
  });
  return *this;
}

Rule& Rule::dport_in_set(const std::string& set) {
  steps_.push_back([set](nftnl_rule* r) {
    add(r, payload(NFT_PAYLOAD_TRANSPORT_HEADER, kDportOffset, 2, kReg));
    add(r, lookup(set, kReg, std::nullopt));
  });
  return *this;
}

Rule& Rule::ct_state(uint32_t mask) {
  steps_.push_back([mask](nftnl_rule* r) { ct_bits(r, NFT_CT_STATE, mask); });
  return *this;
}

Rule& Rule::ct_status(uint32_t mask) {
  steps_.push_back([mask](nftnl_rule* r) { ct_bits(r, NFT_CT_STATUS, mask); });
  return *this;
}

Rule& Rule::limit_over(uint64_t bytes_per_second) {
  steps_.push_back([bytes_per_second](nftnl_rule* r) {
    nftnl_expr* e = nftnl_expr_alloc("limit");
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, bytes_per_second);
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);  // per second
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, 0);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKT_BYTES);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, NFT_LIMIT_F_INV);
    add(r, e);
  });
  return *this;
}

Rule& Rule::counter() {
  steps_.push_back([](nftnl_rule* r) { add(r, nftnl_expr_alloc("counter")); });
  return *this;
}

Rule& Rule::accept() {
  steps_.push_back([](nftnl_rule* r) { add(r, verdict(NF_ACCEPT)); });
  return *this;
}

Rule& Rule::drop() {
  steps_.push_back([](nftnl_rule* r) { add(r, verdict(NF_DROP)); });
  return *this;
}

Rule& Rule::jump(const std::string& chain) {
  steps_.push_back([chain](nftnl_rule* r) {
    nftnl_expr* e = verdict(NFT_JUMP);
    nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
    add(r, e);
  });
  return *this;
}

Rule& Rule::saddr_vmap(const std::string& map) {
  steps_.push_back([map](nftnl_rule* r) {
    add(r, payload(NFT_PAYLOAD_NETWORK_HEADER, kIpSaddrOffset, 4, kReg));
    add(r, lookup(map, kReg, NFT_REG_VERDICT));
  });
  return *this;
}

Rule& Rule::daddr_vmap(const std::string& map) {
  steps_.push_back([map](nftnl_rule* r) {
    add(r, payload(NFT_PAYLOAD_NETWORK_HEADER, kIpDaddrOffset, 4, kReg));
    add(r, lookup(map, kReg, NFT_REG_VERDICT));
  });
  return *this;
}

Rule& Rule::dnat_by_map(const std::string& map, uint8_t proto) {
  l4proto(proto);
  steps_.push_back([map](nftnl_rule* r) {
    add(r, payload(NFT_PAYLOAD_NETWORK_HEADER, kIpDaddrOffset, 4, kRegAddr));
    add(r, payload(NFT_PAYLOAD_TRANSPORT_HEADER, kDportOffset, 2, kRegPort));
    add(r, lookup(map, kRegAddr, kRegAddr));
    nftnl_expr* e = nftnl_expr_alloc("nat");
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, kRegAddr);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, kRegPort);
    add(r, e);
  });
  return *this;
}

Rule& Rule::masquerade() {
  steps_.push_back([](nftnl_rule* r) { add(r, nftnl_expr_alloc("masq")); });
  return *this;
}

void Rule::build(nftnl_rule* r) const {
  for (const auto& step : steps_) {
    step(r);
  }
}

// ---- keys ----

std::string ipv4_key(uint32_t address) {
  uint32_t be = htonl(address);
  return std::string(reinterpret_cast<const char*>(&be), 4);
}

std::string port_key(uint16_t port) {
  uint16_t be = htons(port);
  return std::string(reinterpret_cast<const char*>(&be), 2);
}

std::string concat_key(uint32_t address, uint16_t port) {
  return ipv4_key(address) + port_key(port) + std::string(2, '\0');
}

}  // namespace sbx::rt::nft
