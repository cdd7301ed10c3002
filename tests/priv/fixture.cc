#include "tests/priv/fixture.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

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

TestEnv::TestEnv() {
  run_root_ = fmt::format("/run/sbx-test-{}", ::getpid());
  rt::RuntimeConfig config;
  config.run_root = run_root_;
  config.cgroup.parent_name = fmt::format("sbx-test-{}", ::getpid());
  auto r = rt::Runtime::open(config);
  if (!r.ok()) {
    FAIL("open runtime: " << r.error().message());
  }
  runtime_ = std::move(r).value();
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
  auto& rt = g_env->runtime();
  if (auto ids = rt.list(); ids.ok()) {
    for (const auto& id : *ids) {
      (void)rt.destroy(id);
    }
  }
  (void)rt.cgroups().remove_parent();
  ::rmdir(g_env->run_root_.c_str());
  delete g_env;
  g_env = nullptr;
}

std::string TestEnv::unique_id(const std::string& prefix) { return fmt::format("{}-{}", prefix, ++counter_); }

rt::Plan TestEnv::plan(const std::string& id) const {
  rt::Plan p = rt::default_plan(id, {busybox_rootfs()});
  p.mounts.push_back({SBX_PROBE_PATH, kProbe, true});
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

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  REQUIRE(dir != nullptr);
  return dir;
}

}  // namespace sbx::test
