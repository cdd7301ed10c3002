// Privileged integration tests: real sandboxes on this machine. Must run as root.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>

#include "tests/priv/fixture.h"

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "priv_tests: must run as root (they create namespaces, mounts and cgroups)\n");
    return 1;
  }
  doctest::Context ctx(argc, argv);
  int rc = ctx.run();
  sbx::test::TestEnv::teardown();
  return rc;
}
