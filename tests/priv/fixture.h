#pragma once
// Shared setup for the privileged tests: one Runtime with a run dir and cgroup parent of the test binary's own,
// plans on the busybox rootfs with the probe bound in, and helpers that run a process and capture its output.
#include <map>
#include <memory>
#include <string>

#include "runtime/runtime.h"

namespace sbx::test {

constexpr const char* kProbe = "/sbx-probe";  // where plans mount the probe inside the sandbox

struct Output {
  rt::ExitStatus status;
  std::string out;
  std::string err;
  // The probe's "key=value" lines.
  std::map<std::string, std::string> kv() const;
};

class TestEnv {
 public:
  static TestEnv& get();
  // Destroys whatever the tests left, removes the run dir and the cgroup parent. Called once, after the last test.
  static void teardown();

  rt::Runtime& runtime() { return *runtime_; }
  std::string unique_id(const std::string& prefix);
  // A plan on the busybox rootfs, the probe bound read-only at /sbx-probe, the default seccomp profile.
  rt::Plan plan(const std::string& id) const;
  std::string run_root() const { return run_root_; }

  // The build's busybox rootfs and probe, or copies named by SBX_TEST_ROOTFS and SBX_TEST_PROBE_DIR: where the
  // build dir is on a file system without idmapped mounts (9p in the cgroup v2 VM), tests/run-cgroup-vm puts copies
  // on one that has them.
  static std::string busybox_rootfs();
  static std::string probe_path(const std::string& name = "sbx-probe");
  static std::string default_profile() { return SBX_SOURCE_ROOT "/seccomp-profiles/default.json"; }

 private:
  TestEnv();
  std::string run_root_;
  std::unique_ptr<rt::Runtime> runtime_;
  int counter_ = 0;
};

// Runs `proc` with stdout/stderr captured (in temp files, so any size works) via exec in sandbox `id`.
Output exec_capture(rt::Runtime& runtime, const std::string& id, rt::ProcessSpec proc);
// Creates a sandbox whose main command is `proc`, waits for it, destroys it.
Output run_main(rt::Runtime& runtime, rt::Plan plan, rt::ProcessSpec proc);
rt::ProcessSpec probe(std::initializer_list<std::string> args);
rt::ProcessSpec shell(const std::string& script);

// A created sandbox that is destroyed when the guard goes out of scope.
class SandboxGuard {
 public:
  SandboxGuard(rt::Runtime& runtime, const rt::Plan& plan);
  ~SandboxGuard();
  rt::Sandbox& sandbox() { return sandbox_; }
  const std::string& id() const { return id_; }

 private:
  rt::Runtime& runtime_;
  std::string id_;
  rt::Sandbox sandbox_;
};

// Fails the current test with the error's message when `r` failed.
#define REQUIRE_OK(r)                                                   \
  do {                                                                  \
    const auto& sbx_req_ = (r);                                         \
    if (!sbx_req_.ok()) {                                               \
      FAIL(#r << " failed: " << sbx_req_.error().message());           \
    }                                                                   \
  } while (0)

bool path_exists(const std::string& path);

// Removes the sandboxes, cgroup parents and run dirs of runs of priv_tests that were killed before their teardown
// (named sbx-test-<pid>, the pid no longer a running priv_tests). TestEnv calls it when it is made; `own` locates
// the cgroup parents.
void recover_killed_runs(const rt::CgroupManager& own);
std::string make_temp_dir(const std::string& prefix, const std::string& parent = "/tmp");
// A temp dir on the busybox rootfs's file system, which supports idmapped mounts (/tmp may not: tmpfs before 6.3).
inline std::string make_idmappable_temp_dir(const std::string& prefix) {
  std::string rootfs = TestEnv::busybox_rootfs();
  return make_temp_dir(prefix, rootfs.substr(0, rootfs.rfind('/')));
}

}  // namespace sbx::test
