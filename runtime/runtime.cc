#include "runtime/runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>

#include "base/file.h"
#include "base/scope.h"
#include "runtime/exec.h"
#include "runtime/mount.h"
#include "runtime/namespaces.h"
#include "runtime/net_link.h"
#include "runtime/net_sandbox.h"
#include "runtime/spawn.h"
#include "runtime/state.h"
#include "runtime/userns.h"

extern "C" const unsigned char sbx_init_blob[];
extern "C" const unsigned char sbx_init_blob_end[];

namespace sbx::rt {

namespace {

// A sealed memfd holding sbx-init: executable, but nobody can write to it, and inside the sandbox /proc/1/exe
// names it rather than a host file.
Result<Fd> make_init_memfd() {
  // MFD_EXEC: hosts with vm.memfd_noexec=1 make memfds non-executable unless asked; kernels before 6.3 refuse the flag.
  constexpr unsigned kMfdExec = 0x10;
  int fd = ::memfd_create("sbx-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | kMfdExec);
  if (fd < 0 && errno == EINVAL) {
    fd = ::memfd_create("sbx-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  }
  if (fd < 0) {
    return sys_error("memfd_create for sbx-init");
  }
  Fd memfd(fd);
  size_t size = static_cast<size_t>(sbx_init_blob_end - sbx_init_blob);
  SBX_TRY_CTX(write_all(fd, std::string_view(reinterpret_cast<const char*>(sbx_init_blob), size)),
              "copy sbx-init into its memfd");
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
    return sys_error("seal the sbx-init memfd");
  }
  return memfd;
}

struct CreateChildArgs {
  const Plan* plan;
  const SandboxPaths* paths;
  int init_memfd;
  int status_fd;
  int null_fd;
  const SeccompFilter* seccomp;
  const std::vector<int>* keep_caps;
};

// The sandbox's first process (pid 1 of its pid namespace): builds its world, then becomes sbx-init.
[[noreturn]] void run_create_child(int sync_fd, const CreateChildArgs& a) {
  if (!wait_for_go(sync_fd)) {
    ::_exit(1);
  }
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (a.plan->userns) {
    const char* step = nullptr;
    if (int err = become_namespace_root(&step)) {
      fail_child_errno(sync_fd, err, step);
    }
  }
  // Nothing of the runtime's (its cgroup fd, other sandboxes' pipes) may enter the sandbox.
  const ProcessSpec* main = a.plan->main ? &*a.plan->main : nullptr;
  if (int err = close_fds_except({sync_fd, a.status_fd, a.init_memfd, a.null_fd, main ? main->stdin_fd : -1,
                                  main ? main->stdout_fd : -1, main ? main->stderr_fd : -1})) {
    fail_child_errno(sync_fd, err, "close the runtime's fds");
  }
  if (::unshare(CLONE_NEWCGROUP) < 0) {
    fail_child_errno(sync_fd, errno, "unshare the cgroup namespace");
  }
  if (auto r = setup_rootfs(*a.plan, *a.paths); !r.ok()) {
    fail_child(sync_fd, r.error());
  }
  if (int err = set_hostname(a.plan->hostname)) {
    fail_child_errno(sync_fd, err, "set the hostname");
  }
  if (int err = bring_up_loopback()) {
    fail_child_errno(sync_fd, err, "bring up lo");
  }
  if (a.plan->network) {
    if (!wait_for_network(sync_fd)) {
      ::_exit(1);
    }
    if (int err = configure_sandbox_eth0(*a.plan->network)) {
      fail_child_errno(sync_fd, err, "configure eth0");
    }
  }
  static const ProcessSpec kIdle;
  FinalExec fx;
  fx.proc = a.plan->main ? &*a.plan->main : &kIdle;
  fx.argv = {"sbx-init"};
  if (a.plan->main) {
    fx.argv.push_back("--");
    fx.argv.insert(fx.argv.end(), a.plan->main->argv.begin(), a.plan->main->argv.end());
  }
  fx.exec_fd = a.init_memfd;
  fx.status_fd = a.status_fd;
  fx.null_fd = a.null_fd;
  fx.rlimits = &a.plan->security.rlimits;
  fx.keep_caps = a.keep_caps;
  fx.seccomp = a.seccomp;
  finish_child(sync_fd, fx);
}

// The sandbox's own run dir: EEXIST means the id is taken, and nothing may be rolled back then.
Result<void> make_run_dir(const SandboxPaths& paths, const std::string& id) {
  if (::mkdir(paths.dir.c_str(), 0700) < 0) {
    if (errno == EEXIST) {
      return Error(fmt::format("sandbox '{}' already exists ({})", id, paths.dir), EEXIST);
    }
    return sys_error("mkdir '{}'", paths.dir);
  }
  return ok();
}

Result<void> make_run_subdirs(const Plan& plan, const SandboxPaths& paths) {
  for (const auto& d : {paths.rootfs, paths.rw}) {
    if (::mkdir(d.c_str(), 0700) < 0) {
      return sys_error("mkdir '{}'", d);
    }
  }
  if (plan.userns) {
    SBX_TRY(make_userns_mount_points(plan, paths));
  }
  return ok();
}

// A sandbox with a user namespace reaches its rootfs dir through the run root as an unprivileged host uid: every
// directory on the way must let others search it (0711, as Runtime::open makes the run root).
Result<void> check_searchable(const std::string& run_root) {
  for (std::string dir = run_root; !dir.empty(); dir = dir.substr(0, dir.rfind('/'))) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) < 0) {
      return sys_error("stat '{}'", dir);
    }
    if ((st.st_mode & S_IXOTH) == 0) {
      return Error(fmt::format("'{}' is mode {:04o}: a sandbox with a user namespace needs every directory down to "
                               "its run dir searchable by others (0711)", dir, st.st_mode & 07777), EACCES);
    }
  }
  return ok();
}

// Parent side, between the clone and "G", for a sandbox with a user namespace: its id maps, then its root (built
// from here, idmapped, inside its mount namespace), then its cgroup handed to its root.
Result<void> prepare_user_namespace(const Plan& plan, const SandboxPaths& paths, const Process& init, Cgroup& cgroup) {
  SBX_TRY(write_id_maps(init.pid(), *plan.userns));
  SBX_ASSIGN(Fd userns, open_user_namespace(init.pid()));
  SBX_TRY(stage_userns_root(plan, paths, init.pidfd(), userns.get()));
  return cgroup.delegate(plan.userns->host_root_uid(), plan.userns->host_root_gid());
}

Result<std::shared_ptr<const SeccompFilter>> load_filter(SeccompCache& cache, const SecurityPlan& sec) {
  if (sec.seccomp_profile.empty()) {
    return std::shared_ptr<const SeccompFilter>();
  }
  return cache.load(sec.seccomp_profile, sec.keep_caps);
}

// An exec's filter: the one compiled at create and stored in the run dir. A run dir without one (made by an older
// runtime) falls back to compiling the profile.
Result<std::shared_ptr<const SeccompFilter>> load_exec_filter(SeccompCache& cache, const SecurityPlan& sec,
                                                              const SandboxPaths& paths) {
  if (sec.seccomp_profile.empty()) {
    return std::shared_ptr<const SeccompFilter>();
  }
  auto stored = read_seccomp_filter(paths.seccomp);
  if (stored.ok() || stored.error().sys_errno() != ENOENT) {
    return stored;
  }
  return cache.load(sec.seccomp_profile, sec.keep_caps);
}

// The veth, its host end named in the run dir first, for net_counters (and for whoever looks at a run dir).
Result<void> create_network(const NetworkPlan& net, const SandboxPaths& paths, pid_t pid) {
  SBX_TRY(create_file(paths.netdev, net.host_ifname + "\n", 0600));
  return create_sandbox_veth(net, pid);
}

// The veth, made while the child sets up its root (the two overlap), then "N" for the child to configure eth0. When
// this fails because the child failed first (and is gone, and its namespace with it), the child's report says why.
Result<void> connect_network(const NetworkPlan& net, const SandboxPaths& paths, pid_t pid, int sync_fd) {
  auto made = create_network(net, paths, pid);
  if (made.ok()) {
    made = send_network_ready(sync_fd);
  }
  if (made.ok()) {
    return ok();
  }
  if (auto child = queued_child_error(sync_fd)) {
    return std::move(*child);
  }
  return made;
}

// The veth's host end named in the run dir, if any.
Result<std::optional<std::string>> read_netdev(const SandboxPaths& paths) {
  auto text = read_file(paths.netdev);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT) {
      return std::optional<std::string>();
    }
    return text.error();
  }
  std::string name = *text;
  while (!name.empty() && name.back() == '\n') {
    name.pop_back();
  }
  return std::optional<std::string>(name);
}

constexpr std::string_view kExecCgroupPrefix = "exec-";
constexpr int kInitExitTimeoutMs = 5000;

std::string new_exec_cgroup_name() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
    r = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        (static_cast<uint64_t>(::getpid()) << 40);
  }
  return fmt::format("{}{:016x}", kExecCgroupPrefix, r);
}

// A new child cgroup of the sandbox's for one exec (a fresh name again in the unlikely case of a clash).
Result<std::unique_ptr<Cgroup>> make_exec_cgroup(Cgroup& sandbox) {
  for (int attempt = 0;; ++attempt) {
    auto child = sandbox.create_child(new_exec_cgroup_name());
    if (child.ok() || child.error().sys_errno() != EEXIST || attempt == 2) {
      return child;
    }
  }
}

// Kills the sandbox's init (verified by start time, so a recycled pid is never hit) when the state file says where,
// and waits (bounded) until it is gone: the kernel kills the rest of its pid namespace first, and the execs'
// supervisors, still alive outside it, reap their processes. (Killing them all at once through the cgroup could leave
// an exec'd process a zombie whose parent is outside the sandbox, which only the host's init would reap.)
void kill_init(const std::string& state_path) {
  auto state = read_state(state_path);
  if (!state.ok()) {
    return;
  }
  auto pidfd = open_init_pidfd(*state);
  if (pidfd.ok() && ::syscall(SYS_pidfd_send_signal, pidfd->get(), SIGKILL, nullptr, 0) == 0) {
    struct pollfd gone = {pidfd->get(), POLLIN, 0};
    ::poll(&gone, 1, kInitExitTimeoutMs);
  }
}

// clone3 copies only the calling thread: a lock another thread held (malloc's, say) would stay locked forever in the
// child. So the process that creates or enters sandboxes must be single-threaded; refuse otherwise.
Result<void> check_single_threaded() {
  SBX_ASSIGN(std::string status, read_file("/proc/self/status"));
  size_t pos = status.find("\nThreads:");
  if (pos == std::string::npos) {
    return make_error("/proc/self/status has no Threads: line");
  }
  SBX_ASSIGN(uint64_t threads, parse_u64(status.substr(pos + 9, status.find('\n', pos + 1) - pos - 9)));
  if (threads != 1) {
    return make_error("the calling process has {} threads; sandboxes are created and entered only from a "
                      "single-threaded process", threads);
  }
  return ok();
}

}  // namespace

Result<std::unique_ptr<Runtime>> Runtime::open(RuntimeConfig config) {
  std::unique_ptr<Runtime> rt(new Runtime(std::move(config)));
  SBX_TRY_CTX(make_dirs(rt->config_.run_root, 0711), "open runtime");
  SBX_TRY_CTX(rt->seccomp_.set_disk_dir(rt->config_.seccomp_cache_dir), "open runtime");
  SBX_ASSIGN(rt->cgroups_, CgroupManager::open(rt->config_.cgroup));
  SBX_ASSIGN(rt->init_memfd_, make_init_memfd());
  SBX_ASSIGN(rt->dev_null_, open_at(AT_FDCWD, "/dev/null", O_RDWR));
  return rt;
}

Runtime::~Runtime() = default;

Result<Sandbox> Runtime::create(const Plan& plan) {
  auto ctx = [&plan] { return fmt::format("create sandbox '{}'", plan.id); };
  // Everything that can be checked is checked before the first kernel object exists.
  SBX_TRY_CTX(validate_plan(plan), "{}", ctx());
  SBX_TRY_CTX(cgroups_->check_supported(plan.limits), "{}", ctx());
  SBX_TRY_CTX(check_single_threaded(), "{}", ctx());
  if (plan.userns) {
    SBX_TRY_CTX(check_searchable(config_.run_root), "{}", ctx());
  }
  SBX_ASSIGN(auto filter, load_filter(seccomp_, plan.security));
  SBX_ASSIGN(std::vector<int> keep_caps, parse_capabilities(plan.security.keep_caps, "security.keep_caps"));

  SandboxPaths paths(sandbox_dir(plan.id));
  SBX_TRY_CTX(make_run_dir(paths, plan.id), "{}", ctx());
  ScopeGuard rollback([&] { (void)destroy(plan.id); });
  SBX_TRY_CTX(make_run_subdirs(plan, paths), "{}", ctx());
  if (filter) {
    SBX_TRY_CTX(write_seccomp_filter(paths.seccomp, *filter), "{}", ctx());
  }

  SBX_ASSIGN(auto cgroup, cgroups_->create(plan.id, plan.limits));
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) < 0) {
    return sys_error("{}: create the status pipe", ctx());
  }
  Fd status_read(status_pipe[0]);
  Fd status_write(status_pipe[1]);
  SBX_ASSIGN(SyncPair sync, make_sync_pair());

  int pidfd = -1;
  unsigned long flags = kSandboxCloneFlags | CLONE_PIDFD | (plan.userns ? CLONE_NEWUSER : 0);
  pid_t pid = clone3_process(flags, &pidfd, cgroup->clone_into_fd());
  if (pid < 0) {
    return sys_error("{}: clone into new namespaces", ctx());
  }
  if (pid == 0) {
    sync.parent.reset();
    CreateChildArgs args{&plan,           &paths,         init_memfd_.get(), status_write.get(),
                         dev_null_.get(), filter.get(), &keep_caps};
    run_create_child(sync.child.get(), args);
  }
  Sandbox sandbox;
  sandbox.id_ = plan.id;
  sandbox.init_ = Process(pid, Fd(pidfd), std::move(status_read));
  sync.child.reset();
  status_write.reset();

  if (cgroup->clone_into_fd() < 0) {
    SBX_TRY_CTX(cgroup->add_process(pid), "{}", ctx());
  }
  if (plan.userns) {
    SBX_TRY_CTX(prepare_user_namespace(plan, paths, sandbox.init_, *cgroup), "{}", ctx());
  }
  SBX_TRY_CTX(send_go(sync.parent.get()), "{}", ctx());
  if (plan.network) {
    SBX_TRY_CTX(connect_network(*plan.network, paths, pid, sync.parent.get()), "{}", ctx());
  }
  SBX_TRY_CTX(read_child_reports(sync.parent.get(), nullptr, config_.setup_timeout_ms), "{}", ctx());

  SandboxState state{plan.id, pid, 0, plan.security, plan.userns};
  SBX_ASSIGN(state.init_start_time, process_start_time(pid));
  SBX_TRY_CTX(write_state(paths.state, state), "{}", ctx());
  rollback.dismiss();
  return sandbox;
}

PreparedExec::PreparedExec(PreparedExec&&) noexcept = default;
PreparedExec& PreparedExec::operator=(PreparedExec&&) noexcept = default;
PreparedExec::~PreparedExec() = default;

Result<Process> Runtime::exec(const std::string& id, const ProcessSpec& proc) {
  SBX_ASSIGN(PreparedExec sandbox, prepare_exec(id));
  return exec(sandbox, proc);
}

Result<PreparedExec> Runtime::prepare_exec(const std::string& id) {
  auto prepared = prepare_exec_impl(id);
  if (!prepared.ok()) {
    return std::move(prepared).error().context(fmt::format("exec in sandbox '{}'", id));
  }
  return prepared;
}

Result<Process> Runtime::exec(const PreparedExec& sandbox, const ProcessSpec& proc) {
  auto process = exec_impl(sandbox, proc);
  if (!process.ok()) {
    return std::move(process).error().context(fmt::format("exec in sandbox '{}'", sandbox.id()));
  }
  return process;
}

Result<PreparedExec> Runtime::prepare_exec_impl(const std::string& id) {
  SBX_TRY(validate_id(id));
  PreparedExec p;
  p.id_ = id;
  SandboxPaths paths(sandbox_dir(id));
  SBX_ASSIGN(p.state_, read_state(paths.state));
  SBX_ASSIGN(p.filter_, load_exec_filter(seccomp_, p.state_.security, paths));
  SBX_ASSIGN(p.keep_caps_, parse_capabilities(p.state_.security.keep_caps, "keep_caps"));
  SBX_ASSIGN(p.init_pidfd_, open_init_pidfd(p.state_));
  p.cgroup_ = cgroups_->attach(id);
  return p;
}

Result<Process> Runtime::exec_impl(const PreparedExec& sandbox, const ProcessSpec& proc) {
  SBX_TRY(validate_process(proc, "process"));
  SBX_TRY(check_single_threaded());
  if (!sandbox.init_pidfd_.valid()) {
    return Error("not prepared for an exec (an empty PreparedExec)", EINVAL);
  }
  SBX_ASSIGN(std::unique_ptr<Cgroup> cgroup, make_exec_cgroup(*sandbox.cgroup_));
  ScopeGuard remove_cgroup([&cgroup] { (void)cgroup->remove(); });
  ExecContext ec;
  ec.exec_cgroup_dir = cgroup->clone_into_fd();
  Fd entry;  // v1: no clone into a cgroup
  if (ec.exec_cgroup_dir < 0) {
    SBX_ASSIGN(entry, cgroup->open_entry());
    ec.exec_cgroup_entry = entry.get();
  }
  ec.init_pidfd = sandbox.init_pidfd_.get();
  ec.cgroup = sandbox.cgroup_.get();
  ec.seccomp = sandbox.filter_.get();
  ec.keep_caps = &sandbox.keep_caps_;
  ec.rlimits = &sandbox.state_.security.rlimits;
  ec.null_fd = dev_null_.get();
  ec.init_memfd = init_memfd_.get();
  ec.timeout_ms = config_.setup_timeout_ms;
  ec.userns = sandbox.state_.userns.has_value();
  SBX_ASSIGN(Process process, exec_process(ec, proc));
  remove_cgroup.dismiss();
  process.set_cgroup(std::move(cgroup));
  return process;
}

Result<void> Runtime::kill_exec_tree(const std::string& id, const std::string& exec_cgroup) {
  auto ctx = [&] { return fmt::format("kill exec '{}' of sandbox '{}'", exec_cgroup, id); };
  SBX_TRY_CTX(validate_id(id), "{}", ctx());
  if (!exec_cgroup.starts_with(kExecCgroupPrefix) || exec_cgroup.find('/') != std::string::npos) {
    return Error(fmt::format("{}: not the name of an exec's cgroup", ctx()), EINVAL);
  }
  SBX_TRY_CTX(cgroups_->attach(id)->attach_child(exec_cgroup)->remove(), "{}", ctx());
  return ok();
}

Result<size_t> Runtime::sweep_exec_cgroups(const std::string& id, std::chrono::milliseconds min_age) {
  SBX_TRY_CTX(validate_id(id), "sweep the exec cgroups of sandbox '{}'", id);
  return cgroups_->attach(id)->remove_empty_children(kExecCgroupPrefix, min_age);
}

Result<void> Runtime::destroy(const std::string& id) {
  auto ctx = [&id] { return fmt::format("destroy sandbox '{}'", id); };
  SBX_TRY_CTX(validate_id(id), "{}", ctx());
  SandboxPaths paths(sandbox_dir(id));
  // The veth needs no step of its own: its peer lives in the sandbox's network namespace, and the kernel removes
  // the pair when that namespace goes, once init and every process in it are dead. Deleting it here instead would
  // cost an RCU grace period (~20 ms) on every sandbox's way out; the kernel pays it in the background, for a batch.
  kill_init(paths.state);
  SBX_TRY_CTX(cgroups_->attach(id)->remove(), "{}", ctx());
  SBX_TRY_CTX(remove_tree(paths.dir), "{}", ctx());
  return ok();
}

Result<CgroupStats> Runtime::stats(const std::string& id) const {
  SBX_TRY_CTX(validate_id(id), "stats of sandbox '{}'", id);
  auto st = cgroups_->attach(id)->stats();
  if (!st.ok()) {
    return std::move(st).error().context(fmt::format("stats of sandbox '{}'", id));
  }
  return st;
}

Result<uint64_t> Runtime::oom_kills(const std::string& id) const {
  SBX_TRY_CTX(validate_id(id), "OOM kills of sandbox '{}'", id);
  return cgroups_->attach(id)->oom_kills();
}

Result<std::optional<LinkCounters>> Runtime::net_counters(const std::string& id) const {
  auto ctx = [&id] { return fmt::format("network counters of sandbox '{}'", id); };
  SBX_TRY_CTX(validate_id(id), "{}", ctx());
  SBX_ASSIGN_CTX(auto netdev, read_netdev(SandboxPaths(sandbox_dir(id))), "{}", ctx());
  if (!netdev) {
    return std::optional<LinkCounters>();
  }
  SBX_ASSIGN_CTX(LinkCounters c, link_counters(*netdev), "{}", ctx());
  return std::optional<LinkCounters>(c);
}

Result<std::vector<std::string>> Runtime::list() const {
  SBX_ASSIGN(std::vector<std::string> ids, cgroups_->list());
  DIR* d = ::opendir(config_.run_root.c_str());
  if (d == nullptr) {
    return sys_error("list '{}'", config_.run_root);
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != ".." && validate_id(name).ok()) {
      ids.push_back(name);
    }
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace sbx::rt
