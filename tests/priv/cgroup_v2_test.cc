// The cgroup back ends on the real kernel: rt.cgroup.v2 on the cgroup2 mount (/sys/fs/cgroup on a pure v2 host,
// /sys/fs/cgroup/unified on a hybrid one), rt.cgroup.v1 on the v1 hierarchies, rt.cgroup.devices the device policy
// (a BPF program on v2, the devices controller on v1) and delegation. Every test works below a parent of its own
// ("<own cgroup>/sbx-test-<pid>") and removes it again.
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "runtime/cgroup.h"
#include "runtime/device_policy.h"

namespace sbx::rt {
namespace {

using namespace std::chrono_literals;

constexpr size_t kTouchBytes = 4 << 20;

bool is_cgroup2(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == static_cast<decltype(st.f_type)>(CGROUP2_SUPER_MAGIC);
}

// The error message of a failed Result, "" for a successful one (doctest may evaluate messages either way).
template <typename R>
std::string error_text(const R& r) {
  return r.ok() ? std::string() : r.error().message();
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_trimmed(const std::string& path) {
  auto text = read_file(path);
  REQUIRE_MESSAGE(text.ok(), error_text(text));
  return trim(*text);
}

template <typename T>
T must(Result<T> r) {
  REQUIRE_MESSAGE(r.ok(), error_text(r));
  return std::move(r).value();
}

void must_ok(const Result<void>& r) { REQUIRE_MESSAGE(r.ok(), error_text(r)); }

// A page both the test and its children see: the children count in it, so the test can tell whether they run.
struct SharedCounter {
  SharedCounter() {
    void* p = ::mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    value = static_cast<volatile uint64_t*>(p);
  }
  ~SharedCounter() { ::munmap(const_cast<uint64_t*>(value), sizeof(uint64_t)); }
  volatile uint64_t* value = nullptr;
};

// The body of every child: waits for a byte on `go` (if any), touches some memory so that it is charged to its
// cgroup, reports on `ready`, then counts until killed.
[[noreturn]] void child_main(int go, int ready, volatile uint64_t* counter) {
  char byte = 0;
  if (go >= 0 && ::read(go, &byte, 1) != 1) {
    ::_exit(2);
  }
  auto* mem = static_cast<volatile char*>(
      ::mmap(nullptr, kTouchBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) {
    ::_exit(3);
  }
  for (size_t i = 0; i < kTouchBytes; i += 4096) {
    mem[i] = 1;
  }
  if (::write(ready, "r", 1) != 1) {
    ::_exit(4);
  }
  for (;;) {
    *counter = *counter + 1;
    ::usleep(1000);
  }
}

// A child of the test, owned by pidfd: killed and reaped on destruction unless already reaped.
struct Child {
  pid_t pid = -1;
  Fd pidfd;
  Fd go;     // write end: lets the child go on
  Fd ready;  // read end: the child's report
  bool reaped = false;

  ~Child() {
    if (pidfd.valid() && !reaped) {
      ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
      siginfo_t info{};
      ::waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info, WEXITED);
    }
  }

  void let_go() { REQUIRE(::write(go.get(), "g", 1) == 1); }

  void wait_ready() {
    struct pollfd p = {ready.get(), POLLIN, 0};
    REQUIRE_MESSAGE(::poll(&p, 1, 60000) == 1, "the child did not report in time");
    char byte = 0;
    REQUIRE(::read(ready.get(), &byte, 1) == 1);
  }

  // Waits for its end; returns the siginfo.
  siginfo_t wait_exit() {
    siginfo_t info{};
    REQUIRE(::waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info, WEXITED) == 0);
    reaped = true;
    return info;
  }
};

struct Pipes {
  Pipes() {
    REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
  }
  // Keeps the parent's ends in `child`, closes the others.
  void hand_over(Child& child) {
    child.go = Fd(go[1]);
    child.ready = Fd(ready[0]);
    ::close(go[0]);
    ::close(ready[1]);
  }
  int go[2] = {-1, -1};
  int ready[2] = {-1, -1};
};

// clone3(CLONE_INTO_CGROUP | CLONE_PIDFD): the child starts life in the cgroup.
void clone_into(Child& child, int cgroup_fd, volatile uint64_t* counter) {
  Pipes pipes;
  int pidfd = -1;
  struct clone_args args {};
  args.flags = CLONE_INTO_CGROUP | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(cgroup_fd);
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) {
    child_main(-1, pipes.ready[1], counter);
  }
  REQUIRE_MESSAGE(pid > 0, "clone3: " << std::strerror(errno));
  child.pid = static_cast<pid_t>(pid);
  child.pidfd = Fd(pidfd);
  pipes.hand_over(child);
}

// fork: the child waits for let_go() so that it can be moved into a cgroup first.
void fork_waiting(Child& child, volatile uint64_t* counter) {
  Pipes pipes;
  pid_t pid = ::fork();
  if (pid == 0) {
    child_main(pipes.go[0], pipes.ready[1], counter);
  }
  REQUIRE(pid > 0);
  child.pid = pid;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  REQUIRE(pidfd >= 0);
  child.pidfd = Fd(pidfd);
  pipes.hand_over(child);
}

bool counter_moves(volatile uint64_t* counter, std::chrono::milliseconds within) {
  uint64_t start = *counter;
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline) {
    if (*counter != start) {
      return true;
    }
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

std::string test_parent_name() { return "sbx-test-" + std::to_string(::getpid()); }

// Opens a manager below a test parent; on destruction removes the test's cgroups and the parent, and checks that
// nothing is left.
struct Env {
  explicit Env(CgroupConfig config) : manager(must(CgroupManager::open(config))) {}
  ~Env() {
    for (const std::string& id : ids) {
      auto removed = manager->attach(id)->remove();
      CHECK_MESSAGE(removed.ok(), error_text(removed));
    }
    auto removed = manager->remove_parent();
    CHECK_MESSAGE(removed.ok(), error_text(removed));
    for (const std::string& p : manager->parent_paths()) {
      CHECK_MESSAGE(!exists(p), p << " is left behind");
    }
  }
  std::string id(const std::string& name) {
    ids.push_back(name);
    return name;
  }
  std::unique_ptr<CgroupManager> manager;
  std::vector<std::string> ids;
};

std::string v2_root() {
  if (is_cgroup2("/sys/fs/cgroup")) {
    return "/sys/fs/cgroup";
  }
  return is_cgroup2("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified" : "";
}

CgroupConfig v2_config(const std::string& root) {
  CgroupConfig config;
  config.mode = CgroupMode::kV2;
  config.root = root;
  config.parent_name = test_parent_name();
  return config;
}

// The line of /proc/<pid>/cgroup for the v2 hierarchy ("0::/path").
std::string v2_line_of(pid_t pid) {
  std::string text = read_trimmed("/proc/" + std::to_string(pid) + "/cgroup");
  size_t at = text.find("0::");
  REQUIRE(at != std::string::npos);
  return text.substr(at, text.find('\n', at) - at);
}

// The directory among `paths` that has `file` (which hierarchy a v1 directory is in).
std::string dir_with(const std::vector<std::string>& paths, const std::string& file) {
  for (const std::string& p : paths) {
    if (exists(p + "/" + file)) {
      return p;
    }
  }
  FAIL("no directory with " << file);
  return {};
}

// "MAJ:MIN" of a disk of this machine (not a loop, ram or zram device), or "" when there is none.
std::string some_disk() {
  DIR* d = ::opendir("/sys/block");
  if (d == nullptr) {
    return {};
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name[0] != '.' && !name.starts_with("loop") && !name.starts_with("ram") && !name.starts_with("zram")) {
      names.push_back(name);
    }
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    auto dev = read_file("/sys/block/" + name + "/dev");
    if (dev.ok()) {
      return trim(*dev);
    }
  }
  return {};
}

TEST_SUITE("rt.cgroup.v2") {
  TEST_CASE("a child cloned into the cgroup is a member, freezes, thaws and is killed; removal is idempotent") {
    const std::string root = v2_root();
    if (root.empty()) {
      MESSAGE("skipped: no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
      return;
    }
    Env env(v2_config(root));
    const std::string id = env.id("place-" + std::to_string(::getpid()));
    auto cg = must(env.manager->create(id, {}));
    const std::string path = cg->paths().at(0);
    CHECK(path == env.manager->parent_paths().at(0) + "/" + id);
    CHECK(exists(path));
    REQUIRE(cg->clone_into_fd() >= 0);
    CHECK(must(env.manager->list()) == std::vector<std::string>{id});

    SharedCounter counter;
    Child child;
    clone_into(child, cg->clone_into_fd(), counter.value);
    child.wait_ready();
    CHECK(must(cg->members()) == std::vector<pid_t>{child.pid});
    CHECK(v2_line_of(child.pid) == "0::" + path.substr(root.size()));
    CHECK(counter_moves(counter.value, 5s));

    must_ok(cg->freeze(true));
    CHECK(read_trimmed(path + "/cgroup.events").find("frozen 1") != std::string::npos);
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(counter_moves(counter.value, 300ms));
    must_ok(cg->freeze(false));
    CHECK(read_trimmed(path + "/cgroup.events").find("frozen 0") != std::string::npos);
    CHECK(counter_moves(counter.value, 5s));

    CgroupStats stats = must(cg->stats());
    CHECK(stats.cpu_usage_usec > 0);

    must_ok(cg->kill_all());
    siginfo_t info = child.wait_exit();
    CHECK(info.si_code == CLD_KILLED);
    CHECK(info.si_status == SIGKILL);
    CHECK(must(cg->members()).empty());

    must_ok(cg->remove());
    CHECK_FALSE(exists(path));
    must_ok(cg->remove());
    must_ok(env.manager->attach(id)->remove());
    CHECK(must(env.manager->list()).empty());
  }

  TEST_CASE("an existing id is refused and the existing cgroup is left alone") {
    const std::string root = v2_root();
    if (root.empty()) {
      MESSAGE("skipped: no cgroup2 mount");
      return;
    }
    Env env(v2_config(root));
    const std::string id = env.id("dup-" + std::to_string(::getpid()));
    auto cg = must(env.manager->create(id, {}));
    auto again = env.manager->create(id, {});
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().sys_errno() == EEXIST);
    CHECK(exists(cg->paths().at(0)));
    must_ok(cg->remove());
  }

  TEST_CASE("limits are written where the controllers are available and refused where not") {
    const std::string root = v2_root();
    if (root.empty()) {
      MESSAGE("skipped: no cgroup2 mount");
      return;
    }
    Env env(v2_config(root));
    const std::string id = env.id("limits-" + std::to_string(::getpid()));
    CgroupLimits limits;
    limits.memory_max = 64ull << 20;
    limits.vcpus = 0.5;
    limits.cpu_weight = 100;
    limits.pids_max = 32;
    const std::string disk = some_disk();
    if (!disk.empty()) {
      limits.io.push_back({disk, 1048576, {}, {}, 100});
    }
    auto supported = env.manager->check_supported(limits);
    if (!supported.ok()) {
      // A hybrid host: cgroup2 without resource controllers. The refusal is clear and create leaves nothing.
      CHECK(supported.error().message().starts_with("limits.memory: the memory controller is not available in"));
      auto created = env.manager->create(id, limits);
      REQUIRE_FALSE(created.ok());
      CHECK_FALSE(exists(env.manager->parent_paths().at(0) + "/" + id));
      MESSAGE("controllers part skipped, this host's cgroup2 has none: " << supported.error().message());
      return;
    }
    auto cg = must(env.manager->create(id, limits));
    const std::string path = cg->paths().at(0);
    CHECK(read_trimmed(path + "/memory.max") == "67108864");
    CHECK(read_trimmed(path + "/cpu.max") == "50000 100000");
    CHECK(read_trimmed(path + "/cpu.weight") == "100");
    CHECK(read_trimmed(path + "/pids.max") == "32");
    if (disk.empty()) {
      MESSAGE("io.max part skipped: no disk in /sys/block");
    } else {
      CHECK(read_trimmed(path + "/io.max") == disk + " rbps=1048576 wbps=max riops=max wiops=100");
    }

    SharedCounter counter;
    Child child;
    clone_into(child, cg->clone_into_fd(), counter.value);
    child.wait_ready();
    CgroupStats stats = must(cg->stats());
    CHECK(stats.pids_current == 1);
    CHECK(stats.memory_current >= kTouchBytes);
    if (exists(path + "/memory.peak")) {
      CHECK(stats.memory_peak >= stats.memory_current);
    }
    CHECK(stats.oom_kills == 0);

    must_ok(cg->kill_all());
    CHECK(child.wait_exit().si_status == SIGKILL);
    must_ok(cg->remove());
    CHECK_FALSE(exists(path));
  }
}

TEST_SUITE("rt.cgroup.v1") {
  TEST_CASE("a forked child is added, limited, counted, frozen and killed in every v1 hierarchy") {
    if (is_cgroup2("/sys/fs/cgroup") || !exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
      MESSAGE("skipped: no cgroup v1 hierarchies under /sys/fs/cgroup on this host");
      return;
    }
    CgroupConfig config;
    config.mode = CgroupMode::kV1;
    config.parent_name = test_parent_name();
    Env env(config);
    const std::string id = env.id("v1-" + std::to_string(::getpid()));
    CgroupLimits limits;
    limits.memory_max = 64ull << 20;
    limits.vcpus = 0.5;
    limits.cpu_weight = 100;
    limits.pids_max = 32;
    const std::string disk = some_disk();
    if (!disk.empty() && exists("/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device")) {
      limits.io.push_back({disk, 1048576, {}, {}, 100});
    }
    CgroupLimits with_swap = limits;
    with_swap.memory_swap_max = 32ull << 20;
    if (env.manager->check_supported(with_swap).ok()) {
      limits.memory_swap_max = 32ull << 20;
    }
    must_ok(env.manager->check_supported(limits));
    auto cg = must(env.manager->create(id, limits));
    const std::vector<std::string> paths = cg->paths();
    CHECK(paths.size() >= 4);
    const std::string memory = dir_with(paths, "memory.limit_in_bytes");
    const std::string cpu = dir_with(paths, "cpu.cfs_quota_us");
    CHECK(read_trimmed(memory + "/memory.limit_in_bytes") == "67108864");
    if (limits.memory_swap_max) {
      CHECK(read_trimmed(memory + "/memory.memsw.limit_in_bytes") == "100663296");
    }
    CHECK(read_trimmed(cpu + "/cpu.cfs_period_us") == "100000");
    CHECK(read_trimmed(cpu + "/cpu.cfs_quota_us") == "50000");
    CHECK(read_trimmed(cpu + "/cpu.shares") == "2597");
    CHECK(read_trimmed(dir_with(paths, "pids.max") + "/pids.max") == "32");
    if (limits.io.empty()) {
      MESSAGE("blkio part skipped: no disk in /sys/block or no blkio hierarchy");
    } else {
      const std::string blkio = dir_with(paths, "blkio.throttle.read_bps_device");
      CHECK(read_trimmed(blkio + "/blkio.throttle.read_bps_device") == disk + " 1048576");
      CHECK(read_trimmed(blkio + "/blkio.throttle.write_iops_device") == disk + " 100");
    }
    CHECK(cg->clone_into_fd() == -1);

    SharedCounter counter;
    Child child;
    fork_waiting(child, counter.value);
    must_ok(cg->add_process(child.pid));
    child.let_go();
    child.wait_ready();
    CHECK(must(cg->members()) == std::vector<pid_t>{child.pid});
    CHECK(read_trimmed("/proc/" + std::to_string(child.pid) + "/cgroup")
              .find(memory.substr(std::strlen("/sys/fs/cgroup/memory"))) != std::string::npos);
    CgroupStats stats = must(cg->stats());
    CHECK(stats.pids_current == 1);
    CHECK(stats.memory_current > 0);
    CHECK(stats.memory_peak >= stats.memory_current);

    must_ok(cg->freeze(true));
    CHECK(read_trimmed(dir_with(paths, "freezer.state") + "/freezer.state") == "FROZEN");
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(counter_moves(counter.value, 300ms));
    must_ok(cg->freeze(false));
    CHECK(counter_moves(counter.value, 5s));

    must_ok(cg->kill_all());
    siginfo_t info = child.wait_exit();
    CHECK(info.si_code == CLD_KILLED);
    CHECK(info.si_status == SIGKILL);
    CHECK(must(cg->members()).empty());
    must_ok(cg->remove());
    for (const std::string& p : paths) {
      CHECK_MESSAGE(!exists(p), p << " is left behind");
    }
    must_ok(cg->remove());
  }
}

// One thing a child does in its cgroup; it reports 0 or the errno.
struct Step {
  enum Kind { kOpen, kMkdir, kWrite } kind = kOpen;
  std::string path;
  int flags = O_RDONLY;  // kOpen: how the path is opened (and closed again at once)
  std::string data;      // kWrite: written to the path
};

Step open_step(const std::string& path, int flags = O_RDONLY) { return {Step::kOpen, path, flags, {}}; }

int run_step(const Step& step) {
  if (step.kind == Step::kMkdir) {
    return ::mkdir(step.path.c_str(), 0755) == 0 ? 0 : errno;
  }
  int fd = ::open(step.path.c_str(), (step.kind == Step::kWrite ? O_WRONLY : step.flags) | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return errno;
  }
  int err = 0;
  if (step.kind == Step::kWrite && ::write(fd, step.data.data(), step.data.size()) < 0) {
    err = errno;
  }
  ::close(fd);
  return err;
}

// The body of a stepping child: waits for a byte on `go` (if any), takes `uid` as every id (raw syscalls: a child
// of clone3 must not count on libc's view of its threads), runs the steps, reports each errno on `out`.
[[noreturn]] void steps_main(int go, int out, const std::vector<Step>& steps, uid_t uid) {
  char byte = 0;
  if (go >= 0 && ::read(go, &byte, 1) != 1) {
    ::_exit(2);
  }
  if (uid != 0 && (::syscall(SYS_setgroups, 0, nullptr) < 0 || ::syscall(SYS_setresgid, uid, uid, uid) < 0 ||
                   ::syscall(SYS_setresuid, uid, uid, uid) < 0)) {
    ::_exit(3);
  }
  for (const Step& step : steps) {
    int err = run_step(step);
    if (::write(out, &err, sizeof err) != static_cast<ssize_t>(sizeof err)) {
      ::_exit(4);
    }
  }
  ::_exit(0);
}

// Runs `steps` in a child that is in `cg` from its start, as the runtime places processes (v2: cloned into the
// cgroup; v1: forked, added to every hierarchy, then let go), as `uid` (0: root). Returns each step's errno.
std::vector<int> run_in(Cgroup& cg, const std::vector<Step>& steps, uid_t uid = 0) {
  int go[2] = {-1, -1};
  int out[2] = {-1, -1};
  REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  Fd go_read(go[0]), go_write(go[1]), out_read(out[0]), out_write(out[1]);
  const bool into = cg.clone_into_fd() >= 0;
  struct clone_args args {};
  args.flags = into ? CLONE_INTO_CGROUP : 0;
  args.exit_signal = SIGCHLD;
  args.cgroup = into ? static_cast<uint64_t>(cg.clone_into_fd()) : 0;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) {
    steps_main(into ? -1 : go_read.get(), out_write.get(), steps, uid);
  }
  REQUIRE_MESSAGE(pid > 0, "clone3: " << std::strerror(errno));
  out_write.reset();
  if (!into) {
    auto added = cg.add_process(static_cast<pid_t>(pid));
    if (!added.ok()) {
      ::kill(static_cast<pid_t>(pid), SIGKILL);
    }
    CHECK_MESSAGE(added.ok(), error_text(added));
    CHECK(::write(go_write.get(), "g", 1) == 1);
  }
  std::vector<int> errs(steps.size(), -1);
  const size_t want = errs.size() * sizeof(int);
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::read(out_read.get(), reinterpret_cast<char*>(errs.data()) + got, want - got);
    if (n <= 0) {
      break;  // the child ended early: its status says why
    }
    got += static_cast<size_t>(n);
  }
  int status = 0;
  REQUIRE(::waitpid(static_cast<pid_t>(pid), &status, 0) == pid);
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "the stepping child ended with status " << status);
  CHECK(got == want);
  return errs;
}

// A character device this kernel has that no sandbox may open by default and that root can open read-only here
// (opening it has no effect); "" when there is none.
std::string restricted_device() {
  for (const char* path : {"/dev/kmsg", "/dev/mem"}) {
    struct stat st {};
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::close(fd);
      if (::stat(path, &st) == 0 && S_ISCHR(st.st_mode)) {
        return path;
      }
    }
  }
  return {};
}

DeviceRule read_rule_for(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return {'c', static_cast<int64_t>(major(st.st_rdev)), static_cast<int64_t>(minor(st.st_rdev)), "r"};
}

// The standard nodes open, `restricted` does not (EPERM) unless `limits` allow it, and then only for reading; an
// exec child cgroup has the same policy.
void check_device_policy(Env& env, const std::string& restricted, const std::string& name) {
  auto plain = must(env.manager->create(env.id(name + "-std-" + std::to_string(::getpid())), {}));
  const std::vector<Step> steps = {open_step("/dev/null", O_RDWR), open_step("/dev/zero"), open_step("/dev/urandom"),
                                   open_step(restricted), open_step(restricted, O_WRONLY)};
  CHECK(run_in(*plain, steps) == std::vector<int>{0, 0, 0, EPERM, EPERM});
  auto exec_child = must(plain->create_child("exec-devices"));
  CHECK(run_in(*exec_child, steps) == std::vector<int>{0, 0, 0, EPERM, EPERM});

  CgroupLimits limits;
  limits.devices.push_back(read_rule_for(restricted));
  auto allowed = must(env.manager->create(env.id(name + "-more-" + std::to_string(::getpid())), limits));
  // Read-only is allowed; the write is refused by the rule's access ("r"), not by the file's mode (root).
  CHECK(run_in(*allowed, steps) == std::vector<int>{0, 0, 0, 0, EPERM});
  must_ok(plain->remove());
  must_ok(allowed->remove());
}

TEST_SUITE("rt.cgroup.devices") {
  TEST_CASE("the kernel's verifier accepts the device programs of every kind of rule") {
    const std::vector<std::vector<DeviceRule>> policies = {
        {},
        standard_device_rules(),
        sandbox_device_rules({{'c', 10, 200, "rw"}, {'b', 8, -1, "r"}, {'a', -1, 5, "m"}, {'c', -1, -1, "w"}}),
        {{'c', 1, 3, "rwm"}, {'a', -1, -1, "rwm"}, {'c', 5, 0, "rwm"}},
    };
    for (const auto& rules : policies) {
      auto prog = load_device_program(device_program(rules));
      CHECK_MESSAGE(prog.ok(), error_text(prog));
    }
  }

  TEST_CASE("a v2 sandbox cgroup opens the standard devices and refuses others with EPERM unless a rule allows them") {
    const std::string root = v2_root();
    if (root.empty()) {
      MESSAGE("skipped: no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified");
      return;
    }
    const std::string restricted = restricted_device();
    if (restricted.empty()) {
      MESSAGE("skipped: neither /dev/kmsg nor /dev/mem opens on this host, so no device shows a refusal");
      return;
    }
    Env env(v2_config(root));
    check_device_policy(env, restricted, "dev2");
  }

  TEST_CASE("a v1 sandbox's devices cgroup denies all but the standard rules and its own; exec children stay in it") {
    if (is_cgroup2("/sys/fs/cgroup") || !exists("/sys/fs/cgroup/devices/devices.allow")) {
      MESSAGE("skipped: no cgroup v1 devices hierarchy at /sys/fs/cgroup/devices on this host");
      return;
    }
    const std::string restricted = restricted_device();
    if (restricted.empty()) {
      MESSAGE("skipped: neither /dev/kmsg nor /dev/mem opens on this host, so no device shows a refusal");
      return;
    }
    CgroupConfig config;
    config.mode = CgroupMode::kV1;
    config.parent_name = test_parent_name();
    Env env(config);
    {
      const std::string id = env.id("devlist-" + std::to_string(::getpid()));
      auto cg = must(env.manager->create(id, {}));
      const std::string devices = dir_with(cg->paths(), "devices.list");
      CHECK(devices.starts_with("/sys/fs/cgroup/devices/"));
      CHECK(devices == env.manager->parent_paths().back() + "/" + id);
      const std::string list = read_trimmed(devices + "/devices.list");
      for (const char* line : {"c 1:3 rwm", "c 1:9 rwm", "c 5:2 rwm", "c 136:* rwm"}) {
        CHECK_MESSAGE(list.find(line) != std::string::npos, line << " is not in " << list);
      }
      CHECK(list.find("a *:*") == std::string::npos);
      CHECK(list.find("b ") == std::string::npos);
      must_ok(cg->delegate(4242, 4242));  // a no-op on v1
      struct stat st {};
      REQUIRE(::stat(devices.c_str(), &st) == 0);
      CHECK(st.st_uid == 0);
      must_ok(cg->remove());
      CHECK_FALSE(exists(devices));
    }
    check_device_policy(env, restricted, "dev1");
  }

  TEST_CASE("a delegated v2 cgroup is its delegatee's to divide and move its processes in, but not to limit") {
    const std::string root = v2_root();
    if (root.empty()) {
      MESSAGE("skipped: no cgroup2 mount (delegation is a v2 feature; v1 delegation is a no-op)");
      return;
    }
    constexpr uid_t kUid = 4242;
    Env env(v2_config(root));
    auto cg = must(env.manager->create(env.id("deleg-" + std::to_string(::getpid())), {}));
    const std::string path = cg->paths().at(0);
    must_ok(cg->delegate(kUid, kUid));
    auto owner = [](const std::string& p) {
      struct stat st {};
      REQUIRE_MESSAGE(::stat(p.c_str(), &st) == 0, p);
      return st.st_uid;
    };
    CHECK(owner(path) == kUid);
    for (const char* f : {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"}) {
      CHECK_MESSAGE(owner(path + "/" + f) == kUid, f);
    }
    CHECK(owner(path + "/cgroup.max.descendants") == 0);
    CHECK(owner(env.manager->parent_paths().at(0)) == 0);

    // As the delegatee: a child cgroup of its own, itself moved there, the sandbox's own limits refused.
    const std::vector<Step> steps = {
        {Step::kMkdir, path + "/mine", 0, {}},
        {Step::kWrite, path + "/mine/cgroup.procs", 0, "0"},
        {Step::kWrite, path + "/cgroup.max.descendants", 0, "1000"},
        {Step::kMkdir, env.manager->parent_paths().at(0) + "/escape", 0, {}},
    };
    CHECK(run_in(*cg, steps, kUid) == std::vector<int>{0, 0, EACCES, EACCES});
    CHECK(owner(path + "/mine") == kUid);
    must_ok(cg->remove());
    CHECK_FALSE(exists(path));
  }
}

}  // namespace
}  // namespace sbx::rt
