// nft::Transaction and the table/chain queries: netlink batches of nftables messages (libnftnl builds each message,
// libmnl carries them).
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>

#include "runtime/nft.h"

namespace sbx::rt::nft {

namespace {

struct MnlDeleter {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlDeleter>;

template <typename T, void (*Free)(const T*)>
struct ObjDeleter {
  void operator()(T* p) const { Free(p); }
};
using Table = std::unique_ptr<nftnl_table, ObjDeleter<nftnl_table, nftnl_table_free>>;
using Chain = std::unique_ptr<nftnl_chain, ObjDeleter<nftnl_chain, nftnl_chain_free>>;
using NftRule = std::unique_ptr<nftnl_rule, ObjDeleter<nftnl_rule, nftnl_rule_free>>;
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
using Set = std::unique_ptr<nftnl_set, SetDeleter>;

constexpr size_t kMessageBuffer = 1 << 16;  // one message; ours are far smaller
constexpr int kAckTimeoutMs = 5000;

Result<MnlSocket> open_netfilter() {
  MnlSocket sock(mnl_socket_open(NETLINK_NETFILTER));
  if (!sock) {
    return sys_error("open a NETLINK_NETFILTER socket");
  }
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return sys_error("bind a NETLINK_NETFILTER socket");
  }
  return sock;
}

Set named_set(const std::string& table, const std::string& name) {
  Set s(nftnl_set_alloc());
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name.c_str());
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  return s;
}

void add_elements_to(nftnl_set* s, const std::vector<Element>& elements) {
  for (const Element& el : elements) {
    nftnl_set_elem* e = nftnl_set_elem_alloc();
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, el.key.data(), static_cast<uint32_t>(el.key.size()));
    if (!el.data.empty()) {
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, el.data.data(), static_cast<uint32_t>(el.data.size()));
    }
    if (!el.jump.empty()) {
      nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(NFT_JUMP));
      nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, el.jump.c_str());
    }
    if (el.timeout_ms > 0) {
      nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, el.timeout_ms);
    }
    nftnl_set_elem_add(s, e);
  }
}

const char* message_name(uint16_t type) {
  switch (type) {
    case NFT_MSG_NEWTABLE: return "add table";
    case NFT_MSG_DELTABLE: return "delete table";
    case NFT_MSG_NEWCHAIN: return "add chain";
    case NFT_MSG_DELCHAIN: return "delete chain";
    case NFT_MSG_NEWRULE: return "add rule to chain";
    case NFT_MSG_DELRULE: return "flush chain";
    case NFT_MSG_NEWSET: return "add set";
    case NFT_MSG_DELSET: return "delete set";
    case NFT_MSG_NEWSETELEM: return "add elements to set";
    case NFT_MSG_DELSETELEM: return "delete elements from set";
    default: return "nftables request";
  }
}

// Waits for one reply of a request sent on `sock`; returns its errno (0: acknowledged). A dump's data is skipped.
Result<std::vector<std::pair<uint32_t, int>>> read_acks(mnl_socket* sock) {
  struct pollfd p = {mnl_socket_get_fd(sock), POLLIN, 0};
  int n = ::poll(&p, 1, kAckTimeoutMs);
  if (n <= 0) {
    return Error("wait for the kernel's answer to an nftables transaction", n == 0 ? ETIMEDOUT : errno);
  }
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE * 4);
  ssize_t len = mnl_socket_recvfrom(sock, buf.data(), buf.size());
  if (len < 0) {
    return sys_error("read the kernel's answer to an nftables transaction");
  }
  std::vector<std::pair<uint32_t, int>> acks;
  int remaining = static_cast<int>(len);
  for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, remaining);
       nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (nlh->nlmsg_type == NLMSG_ERROR) {
      auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      acks.emplace_back(nlh->nlmsg_seq, -err->error);
    }
  }
  return acks;
}

}  // namespace

Transaction::Transaction(std::string table) : table_(std::move(table)) {
  seq_ = static_cast<uint32_t>(::time(nullptr));
  first_seq_ = seq_;
}

Transaction::~Transaction() = default;

void Transaction::append(const std::function<void(char* buf, uint32_t seq)>& build) {
  if (scratch_.empty()) {
    scratch_.resize(kMessageBuffer);
  }
  build(scratch_.data(), seq_++);
  auto* nlh = reinterpret_cast<nlmsghdr*>(scratch_.data());
  batch_.append(scratch_.data(), NLMSG_ALIGN(nlh->nlmsg_len));
  kinds_.push_back(nlh->nlmsg_type);
  ++messages_;
}

void Transaction::add_table() {
  append([&](char* buf, uint32_t seq) {
    Table t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table_.c_str());
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(buf, NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_table_nlmsg_build_payload(nlh, t.get());
  });
}

void Transaction::delete_table() {
  append([&](char* buf, uint32_t seq) {
    Table t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table_.c_str());
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(buf, NFT_MSG_DELTABLE, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_table_nlmsg_build_payload(nlh, t.get());
  });
}

void Transaction::add_chain(const std::string& name, std::optional<Hook> hook) {
  append([&](char* buf, uint32_t seq) {
    Chain c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
    if (hook) {
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook->hook);
      nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, hook->priority);
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, hook->type == Hook::Type::kNat ? "nat" : "filter");
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(buf, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_chain_nlmsg_build_payload(nlh, c.get());
  });
}

void Transaction::flush_chain(const std::string& name) {
  append([&](char* buf, uint32_t seq) {
    NftRule r(nftnl_rule_alloc());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, name.c_str());
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_DELRULE, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
  });
}

void Transaction::delete_chain(const std::string& name) {
  append([&](char* buf, uint32_t seq) {
    Chain c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table_.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
    nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(buf, NFT_MSG_DELCHAIN, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_chain_nlmsg_build_payload(nlh, c.get());
  });
}

void Transaction::add_set(const SetSpec& spec) {
  append([&](char* buf, uint32_t seq) {
    Set s = named_set(table_, spec.name);
    uint32_t flags = (spec.timeout ? NFT_SET_TIMEOUT : 0) | (spec.data_len || spec.verdict_map ? NFT_SET_MAP : 0);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, flags);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.key_type);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.key_len);
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, seq);
    if (spec.verdict_map) {
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
    } else if (spec.data_len) {
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, spec.key_type);
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, *spec.data_len);
    }
    nlmsghdr* nlh = nftnl_set_nlmsg_build_hdr(buf, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_set_nlmsg_build_payload(nlh, s.get());
  });
}

void Transaction::delete_set(const std::string& name) {
  append([&](char* buf, uint32_t seq) {
    Set s = named_set(table_, name);
    nlmsghdr* nlh = nftnl_set_nlmsg_build_hdr(buf, NFT_MSG_DELSET, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_set_nlmsg_build_payload(nlh, s.get());
  });
}

void Transaction::add_elements(const std::string& set, const std::vector<Element>& elements) {
  append([&](char* buf, uint32_t seq) {
    Set s = named_set(table_, set);
    add_elements_to(s.get(), elements);
    nlmsghdr* nlh =
        nftnl_set_elem_nlmsg_build_hdr(buf, NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
  });
}

void Transaction::delete_elements(const std::string& set, const std::vector<Element>& elements) {
  append([&](char* buf, uint32_t seq) {
    Set s = named_set(table_, set);
    add_elements_to(s.get(), elements);
    nlmsghdr* nlh = nftnl_set_elem_nlmsg_build_hdr(buf, NFT_MSG_DELSETELEM, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
  });
}

void Transaction::add_rule(const Rule& rule) {
  append([&](char* buf, uint32_t seq) {
    NftRule r(nftnl_rule_alloc());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table_.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, rule.chain().c_str());
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    rule.build(r.get());
    nlmsghdr* nlh =
        nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, seq);
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
  });
}

Result<void> Transaction::commit() {
  if (messages_ == 0) {
    return ok();
  }
  std::string framed;
  {
    std::vector<char> buf(kMessageBuffer);
    nlmsghdr* begin = nftnl_batch_begin(buf.data(), first_seq_ - 1);
    framed.append(buf.data(), NLMSG_ALIGN(begin->nlmsg_len));
    framed += batch_;
    nlmsghdr* end = nftnl_batch_end(buf.data(), seq_);
    framed.append(buf.data(), NLMSG_ALIGN(end->nlmsg_len));
  }
  SBX_ASSIGN_CTX(MnlSocket sock, open_netfilter(), "nftables table '{}'", table_);
  int size = static_cast<int>(framed.size() + 4096);
  (void)::setsockopt(mnl_socket_get_fd(sock.get()), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size);
  if (mnl_socket_sendto(sock.get(), framed.data(), framed.size()) < 0) {
    return sys_error("send an nftables transaction of {} messages on table '{}'", messages_, table_);
  }
  size_t answered = 0;
  while (answered < messages_) {
    SBX_ASSIGN_CTX(auto acks, read_acks(sock.get()), "nftables table '{}'", table_);
    for (const auto& [seq, err] : acks) {
      ++answered;
      if (err != 0) {
        size_t i = seq - first_seq_;
        const char* what = i < kinds_.size() ? message_name(kinds_[i]) : "nftables request";
        return Error(fmt::format("nftables table '{}': {} (message {} of {}): {}", table_, what, i + 1, messages_,
                                 std::strerror(err)),
                     err);
      }
    }
  }
  return ok();
}

namespace {

// Sends one GET request and returns whether the object exists (ENOENT: no).
Result<bool> object_exists(uint16_t type, const std::function<void(nlmsghdr*)>& payload, const std::string& what) {
  SBX_ASSIGN_CTX(MnlSocket sock, open_netfilter(), "look up {}", what);
  std::vector<char> buf(kMessageBuffer);
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, NFPROTO_INET, NLM_F_ACK, 1);
  payload(nlh);
  if (mnl_socket_sendto(sock.get(), nlh, nlh->nlmsg_len) < 0) {
    return sys_error("look up {}", what);
  }
  for (;;) {
    SBX_ASSIGN_CTX(auto acks, read_acks(sock.get()), "look up {}", what);
    for (const auto& [seq, err] : acks) {
      if (err == ENOENT) {
        return false;
      }
      if (err != 0) {
        return Error(fmt::format("look up {}: {}", what, std::strerror(err)), err);
      }
      return true;
    }
  }
}

}  // namespace

Result<bool> table_exists(const std::string& table) {
  return object_exists(NFT_MSG_GETTABLE, [&](nlmsghdr* nlh) {
    Table t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nftnl_table_nlmsg_build_payload(nlh, t.get());
  }, fmt::format("nftables table 'inet {}'", table));
}

Result<bool> chain_exists(const std::string& table, const std::string& chain) {
  return object_exists(NFT_MSG_GETCHAIN, [&](nlmsghdr* nlh) {
    Chain c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.c_str());
    nftnl_chain_nlmsg_build_payload(nlh, c.get());
  }, fmt::format("nftables chain '{}' of table 'inet {}'", chain, table));
}

}  // namespace sbx::rt::nft
