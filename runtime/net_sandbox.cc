#include "runtime/net_sandbox.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sbx::rt {

namespace {

// One netlink socket and the request being built; each request is sent and its acknowledgement awaited.
class RouteRequests {
 public:
  RouteRequests() : sock_(mnl_socket_open(NETLINK_ROUTE)) {}
  ~RouteRequests() {
    if (sock_ != nullptr) {
      mnl_socket_close(sock_);
    }
  }
  RouteRequests(const RouteRequests&) = delete;
  RouteRequests& operator=(const RouteRequests&) = delete;

  int open_error() const { return sock_ == nullptr ? errno : 0; }

  nlmsghdr* begin(uint16_t type, uint16_t flags) {
    hdr_ = mnl_nlmsg_put_header(buf_);
    hdr_->nlmsg_type = type;
    hdr_->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    hdr_->nlmsg_seq = ++seq_;
    return hdr_;
  }

  // Sends the request and returns the errno of its acknowledgement (0 on success).
  int commit() {
    if (mnl_socket_sendto(sock_, hdr_, hdr_->nlmsg_len) < 0) {
      return errno;
    }
    char reply[MNL_SOCKET_BUFFER_SIZE];
    ssize_t n = mnl_socket_recvfrom(sock_, reply, sizeof reply);
    if (n < 0) {
      return errno;
    }
    if (mnl_cb_run(reply, static_cast<size_t>(n), seq_, mnl_socket_get_portid(sock_), nullptr, nullptr) < 0) {
      return errno;
    }
    return 0;
  }

  int bind() { return mnl_socket_bind(sock_, 0, MNL_SOCKET_AUTOPID) < 0 ? errno : 0; }

 private:
  mnl_socket* sock_;
  nlmsghdr* hdr_ = nullptr;
  uint32_t seq_ = 0;
  alignas(nlmsghdr) char buf_[512];
};

int link_up(RouteRequests& rq, unsigned index) {
  nlmsghdr* nlh = rq.begin(RTM_NEWLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(index);
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  return rq.commit();
}

// No IPv6 address generation on the link (IN6_ADDR_GEN_MODE_NONE), asked before it goes up: no link-local
// address, so no duplicate address detection or router solicitation. /proc/sys is read-only by then, so this is
// netlink's way, not disable_ipv6. A kernel without IPv6 has nothing to turn off.
int no_ipv6_addresses(RouteRequests& rq, unsigned index) {
  nlmsghdr* nlh = rq.begin(RTM_NEWLINK, 0);
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(index);
  nlattr* spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
  nlattr* inet6 = mnl_attr_nest_start(nlh, AF_INET6);
  mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
  mnl_attr_nest_end(nlh, inet6);
  mnl_attr_nest_end(nlh, spec);
  int err = rq.commit();
  return err == EAFNOSUPPORT || err == EOPNOTSUPP ? 0 : err;
}

int add_address(RouteRequests& rq, unsigned index, const Ipv4Net& address) {
  nlmsghdr* nlh = rq.begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = address.prefix;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = index;
  uint32_t be = htonl(address.address);
  mnl_attr_put_u32(nlh, IFA_LOCAL, be);
  mnl_attr_put_u32(nlh, IFA_ADDRESS, be);
  return rq.commit();
}

int add_default_route(RouteRequests& rq, unsigned index, uint32_t gateway) {
  nlmsghdr* nlh = rq.begin(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(gateway));
  mnl_attr_put_u32(nlh, RTA_OIF, index);
  return rq.commit();
}

}  // namespace

int disable_ipv6(const char* ifname) noexcept {
  char path[96];
  int n = std::snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
  if (n < 0 || static_cast<size_t>(n) >= sizeof path) {
    return ENAMETOOLONG;
  }
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT && ::access("/proc/sys/net/ipv6", F_OK) != 0 ? 0 : errno;
  }
  int err = ::write(fd, "1", 1) == 1 ? 0 : errno;
  ::close(fd);
  return err;
}

int configure_sandbox_eth0(const NetworkPlan& net) noexcept {
  unsigned index = if_nametoindex("eth0");
  if (index == 0) {
    return errno;
  }
  RouteRequests rq;
  if (int err = rq.open_error()) {
    return err;
  }
  if (int err = rq.bind()) {
    return err;
  }
  if (int err = no_ipv6_addresses(rq, index)) {
    return err;
  }
  if (int err = link_up(rq, index)) {
    return err;
  }
  if (int err = add_address(rq, index, net.address)) {
    return err;
  }
  return add_default_route(rq, index, net.gateway);
}

}  // namespace sbx::rt
