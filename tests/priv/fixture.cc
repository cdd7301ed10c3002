#include "tests/priv/fixture.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <set>

#include "base/file.h"

namespace sbx::test {

namespace {

std::string read_fd(int fd) {
  std::string out;
  char buf[8192];
  ::lseek(fd, 0, SEEK_SET);
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Fd temp_file() {
  int fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  return Fd(fd);
}

TestEnv* g_env = nullptr;

constexpr std::string_view kNamePrefix = "sbx-test-";  // run dir /run/sbx-test-<pid>, cgroup parent sbx-test-<pid>

rt::RuntimeConfig config_for(pid_t pid) {
  rt::RuntimeConfig config;
  config.run_root = fmt::format("/run/{}{}", kNamePrefix, pid);
  config.cgroup.parent_name = fmt::format("{}{}", kNamePrefix, pid);
  return config;
}

// Destroys every sandbox of a run's runtime, then its cgroup parent and run dir.
void clean_up(rt::Runtime& rt, const std::string& run_root) {
  if (auto ids = rt.list(); ids.ok()) {
    for (const auto& id : *ids) {
      (void)rt.destroy(id);
    }
  }
  (void)rt.cgroups().remove_parent();
  ::rmdir(run_root.c_str());
}

// The pid in a "sbx-test-<pid>" name; 0 for any other name.
pid_t run_pid(const std::string& name) {
  if (!name.starts_with(kNamePrefix) || name.size() == kNamePrefix.size() ||
      name.find_first_not_of("0123456789", kNamePrefix.size()) != std::string::npos) {
    return 0;
  }
  return static_cast<pid_t>(std::strtol(name.c_str() + kNamePrefix.size(), nullptr, 10));
}

bool is_running_priv_tests(pid_t pid) {
  auto comm = read_file(fmt::format("/proc/{}/comm", pid));
  return comm.ok() && *comm == "priv_tests\n";
}

}  // namespace

std::map<std::string, std::string> Output::kv() const {
  std::map<std::string, std::string> m;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    std::string line = out.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    size_t eq = line.find('=');
    if (eq != std::string::npos) {
      m[line.substr(0, eq)] = line.substr(eq + 1);
    }
    pos = nl == std::string::npos ? out.size() : nl + 1;
  }
  return m;
}

// A run of this binary that was killed (a timeout's SIGTERM, SIGKILL) never reached teardown(): its sandboxes,
// cgroups and run dir stay behind. They are named after its pid, found in /run and next to our own cgroup parent,
// and removed here, through the runtime, as its teardown would have, unless that pid is a priv_tests still running.
void recover_killed_runs(const rt::CgroupManager& own) {
  std::set<pid_t> pids;
  std::vector<std::string> dirs = {"/run"};
  for (const auto& parent : own.parent_paths()) {
    dirs.push_back(parent.substr(0, parent.rfind('/')));
  }
  for (const auto& dir : dirs) {
    if (auto names = list_dir(dir); names.ok()) {
      for (const auto& name : *names) {
        if (pid_t pid = run_pid(name); pid > 0 && pid != ::getpid() && !is_running_priv_tests(pid)) {
          pids.insert(pid);
        }
      }
    }
  }
  for (pid_t pid : pids) {
    rt::RuntimeConfig config = config_for(pid);
    if (auto rt = rt::Runtime::open(config); rt.ok()) {
      std::fprintf(stderr, "priv_tests: removing what killed run %d left behind\n", pid);
      clean_up(**rt, config.run_root);
    }
  }
}

TestEnv::TestEnv() {
  rt::RuntimeConfig config = config_for(::getpid());
  run_root_ = config.run_root;
  auto r = rt::Runtime::open(config);
  if (!r.ok()) {
    FAIL("open runtime: " << r.error().message());
  }
  runtime_ = std::move(r).value();
  recover_killed_runs(runtime_->cgroups());
}

TestEnv& TestEnv::get() {
  if (g_env == nullptr) {
    g_env = new TestEnv();
  }
  return *g_env;
}

void TestEnv::teardown() {
  if (g_env == nullptr) {
    return;
  }
  clean_up(g_env->runtime(), g_env->run_root_);
  delete g_env;
  g_env = nullptr;
}

std::string TestEnv::unique_id(const std::string& prefix) { return fmt::format("{}-{}", prefix, ++counter_); }

std::string TestEnv::busybox_rootfs() {
  const char* copy = std::getenv("SBX_TEST_ROOTFS");
  return copy != nullptr && *copy != '\0' ? copy : SBX_BUSYBOX_ROOTFS;
}

std::string TestEnv::probe_path(const std::string& name) {
  const char* copy = std::getenv("SBX_TEST_PROBE_DIR");
  std::string dir = copy != nullptr && *copy != '\0' ? copy : SBX_PROBE_DIR;
  return dir + "/" + name;
}

rt::Plan TestEnv::plan(const std::string& id) const {
  rt::Plan p = rt::default_plan(id, {busybox_rootfs()});
  p.mounts.push_back({probe_path(), kProbe, true});
  p.security.seccomp_profile = default_profile();
  p.security.rlimits.nofile = 1024;
  return p;
}

Output exec_capture(rt::Runtime& runtime, const std::string& id, rt::ProcessSpec proc) {
  Fd out = temp_file();
  Fd err = temp_file();
  proc.stdout_fd = out.get();
  proc.stderr_fd = err.get();
  auto process = runtime.exec(id, proc);
  if (!process.ok()) {
    FAIL("exec in '" << id << "': " << process.error().message());
  }
  auto status = process->wait();
  REQUIRE_OK(status);
  return Output{*status, read_fd(out.get()), read_fd(err.get())};
}

Output run_main(rt::Runtime& runtime, rt::Plan plan, rt::ProcessSpec proc) {
  Fd out = temp_file();
  Fd err = temp_file();
  proc.stdout_fd = out.get();
  proc.stderr_fd = err.get();
  plan.main = proc;
  auto sandbox = runtime.create(plan);
  if (!sandbox.ok()) {
    FAIL("create '" << plan.id << "': " << sandbox.error().message());
  }
  auto status = sandbox->wait();
  REQUIRE_OK(status);
  REQUIRE_OK(runtime.destroy(plan.id));
  return Output{*status, read_fd(out.get()), read_fd(err.get())};
}

rt::ProcessSpec probe(std::initializer_list<std::string> args) {
  rt::ProcessSpec p;
  p.argv.push_back(kProbe);
  p.argv.insert(p.argv.end(), args.begin(), args.end());
  return p;
}

rt::ProcessSpec shell(const std::string& script) {
  rt::ProcessSpec p;
  p.argv = {"/bin/sh", "-c", script};
  p.env = {"PATH=/bin:/sbin:/usr/bin:/usr/sbin"};
  return p;
}

SandboxGuard::SandboxGuard(rt::Runtime& runtime, const rt::Plan& plan) : runtime_(runtime), id_(plan.id) {
  auto r = runtime.create(plan);
  if (!r.ok()) {
    FAIL("create '" << plan.id << "': " << r.error().message());
  }
  sandbox_ = std::move(r).value();
}

SandboxGuard::~SandboxGuard() {
  auto r = runtime_.destroy(id_);
  if (!r.ok()) {
    FAIL_CHECK("destroy '" << id_ << "': " << r.error().message());
  }
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string make_temp_dir(const std::string& prefix, const std::string& parent) {
  std::string tmpl = parent + "/" + prefix + "-XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  REQUIRE(dir != nullptr);
  return dir;
}

}  // namespace sbx::test
