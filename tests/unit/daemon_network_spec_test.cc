// A sandbox's network request, checked and normalized (daemon/network_spec).
#include <doctest/doctest.h>
#include <netinet/in.h>

#include "daemon/network_spec.h"

using namespace sbx;
using namespace sbx::daemon;

namespace {

std::string network_error(const json& request) {
  auto r = normalize_network(request, DaemonConfig{});
  REQUIRE_MESSAGE(!r.ok(), request.dump());
  return r.error().message();
}

}  // namespace

TEST_SUITE("daemon.network_spec") {

TEST_CASE("a mode alone, or nothing, becomes the full object") {
  CHECK(*normalize_network(json(), DaemonConfig{}) == json{{"mode", "none"}});
  DaemonConfig bridged;
  bridged.network_default = "bridge";
  json n = *normalize_network(json(), bridged);
  CHECK(n["mode"] == "bridge");
  CHECK(n["ports"] == json::array());
  CHECK(n["bandwidth"] == 0);
  CHECK(*normalize_network("none", bridged) == json{{"mode", "none"}});
  CHECK(network_mode(json{{"network", "none"}}) == "none");  // specs stored before bridge mode
  CHECK(network_mode(json{{"network", n}}) == "bridge");
}

TEST_CASE("bridge options are normalized: ports to objects, lists sorted and unique, sizes to bytes") {
  json n = *normalize_network(json{{"mode", "bridge"},
                                   {"ports", {"8080:80", "10.1.2.3:5353:53/udp", {{"host_port", 9000}, {"port", 90}}}},
                                   {"allow", {"198.51.100.0/24"}},
                                   {"allow_ports", {443, "80", 443}},
                                   {"allow_hosts", {"API.GitHub.com.", "*.example.com"}},
                                   {"block_ports", {25}},
                                   {"bandwidth", "1M"}},
                              DaemonConfig{});
  CHECK(n["ports"][0] == json{{"host_ip", "127.0.0.1"}, {"host_port", 8080}, {"port", 80}, {"protocol", "tcp"}});
  CHECK(n["ports"][1] == json{{"host_ip", "10.1.2.3"}, {"host_port", 5353}, {"port", 53}, {"protocol", "udp"}});
  CHECK(n["ports"][2]["host_ip"] == "127.0.0.1");
  CHECK(n["allow_ports"] == json{80, 443});
  CHECK(n["allow_hosts"] == json{"*.example.com", "api.github.com"});
  CHECK(n["bandwidth"] == 1 << 20);

  auto f = firewall_for("k1", 0x0a420005, n);
  CHECK(f.allow_list);
  CHECK(f.allow.size() == 1);
  CHECK(f.ports.size() == 3);
  CHECK(f.ports[1].protocol == IPPROTO_UDP);
  CHECK(f.block_ports == std::vector<uint16_t>{25});
  CHECK_FALSE(firewall_for("k2", 1, *normalize_network("bridge", DaemonConfig{})).allow_list);
}

TEST_CASE("bad network requests are refused with the field named") {
  CHECK(network_error("wifi").find("network.mode") != std::string::npos);
  CHECK(network_error(json{{"mode", "none"}, {"ports", {"80:80"}}}).find("needs network mode") != std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"portz", {}}}).find("network.portz: unknown key") !=
        std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"ports", {"80"}}}).find("network.ports[0]") != std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"ports", {"0:80"}}}).find("not a port") != std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"ports", {"0.0.0.0:80:80"}}}).find("not 0.0.0.0") !=
        std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"ports", {"80:80/sctp"}}}).find("tcp or udp") != std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"ports", {"80:80", "127.0.0.1:80:81"}}}).find("twice") !=
        std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"allow", {"10.0.0.1/8"}}}).find("network.allow[0]") !=
        std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"allow_hosts", {"a b"}}}).find("network.allow_hosts[0]") !=
        std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"block_ports", {70000}}}).find("network.block_ports[0]") !=
        std::string::npos);
  CHECK(network_error(json{{"mode", "bridge"}, {"bandwidth", "12"}}).find("network.bandwidth") != std::string::npos);
  CHECK(network_error(5).find("network") != std::string::npos);
}

}  // TEST_SUITE
