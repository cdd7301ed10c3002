// Bridge networking at the runtime level: the veth pair, eth0 inside, counters, cleanup, and the nftables table.
// Everything happens in a network namespace of this test process's own (entered once), never on the host's.
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstdio>

#include "base/fd.h"
#include "base/file.h"
#include "runtime/firewall.h"
#include "runtime/namespaces.h"
#include "runtime/net_link.h"
#include "tests/priv/fixture.h"

using namespace sbx;
using namespace sbx::test;

namespace {

constexpr const char* kBridge = "sbxt0";
const Ipv4Net kGateway = *parse_ipv4_net("10.99.0.1/24", false);

// The test process's own network namespace, with the bridge; once per process.
void enter_test_netns() {
  static bool entered = false;
  if (entered) {
    return;
  }
  REQUIRE(::unshare(CLONE_NEWNET) == 0);
  REQUIRE(rt::bring_up_loopback() == 0);
  REQUIRE_OK(rt::ensure_bridge(kBridge, kGateway, 1500));
  entered = true;
}

rt::NetworkPlan network(const std::string& ifname, const char* address) {
  return {ifname, kBridge, *parse_ipv4_net(address, false), kGateway.address, 1500};
}

bool link_exists(const std::string& name) {
  auto links = rt::list_links();
  REQUIRE_OK(links);
  for (const auto& l : *links) {
    if (l.name == name) {
      return true;
    }
  }
  return false;
}

// The kernel removes a sandbox's veth with its network namespace, in the background once its processes are gone.
bool link_goes(const std::string& name) {
  for (int i = 0; i < 250; ++i) {
    if (!link_exists(name)) {
      return true;
    }
    ::usleep(20 * 1000);
  }
  return false;
}

// A one-line TCP server on the bridge's address, in a forked child (sandboxes are entered only from a
// single-threaded process, so no thread): it accepts one connection, reads a line, hands it over a pipe and closes
// the connection, which ends the client.
class LineServer {
 public:
  LineServer() {
    Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(kGateway.address);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    port_ = ntohs(sa.sin_port);
    REQUIRE(::listen(listener.get(), 1) == 0);
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    Fd read_end(p[0]);
    Fd write_end(p[1]);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int conn = ::accept(listener.get(), nullptr, nullptr);
      char c;
      while (conn >= 0 && ::read(conn, &c, 1) == 1 && ::write(write_end.get(), &c, 1) == 1 && c != '\n') {
      }
      ::_exit(0);
    }
    pipe_ = std::move(read_end);
  }
  ~LineServer() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  uint16_t port() const { return port_; }
  std::string received() {
    ::waitpid(pid_, nullptr, 0);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(pipe_.get(), buf, sizeof buf)) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  pid_t pid_ = -1;
  Fd pipe_;
  uint16_t port_ = 0;
};

std::string command_output(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) {
    out.append(buf.data(), n);
  }
  ::pclose(p);
  return out;
}

// A firewall table of the tests' own on the test bridge.
rt::FirewallConfig test_firewall() {
  rt::FirewallConfig config;
  config.table = "sbxtest";
  config.bridge = kBridge;
  config.subnet = {kGateway.first(), kGateway.prefix};
  config.gateway = kGateway.address;
  config.denied = rt::default_denied_networks();
  return config;
}

}  // namespace

TEST_SUITE("network") {

TEST_CASE("a bridge-mode sandbox has eth0 with its address and a default route, and reaches the gateway") {
  enter_test_netns();
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("net"));
  plan.network = network("sbxvtest01", "10.99.0.2/24");
  std::string host_end;
  {
    SandboxGuard g(env.runtime(), plan);
    auto out = exec_capture(env.runtime(), g.id(),
                            shell("ls /sys/class/net; cat /sys/class/net/eth0/mtu; ip -4 addr show dev eth0 | "
                                  "grep -o 'inet [0-9./]*'; ip route | grep default"));
    CHECK(out.status.code == 0);
    CHECK(out.out == "eth0\nlo\n1500\ninet 10.99.0.2/24\ndefault via 10.99.0.1 dev eth0 \n");

    // IPv4 only: no IPv6 address is made on eth0, and IPv6 is off on the host end.
    auto v6 = exec_capture(env.runtime(), g.id(), shell("cat /proc/sys/net/ipv6/conf/eth0/addr_gen_mode; "
                                                        "ip -6 addr show dev eth0 | grep -c inet6"));
    CHECK(v6.out == "1\n0\n");
    // Isolated and up in one request: the port reaches only the bridge, never another sandbox's port.
    std::string port = command_output("bridge -d link show dev sbxvtest01");
    CHECK(port.find("isolated on") != std::string::npos);
    CHECK(port.find("state forwarding") != std::string::npos);
    auto host_v6 = read_file("/proc/sys/net/ipv6/conf/sbxvtest01/disable_ipv6");
    REQUIRE_OK(host_v6);
    CHECK(*host_v6 == "1\n");

    LineServer server;
    auto sent = exec_capture(env.runtime(), g.id(),
                             shell("echo hello from the sandbox | nc 10.99.0.1 " + std::to_string(server.port())));
    CHECK(sent.status.code == 0);
    CHECK(server.received() == "hello from the sandbox\n");

    auto counters = env.runtime().net_counters(g.id());
    REQUIRE_OK(counters);
    REQUIRE(counters->has_value());
    CHECK((*counters)->rx_bytes > 23);  // the sandbox sent at least the line, plus headers
    CHECK((*counters)->rx_packets >= 3);
    CHECK((*counters)->tx_packets >= 2);
    auto links = rt::list_links();
    REQUIRE_OK(links);
    for (const auto& l : *links) {
      if (l.name == "sbxvtest01") {
        host_end = l.name;
        CHECK(l.kind == "veth");
        CHECK(l.master == kBridge);
      }
    }
  }
  CHECK(host_end == "sbxvtest01");
  CHECK(link_goes("sbxvtest01"));
}

TEST_CASE("a sandbox without a network has no counters, and a failed create leaves no veth") {
  enter_test_netns();
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("nonet")));
  auto counters = env.runtime().net_counters(g.id());
  REQUIRE_OK(counters);
  CHECK_FALSE(counters->has_value());

  auto plan = env.plan(env.unique_id("badnet"));
  plan.network = network("sbxvtest02", "10.99.0.3/24");
  plan.network->bridge = "sbxnobridge";  // no such bridge: the create fails after the clone
  auto created = env.runtime().create(plan);
  CHECK_FALSE(created.ok());
  CHECK(created.error().message().find("sbxnobridge") != std::string::npos);
  CHECK(link_goes("sbxvtest02"));
  CHECK_FALSE(path_exists(env.run_root() + "/" + plan.id));
}

TEST_CASE("a bridge-mode create that fails in the child reports the child's error, not the veth's") {
  // The veth is made while the child sets up its root: when the child fails there, its namespace may be gone before
  // the veth is made, and what the caller needs to hear is why the child failed.
  enter_test_netns();
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("badroot"));
  plan.network = network("sbxvtest04", "10.99.0.5/24");
  plan.mounts.push_back({"/no/such/sbx-source", "/mnt/x", true});
  auto created = env.runtime().create(plan);
  REQUIRE_FALSE(created.ok());
  CHECK(created.error().message().find("/no/such/sbx-source") != std::string::npos);
  CHECK(created.error().sys_errno() == ENOENT);
  CHECK(link_goes("sbxvtest04"));
  CHECK_FALSE(path_exists(env.run_root() + "/" + plan.id));
}

TEST_CASE("a link left with the veth's name (a previous run's, still going) is replaced") {
  enter_test_netns();
  auto& env = TestEnv::get();
  REQUIRE(std::system("ip link add sbxvtest03 type veth peer name sbxvstale03") == 0);
  auto plan = env.plan(env.unique_id("renet"));
  plan.network = network("sbxvtest03", "10.99.0.4/24");
  {
    SandboxGuard g(env.runtime(), plan);
    CHECK_FALSE(link_exists("sbxvstale03"));  // the old pair went as a whole
    auto out = exec_capture(env.runtime(), g.id(), shell("cat /sys/class/net/eth0/operstate"));
    CHECK(out.out == "up\n");
  }
  CHECK(link_goes("sbxvtest03"));
}

TEST_CASE("the firewall table holds each sandbox's chain and map entries, and removing a sandbox removes them") {
  enter_test_netns();
  const rt::FirewallConfig config = test_firewall();
  rt::SandboxFirewall sb;
  sb.key = "fw1";
  sb.address = *parse_ipv4("10.99.0.7");
  sb.allow_list = true;
  sb.allow = {*parse_ipv4_net("198.51.100.0/24")};
  sb.allow_ports = {443};
  sb.block_ports = {25};
  sb.ports = {{*parse_ipv4("127.0.0.1"), 18080, 80, IPPROTO_TCP}};
  sb.bandwidth = 1 << 20;
  REQUIRE_OK(rt::firewall_reset(config, {sb}));
  std::string table = command_output("nft list table inet sbxtest 2>&1");
  CHECK(table.find("chain sb-fw1") != std::string::npos);
  CHECK(table.find("chain in-fw1") != std::string::npos);
  CHECK(table.find("10.99.0.7 : jump sb-fw1") != std::string::npos);
  CHECK(table.find("127.0.0.1 . 18080 : 10.99.0.7 . 80") != std::string::npos);
  CHECK(table.find("ip daddr 169.254.0.0/16 drop") != std::string::npos);
  CHECK(table.find("masquerade") != std::string::npos);

  REQUIRE_OK(rt::firewall_allow_learned(config, "fw1", {*parse_ipv4("198.51.100.9")}, 60000));
  CHECK(command_output("nft list set inet sbxtest sb-fw1-dns 2>&1").find("198.51.100.9") != std::string::npos);

  REQUIRE_OK(rt::firewall_remove(config, sb));
  table = command_output("nft list table inet sbxtest 2>&1");
  CHECK(table.find("sb-fw1") == std::string::npos);
  CHECK(table.find("10.99.0.7") == std::string::npos);
  REQUIRE_OK(rt::firewall_remove(config, sb));  // again: nothing to do

  REQUIRE_OK(rt::firewall_add(config, sb));
  REQUIRE_OK(rt::firewall_reset(config, {}));  // a reset drops whatever the table held
  CHECK(command_output("nft list table inet sbxtest 2>&1").find("sb-fw1") == std::string::npos);
  REQUIRE_OK(rt::firewall_delete(config));
  auto exists = rt::firewall_exists(config);
  REQUIRE_OK(exists);
  CHECK_FALSE(*exists);
}

TEST_CASE("sandboxes with the default policy share one egress chain and own only map elements") {
  enter_test_netns();
  const rt::FirewallConfig config = test_firewall();
  rt::SandboxFirewall a;
  a.key = "fwa";
  a.address = *parse_ipv4("10.99.0.8");
  a.ports = {{*parse_ipv4("127.0.0.1"), 18081, 80, IPPROTO_TCP}};
  rt::SandboxFirewall b;
  b.key = "fwb";
  b.address = *parse_ipv4("10.99.0.9");
  REQUIRE_OK(rt::firewall_reset(config, {a}));
  REQUIRE_OK(rt::firewall_add(config, b));
  std::string table = command_output("nft list table inet sbxtest 2>&1");
  CHECK(table.find("10.99.0.8 : jump egress-default") != std::string::npos);
  CHECK(table.find("10.99.0.9 : jump egress-default") != std::string::npos);
  CHECK(table.find("127.0.0.1 . 18081 : 10.99.0.8 . 80") != std::string::npos);
  CHECK(table.find("sb-fwa") == std::string::npos);
  CHECK(table.find("sb-fwb") == std::string::npos);
  // The shared chain is the default policy: established traffic, then the denied ranges, then the rest accepted.
  std::string chain = command_output("nft list chain inet sbxtest egress-default 2>&1");
  CHECK(chain.find("established,related accept") != std::string::npos);
  CHECK(chain.find("jump deny") < chain.rfind("accept"));

  REQUIRE_OK(rt::firewall_remove(config, a));
  table = command_output("nft list table inet sbxtest 2>&1");
  CHECK(table.find("10.99.0.8") == std::string::npos);
  CHECK(table.find("18081") == std::string::npos);
  CHECK(table.find("10.99.0.9 : jump egress-default") != std::string::npos);
  REQUIRE_OK(rt::firewall_remove(config, a));  // again: nothing to do
  REQUIRE_OK(rt::firewall_remove(config, b));
  CHECK(command_output("nft list table inet sbxtest 2>&1").find("10.99.0.9") == std::string::npos);
  REQUIRE_OK(rt::firewall_delete(config));
}

}  // TEST_SUITE
