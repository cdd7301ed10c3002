// Integration tests of sbxd through its socket: a private daemon started by the tests, real sandboxes on the
// busybox rootfs. Must run as root. After the last test the daemon is stopped and everything it made is checked
// to be gone; anything left fails the run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>

#include "tests/daemon/fixture.h"

namespace {

// The restart tests SIGKILL sbxd, so its sandbox monitors lose their parent. As the subreaper, this process gets
// them instead of the machine's pid 1 (which, in some containers, never reaps), and reaps them before it exits:
// no zombie of the tests outlives them.
void reap_orphans() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    int st = 0;
    pid_t pid = ::waitpid(-1, &st, WNOHANG);
    if (pid < 0) {
      return;  // ECHILD: no child left
    }
    if (pid == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "daemon_tests: children still running at exit\n");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "daemon_tests: must run as root (sbxd creates namespaces, mounts and cgroups)\n");
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  doctest::Context ctx(argc, argv);
  int rc = ctx.run();
  if (ctx.shouldExit()) {
    reap_orphans();
    return rc;
  }
  auto leaks = sbx::itest::TestEnv::teardown();
  reap_orphans();
  for (const auto& leak : leaks) {
    std::fprintf(stderr, "daemon_tests: left behind: %s\n", leak.c_str());
  }
  return rc != 0 ? rc : (leaks.empty() ? 0 : 1);
}
