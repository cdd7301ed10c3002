// The escape probe (tests/probe/sbx_escape_probe.c) inside a sandbox made as sbxd makes a default one: its own user
// namespace, sbxd's default capabilities for root, the default seccomp profile. Every check must pass, as root and
// as another uid; the host gives it a secret file, its hostname and a listening port on its loopback to look for.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/file.h"
#include "runtime/userns.h"
#include "tests/priv/fixture.h"

using namespace sbx;
using namespace sbx::test;

namespace {

// sbxd's [defaults] capabilities (daemon/config.h).
const std::vector<std::string> kDefaultCaps = {"CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER",           "CAP_FSETID",
                                               "CAP_KILL",   "CAP_SETGID",       "CAP_SETUID",           "CAP_SETPCAP",
                                               "CAP_SETFCAP", "CAP_SYS_CHROOT",  "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"};
constexpr uint32_t kHostRoot = 1700000000;

// A TCP listener on the host's 127.0.0.1, on a port the kernel picks.
struct HostListener {
  HostListener() {
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd.valid());
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd.get(), 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
  Fd fd;
  int port = 0;
};

Output run_probe(uint32_t uid, const std::string& secret, int port) {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("escape"));
  plan.userns = rt::contiguous_userns(kHostRoot, 65536);
  plan.security.keep_caps = kDefaultCaps;
  plan.mounts.push_back({TestEnv::probe_path("sbx-escape-probe"), "/sbx-escape-probe", true});
  SandboxGuard g(env.runtime(), plan);
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  rt::ProcessSpec proc;
  proc.argv = {"/sbx-escape-probe", "--expect-uid", std::to_string(uid), "--expect-host-uid",
               std::to_string(kHostRoot), "--host-secret", secret, "--host-name", host, "--host-port",
               std::to_string(port)};
  proc.uid = uid;
  proc.gid = uid;
  return exec_capture(env.runtime(), g.id(), proc);
}

}  // namespace

TEST_SUITE("escape") {

TEST_CASE("the escape probe finds no way out of a default sandbox, as root or as another uid") {
  std::string dir = make_temp_dir("escape-secret");
  REQUIRE_OK(create_file(dir + "/secret", "host only\n", 0600));
  HostListener listener;
  for (uint32_t uid : {0u, 1000u}) {
    CAPTURE(uid);
    Output out = run_probe(uid, dir + "/secret", listener.port);
    INFO(out.out << out.err);
    CHECK(out.status.code == 0);
    CHECK(out.out.find("FAIL") == std::string::npos);
    CHECK(out.out.find(" 0 failed\n") != std::string::npos);
    // The identity checks ran, not skipped.
    CHECK(out.out.find(uid == 0 ? "PASS caps_root" : "PASS caps_nonroot") != std::string::npos);
    CHECK(out.out.find("PASS host_port") != std::string::npos);
  }
  (void)remove_tree(dir);
}

TEST_CASE("the escape probe refuses to run in a sandbox that shares the host's user namespace") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("escape-host"));
  plan.mounts.push_back({TestEnv::probe_path("sbx-escape-probe"), "/sbx-escape-probe", true});
  SandboxGuard g(env.runtime(), plan);
  rt::ProcessSpec proc;
  proc.argv = {"/sbx-escape-probe"};
  Output out = exec_capture(env.runtime(), g.id(), proc);
  CHECK(out.status.code == 2);
  CHECK(out.out.find("PASS") == std::string::npos);
}

}  // TEST_SUITE
