// Runs last (doctest orders by file name): after every other test has cleaned up, nothing of theirs is left
// while the daemon still runs: no sandbox, run dir, state dir, cgroup, process, child or fd of sbxd.
#include <doctest/doctest.h>

#include <filesystem>

#include "base/file.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

std::vector<std::string> entries_of(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  return out;
}

}  // namespace

TEST_SUITE("daemon.zz_leaks") {

TEST_CASE("after the tests, nothing of their sandboxes is left, and sbxd holds no extra child or fd") {
  DaemonProcess& d = TestEnv::get().daemon();
  {
    auto c = connect();
    json list = call_ok(c, "sandbox.list");
    CHECK_MESSAGE(list["sandboxes"].empty(), list.dump());
    json info = call_ok(c, "daemon.info");
    CHECK(info.value("execs_running", 0) == 0);
  }
  CHECK_MESSAGE(entries_of(d.run_dir()).empty(), json(entries_of(d.run_dir())).dump());
  const std::string sandbox_dirs = d.state_dir() + "/sandboxes";
  CHECK_MESSAGE(entries_of(sandbox_dirs).empty(), json(entries_of(sandbox_dirs)).dump());
  CHECK_MESSAGE(leftover_cgroups(d.parent_name()).empty(), json(leftover_cgroups(d.parent_name())).dump());
  // The one process sbxd may hold: its spare sandbox monitor, waiting for the next create.
  const std::vector<pid_t> spares = spare_monitors(d.pid());
  CHECK_MESSAGE(spares.size() <= 1, json(spares).dump());
  CHECK_MESSAGE(leftover_processes(d.parent_name(), spares).empty(),
                json(leftover_processes(d.parent_name(), spares)).dump());
  std::map<pid_t, std::string> children = children_of(d.pid());
  for (pid_t spare : spares) {
    children.erase(spare);
  }
  CHECK_MESSAGE(children.empty(), json(children).dump());
  // The connections above are closed: sbxd is back to the descriptors it had when it became ready.
  bool settled = wait_until([&] { return entries_of(fmt::format("/proc/{}/fd", d.pid())).size() <= d.ready_fds(); },
                            30);
  CHECK_MESSAGE(settled, "sbxd has " << entries_of(fmt::format("/proc/{}/fd", d.pid())).size()
                                     << " fds, it had " << d.ready_fds() << " when it became ready");
}

}  // TEST_SUITE
