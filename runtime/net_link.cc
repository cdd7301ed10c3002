#include "runtime/net_link.h"

#include <arpa/inet.h>
#include <linux/if_bridge.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

#include <cerrno>
#include <memory>

#include "runtime/net_sandbox.h"

namespace sbx::rt {

namespace {

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct VethDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_veth_release(l); }
};
struct AddrDeleter {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct NlAddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct CacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
struct MsgDeleter {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using Sock = std::unique_ptr<nl_sock, SockDeleter>;
using Link = std::unique_ptr<rtnl_link, LinkDeleter>;

// libnl reports its own codes; the common ones map back to the errno the kernel sent.
int nl_errno(int nlerr) {
  switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST: return EEXIST;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: return ENODEV;
    case NLE_PERM:
    case NLE_NOACCESS: return EPERM;
    case NLE_BUSY: return EBUSY;
    case NLE_NOMEM: return ENOMEM;
    case NLE_RANGE: return ERANGE;
    case NLE_OPNOTSUPP: return EOPNOTSUPP;
    default: return EINVAL;
  }
}

template <typename... Args>
Error nl_error(int nlerr, fmt::format_string<Args...> f, Args&&... args) {
  return Error(fmt::format("{}: {}", fmt::format(f, std::forward<Args>(args)...), nl_geterror(nlerr)),
               nl_errno(nlerr));
}

Result<Sock> connect_route() {
  Sock sk(nl_socket_alloc());
  if (!sk) {
    return Error("allocate a netlink socket", ENOMEM);
  }
  if (int err = nl_connect(sk.get(), NETLINK_ROUTE); err < 0) {
    return nl_error(err, "connect a NETLINK_ROUTE socket");
  }
  return sk;
}

// The link named `name`, or ENODEV.
Result<Link> get_link(nl_sock* sk, const std::string& name) {
  rtnl_link* link = nullptr;
  if (int err = rtnl_link_get_kernel(sk, 0, name.c_str(), &link); err < 0) {
    return nl_error(err, "look up link '{}'", name);
  }
  return Link(link);
}

// Marks a new bridge port isolated (IFLA_BRPORT_ISOLATED, Linux 4.18: isolated ports reach only the bridge, not one
// another) and brings it up, in one RTM_NEWLINK: the kernel applies the port's bridge attributes before the flags,
// so the port forwards nothing before it is isolated. libnl has no call for the attribute, so the request is built
// by hand, as `ip link set dev X up type bridge_slave isolated on` does.
Result<void> isolate_and_bring_up(nl_sock* sk, const std::string& port) {
  unsigned index = if_nametoindex(port.c_str());
  if (index == 0) {
    return sys_error("look up link '{}'", port);
  }
  std::unique_ptr<nl_msg, MsgDeleter> msg(nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK));
  struct ifinfomsg ifi {};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = static_cast<int>(index);
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  nlattr* linkinfo = nullptr;
  nlattr* port_data = nullptr;
  if (!msg || nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO) < 0 ||
      (linkinfo = nla_nest_start(msg.get(), IFLA_LINKINFO)) == nullptr ||
      nla_put_string(msg.get(), IFLA_INFO_SLAVE_KIND, "bridge") < 0 ||
      (port_data = nla_nest_start(msg.get(), IFLA_INFO_SLAVE_DATA)) == nullptr ||
      nla_put_u8(msg.get(), IFLA_BRPORT_ISOLATED, 1) < 0) {
    return Error(fmt::format("build the request to isolate bridge port '{}'", port), ENOMEM);
  }
  nla_nest_end(msg.get(), port_data);
  nla_nest_end(msg.get(), linkinfo);
  if (int err = nl_send_auto(sk, msg.get()); err < 0) {
    return nl_error(err, "isolate bridge port '{}' and bring it up", port);
  }
  if (int err = nl_wait_for_ack(sk); err < 0) {
    return nl_error(err, "isolate bridge port '{}' and bring it up", port);
  }
  return ok();
}

Result<void> add_bridge_address(nl_sock* sk, int ifindex, const std::string& bridge, const Ipv4Net& address) {
  uint32_t be = htonl(address.address);
  std::unique_ptr<nl_addr, NlAddrDeleter> local(nl_addr_build(AF_INET, &be, sizeof be));
  std::unique_ptr<rtnl_addr, AddrDeleter> addr(rtnl_addr_alloc());
  if (!local || !addr) {
    return Error("allocate an address", ENOMEM);
  }
  nl_addr_set_prefixlen(local.get(), address.prefix);
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  rtnl_addr_set_local(addr.get(), local.get());
  int err = rtnl_addr_add(sk, addr.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0 && nl_errno(err) != EEXIST) {
    return nl_error(err, "add address {} to bridge '{}'", format_ipv4_net(address), bridge);
  }
  return ok();
}

Result<Link> make_bridge(nl_sock* sk, const std::string& name, uint32_t mtu) {
  Link bridge(rtnl_link_alloc());
  if (!bridge) {
    return Error("allocate a link", ENOMEM);
  }
  rtnl_link_set_name(bridge.get(), name.c_str());
  if (int err = rtnl_link_set_type(bridge.get(), "bridge"); err < 0) {
    return nl_error(err, "make '{}' a bridge", name);
  }
  rtnl_link_set_mtu(bridge.get(), mtu);
  int err = rtnl_link_add(sk, bridge.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0 && nl_errno(err) != EEXIST) {  // EEXIST: another daemon start raced us to it
    return nl_error(err, "create bridge '{}'", name);
  }
  return get_link(sk, name);
}

Result<void> bring_up(nl_sock* sk, rtnl_link* link, const std::string& name) {
  Link change(rtnl_link_alloc());
  if (!change) {
    return Error("allocate a link", ENOMEM);
  }
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(sk, link, change.get(), 0); err < 0) {
    return nl_error(err, "bring up '{}'", name);
  }
  return ok();
}

}  // namespace

Result<void> create_sandbox_veth(const NetworkPlan& net, pid_t pid) {
  SBX_ASSIGN(Sock sk, connect_route());
  unsigned bridge_index = if_nametoindex(net.bridge.c_str());
  if (bridge_index == 0) {
    return sys_error("look up bridge '{}'", net.bridge);
  }
  std::unique_ptr<rtnl_link, VethDeleter> veth(rtnl_link_veth_alloc());
  if (!veth) {
    return Error("allocate a veth", ENOMEM);
  }
  rtnl_link_set_name(veth.get(), net.host_ifname.c_str());
  rtnl_link_set_mtu(veth.get(), net.mtu);
  rtnl_link_set_master(veth.get(), static_cast<int>(bridge_index));
  Link peer(rtnl_link_veth_get_peer(veth.get()));
  rtnl_link_set_name(peer.get(), "eth0");
  rtnl_link_set_mtu(peer.get(), net.mtu);
  rtnl_link_set_ns_pid(peer.get(), pid);
  int err = rtnl_link_add(sk.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0 && nl_errno(err) == EEXIST) {
    // The name is unique among live sandboxes: a link that has it is the veth of this address's previous run, which
    // the kernel has not yet removed with that run's namespace (a restart right after the stop).
    SBX_TRY(delete_link(net.host_ifname));
    err = rtnl_link_add(sk.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  }
  if (err < 0) {
    return nl_error(err, "create veth '{}' (peer eth0 in the namespace of pid {}) on bridge '{}'", net.host_ifname,
                    pid, net.bridge);
  }
  if (int err = disable_ipv6(net.host_ifname.c_str())) {
    return Error(fmt::format("turn IPv6 off on '{}'", net.host_ifname), err);
  }
  // Created down: a down port forwards nothing until it is isolated.
  return isolate_and_bring_up(sk.get(), net.host_ifname);
}

Result<void> delete_link(const std::string& name) {
  SBX_ASSIGN(Sock sk, connect_route());
  Link link(rtnl_link_alloc());
  if (!link) {
    return Error("allocate a link", ENOMEM);
  }
  rtnl_link_set_name(link.get(), name.c_str());
  int err = rtnl_link_delete(sk.get(), link.get());
  if (err < 0 && nl_errno(err) != ENODEV) {
    return nl_error(err, "delete link '{}'", name);
  }
  return ok();
}

Result<LinkCounters> link_counters(const std::string& name) {
  SBX_ASSIGN(Sock sk, connect_route());
  SBX_ASSIGN(Link link, get_link(sk.get(), name));
  LinkCounters c;
  c.rx_bytes = rtnl_link_get_stat(link.get(), RTNL_LINK_RX_BYTES);
  c.rx_packets = rtnl_link_get_stat(link.get(), RTNL_LINK_RX_PACKETS);
  c.tx_bytes = rtnl_link_get_stat(link.get(), RTNL_LINK_TX_BYTES);
  c.tx_packets = rtnl_link_get_stat(link.get(), RTNL_LINK_TX_PACKETS);
  return c;
}

Result<void> ensure_bridge(const std::string& name, const Ipv4Net& address, uint32_t mtu) {
  SBX_ASSIGN(Sock sk, connect_route());
  auto existing = get_link(sk.get(), name);
  if (!existing.ok() && existing.error().sys_errno() != ENODEV) {
    return existing.error();
  }
  Link bridge;
  if (existing.ok()) {
    const char* kind = rtnl_link_get_type(existing->get());
    if (kind == nullptr || std::string_view(kind) != "bridge") {
      return Error(fmt::format("link '{}' exists and is not a bridge ({})", name, kind ? kind : "no kind"), EEXIST);
    }
    bridge = std::move(*existing);
  } else {
    SBX_ASSIGN(bridge, make_bridge(sk.get(), name, mtu));
  }
  if (int err = disable_ipv6(name.c_str())) {
    return Error(fmt::format("turn IPv6 off on bridge '{}'", name), err);
  }
  SBX_TRY(add_bridge_address(sk.get(), rtnl_link_get_ifindex(bridge.get()), name, address));
  return bring_up(sk.get(), bridge.get(), name);
}

Result<std::vector<LinkInfo>> list_links() {
  SBX_ASSIGN(Sock sk, connect_route());
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sk.get(), AF_UNSPEC, &raw); err < 0) {
    return nl_error(err, "list links");
  }
  std::unique_ptr<nl_cache, CacheDeleter> cache(raw);
  std::vector<LinkInfo> links;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* link = reinterpret_cast<rtnl_link*>(o);
    LinkInfo info;
    info.name = rtnl_link_get_name(link);
    const char* kind = rtnl_link_get_type(link);
    info.kind = kind ? kind : "";
    if (int master = rtnl_link_get_master(link); master > 0) {
      char name[IF_NAMESIZE] = {};
      if (rtnl_link_i2name(cache.get(), master, name, sizeof name) != nullptr) {
        info.master = name;
      }
    }
    links.push_back(std::move(info));
  }
  return links;
}

}  // namespace sbx::rt
