// What a sandbox looks like from the inside, checked by the probe: init, isolation, filesystem, security.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file.h"
#include "tests/priv/fixture.h"

using namespace sbx;
using namespace sbx::test;

TEST_SUITE("sandbox") {

TEST_CASE("pid 1 is sbx-init run from a sealed memfd, and the host's processes are invisible") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("init")));
  auto kv = exec_capture(env.runtime(), g.id(), probe({"status"})).kv();
  CHECK(kv["init_comm"] == "sbx-init");
  // Non-dumpable init: its exe can be neither read nor opened from inside; the link names a memfd, not a host file.
  CHECK(kv["init_exe_open"] != "ok");
  CHECK(kv["init_exe"].find("/usr") == std::string::npos);
  // init and the probe, nothing of the host.
  CHECK(kv["processes"] == "2");
  CHECK(kv["pid"] != "1");
}

TEST_CASE("the hostname is the plan's and lo is the only network interface, up") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("host"));
  plan.hostname = "sbx-box";
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(), shell("hostname; ls /sys/class/net; cat /sys/class/net/lo/operstate"));
  CHECK(out.status.code == 0);
  CHECK(out.out == "sbx-box\nlo\nunknown\n");
}

TEST_CASE("processes run with no capabilities, no_new_privs and a seccomp filter") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("sec")));
  auto kv = exec_capture(env.runtime(), g.id(), probe({"status"})).kv();
  CHECK(kv["CapEff"] == "0000000000000000");
  CHECK(kv["CapPrm"] == "0000000000000000");
  CHECK(kv["CapBnd"] == "0000000000000000");
  CHECK(kv["CapAmb"] == "0000000000000000");
  CHECK(kv["NoNewPrivs"] == "1");
  CHECK(kv["Seccomp"] == "2");
}

TEST_CASE("mount, unshare, pivot_root, ptrace and bpf fail with EPERM inside") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("sys")));
  auto kv = exec_capture(env.runtime(), g.id(), probe({"syscalls"})).kv();
  CHECK(kv["mount"] == "EPERM");
  CHECK(kv["umount"] == "EPERM");
  CHECK(kv["unshare"] == "EPERM");
  CHECK(kv["unshare_user"] == "EPERM");
  CHECK(kv["pivot_root"] == "EPERM");
  CHECK(kv["ptrace"] == "EPERM");
  CHECK(kv["bpf"] == "EPERM");
  CHECK(kv["keyctl"] == "EPERM");
  CHECK(kv["sethostname"] == "EPERM");
  CHECK(kv["socket_vsock"] == "EPERM");
  CHECK(kv["socket_inet"] == "ok");
  // init ignores signals from inside its namespace that it has no reason to take.
  CHECK(kv["kill_init"] == "ok");
  auto again = exec_capture(env.runtime(), g.id(), probe({"status"})).kv();
  CHECK(again["init_comm"] == "sbx-init");
}

TEST_CASE("a kept capability is the only one left") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("cap"));
  plan.security.keep_caps = {"CAP_NET_BIND_SERVICE"};
  SandboxGuard g(env.runtime(), plan);
  auto proc = shell("grep -E '^Cap(Eff|Bnd)' /proc/self/status");
  auto out = exec_capture(env.runtime(), g.id(), proc);
  CHECK(out.out == "CapEff:\t0000000000000400\nCapBnd:\t0000000000000400\n");
}

TEST_CASE("no fd of the runtime leaks in and the cwd is inside the sandbox") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("fds")));
  auto kv = exec_capture(env.runtime(), g.id(), probe({"status"})).kv();
  // 0, 1, 2 only: stdin is /dev/null of the sandbox, stdout/stderr the test's temp files.
  auto fds = kv["fds"];
  CHECK(fds.rfind("0:/dev/null,1:", 0) == 0);
  CHECK(fds.find(",3:") == std::string::npos);
  CHECK(kv["cwd"] == "/");
}

TEST_CASE("exec runs with the given env, cwd, uid and gid") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("who")));
  auto proc = probe({"status"});
  proc.env = {"PROBE_VAR=hello world"};
  proc.cwd = "/home/user";
  proc.uid = 1000;
  proc.gid = 1000;
  auto kv = exec_capture(env.runtime(), g.id(), proc).kv();
  CHECK(kv["env_PROBE_VAR"] == "hello world");
  CHECK(kv["cwd"] == "/home/user");
  CHECK(kv["uid"] == "1000");
  CHECK(kv["gid"] == "1000");
  CHECK(kv["CapEff"] == "0000000000000000");
}

TEST_CASE("a sandboxed process inherits no blocked or ignored signal from the runtime") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("sigs")));
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigset_t old;
  sigprocmask(SIG_BLOCK, &block, &old);
  auto old_pipe = ::signal(SIGPIPE, SIG_IGN);
  auto kv = exec_capture(env.runtime(), g.id(), probe({"status"})).kv();
  ::signal(SIGPIPE, old_pipe);
  sigprocmask(SIG_SETMASK, &old, nullptr);
  CHECK(kv["SigBlk"] == "0000000000000000");
  CHECK(kv["SigIgn"] == "0000000000000000");
}

TEST_CASE("exit codes and signals of an exec propagate") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("exit")));
  auto code = exec_capture(env.runtime(), g.id(), probe({"exit", "42"}));
  CHECK_FALSE(code.status.signaled);
  CHECK(code.status.code == 42);
  auto sig = exec_capture(env.runtime(), g.id(), probe({"kill", "15"}));
  CHECK(sig.status.signaled);
  CHECK(sig.status.signal == 15);
}

TEST_CASE("an exec of a missing program fails with a clear error") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("noent")));
  rt::ProcessSpec proc;
  proc.argv = {"no-such-program"};
  auto r = env.runtime().exec(g.id(), proc);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().sys_errno() == ENOENT);
  CHECK(r.error().message().find("no-such-program") != std::string::npos);
}

TEST_CASE("the main command's exit code and terminating signal are reported") {
  auto& env = TestEnv::get();
  auto out = run_main(env.runtime(), env.plan(env.unique_id("main")), shell("echo hi; exit 3"));
  CHECK(out.out == "hi\n");
  CHECK(out.status.code == 3);
  auto killed = run_main(env.runtime(), env.plan(env.unique_id("main")), probe({"kill", "9"}));
  CHECK(killed.status.signaled);
  CHECK(killed.status.signal == 9);
}

TEST_CASE("init forwards a signal to the main command") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("fwd"));
  plan.main = shell("trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done");
  SandboxGuard g(env.runtime(), plan);
  // Give the shell time to install its trap.
  for (int i = 0; i < 100; ++i) {
    auto ps = exec_capture(env.runtime(), g.id(), shell("ps -o comm | grep -c sleep"));
    if (ps.out != "0\n") {
      break;
    }
    ::usleep(20000);
  }
  REQUIRE_OK(g.sandbox().init().signal(SIGTERM));
  auto status = g.sandbox().wait();
  REQUIRE_OK(status);
  CHECK(status->code == 7);
}

TEST_CASE("writes land in the upper dir and never in the lower") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("upper")));
  auto out = exec_capture(env.runtime(), g.id(), probe({"write", "/etc/new-file"}));
  CHECK(out.kv()["write"] == "ok");
  std::string upper = env.runtime().sandbox_dir(g.id()) + "/rw/upper/etc/new-file";
  CHECK(path_exists(upper));
  CHECK_FALSE(path_exists(TestEnv::busybox_rootfs() + "/etc/new-file"));
  // Deleting a lower file leaves a whiteout in the upper dir, and the lower file in place.
  auto rm = exec_capture(env.runtime(), g.id(), shell("rm /etc/group && ls /etc/group"));
  CHECK(rm.status.code != 0);
  CHECK(path_exists(TestEnv::busybox_rootfs() + "/etc/group"));
}

TEST_CASE("a read-only root refuses writes, while /tmp stays writable") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("ro"));
  plan.root.read_only = true;
  // A read-only root gets no new mount points: a bind needs one that exists, or one on a tmpfs such as /tmp.
  auto missing = plan;
  missing.id = env.unique_id("ro");
  auto refused = env.runtime().create(missing);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().sys_errno() == EROFS);
  CHECK_FALSE(path_exists(TestEnv::busybox_rootfs() + kProbe));
  plan.mounts[0].destination = "/tmp/sbx-probe";
  SandboxGuard g(env.runtime(), plan);
  rt::ProcessSpec write_etc = probe({"write", "/etc/x"});
  rt::ProcessSpec write_tmp = probe({"write", "/tmp/x"});
  write_etc.argv[0] = write_tmp.argv[0] = "/tmp/sbx-probe";
  CHECK(exec_capture(env.runtime(), g.id(), write_etc).kv()["write"] == "EROFS");
  CHECK(exec_capture(env.runtime(), g.id(), write_tmp).kv()["write"] == "ok");
}

TEST_CASE("an upper dir on a size-capped tmpfs bounds the sandbox's disk use") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("cap"));
  plan.root.upper_tmpfs_size = 8ull << 20;
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(), shell("dd if=/dev/zero of=/big bs=1M count=16 2>&1"));
  CHECK(out.status.code != 0);
  CHECK(out.out.find("No space left on device") != std::string::npos);
}

TEST_CASE("masked paths read empty and read-only paths refuse writes") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("mask")));
  for (const char* path : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"}) {
    auto kv = exec_capture(env.runtime(), g.id(), probe({"read", path})).kv();
    INFO(path);
    if (kv["read"] != "ENOENT") {
      CHECK(kv["bytes"] == "0");
    }
  }
  auto fw = exec_capture(env.runtime(), g.id(), shell("ls -A /sys/firmware | wc -l"));
  CHECK(fw.out == "0\n");
  CHECK(exec_capture(env.runtime(), g.id(), probe({"write", "/proc/sys/kernel/hostname"})).kv()["write"] == "EROFS");
  if (path_exists("/proc/sysrq-trigger")) {
    CHECK(exec_capture(env.runtime(), g.id(), probe({"write", "/proc/sysrq-trigger"})).kv()["write"] == "EROFS");
  }
  CHECK(exec_capture(env.runtime(), g.id(), probe({"write", "/sys/kernel/profiling"})).kv()["write"] == "EROFS");
}

TEST_CASE("/dev holds only the minimal device set, devpts and a size-capped shm") {
  auto& env = TestEnv::get();
  auto plan = env.plan(env.unique_id("dev"));
  plan.dev_shm_size = 4ull << 20;
  SandboxGuard g(env.runtime(), plan);
  auto out = exec_capture(env.runtime(), g.id(),
                          shell("ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && head -c 4 /dev/urandom | wc -c; "
                                "df -k /dev/shm | tail -n 1 | awk '{print $2}'; ls /dev/pts"));
  CHECK(out.out == "core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero \n4\n4096\nptmx\n");
}

TEST_CASE("a FIFO planted in the image at a mount point does not hang the create") {
  auto& env = TestEnv::get();
  std::string layer = make_temp_dir("sbx-fifo-layer");
  REQUIRE(::mkfifo((layer + "/probe-here").c_str(), 0644) == 0);
  auto plan = env.plan(env.unique_id("fifo"));
  plan.root.lower_dirs.insert(plan.root.lower_dirs.begin(), layer);
  plan.mounts[0].destination = "/probe-here";
  {
    SandboxGuard g(env.runtime(), plan);
    auto proc = probe({"exit", "5"});
    proc.argv[0] = "/probe-here";
    CHECK(exec_capture(env.runtime(), g.id(), proc).status.code == 5);
  }
  REQUIRE_OK(remove_tree(layer));
}

TEST_CASE("a sandbox that replaces its /dev/null with a FIFO cannot hang later execs") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("null")));
  auto swap = exec_capture(env.runtime(), g.id(), shell("rm /dev/null && mkfifo /dev/null && ls -l /dev/null"));
  REQUIRE(swap.out.rfind("p", 0) == 0);
  // stdin and stderr unset: they must not be opened through the sandbox's /dev/null.
  auto out = exec_capture(env.runtime(), g.id(), shell("ls -lL /proc/self/fd/0"));
  CHECK(out.status.code == 0);
  CHECK(out.out.rfind("c", 0) == 0);
}

TEST_CASE("a cwd that is a magic link to one of the runtime's fds never reaches the host") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("cwdfd")));
  REQUIRE(exec_capture(env.runtime(), g.id(),
                       shell("for i in 0 1 2 3 4 5 6 7 8 9 10 11 12; do ln -s /proc/self/fd/$i /fd$i; done"))
              .status.code == 0);
  for (int i = 0; i <= 12; ++i) {
    auto proc = shell("pwd");
    proc.cwd = fmt::format("/fd{}", i);
    auto r = env.runtime().exec(g.id(), proc);
    INFO(proc.cwd);
    CHECK_FALSE(r.ok());
  }
  // Through a plain symlink to a directory inside the sandbox, a cwd still works.
  REQUIRE(exec_capture(env.runtime(), g.id(), shell("ln -s /home/user /here")).status.code == 0);
  auto here = shell("pwd -P");
  here.cwd = "/here";
  CHECK(exec_capture(env.runtime(), g.id(), here).out == "/home/user\n");
}

TEST_CASE("no exec'd process has a host binary as /proc/self/exe") {
  auto& env = TestEnv::get();
  SandboxGuard g(env.runtime(), env.plan(env.unique_id("exe")));
  REQUIRE(exec_capture(env.runtime(), g.id(), shell("ln -s /proc/self/exe /evil")).status.code == 0);
  // Exec'ing /proc/self/exe reaches sbx-init's sealed memfd (which refuses to run as anything but pid 1), never the
  // runtime's binary (CVE-2019-5736).
  rt::ProcessSpec evil;
  evil.argv = {"/evil"};
  auto out = exec_capture(env.runtime(), g.id(), evil);
  CHECK(out.status.code == 125);
  CHECK(out.err.find("sbx-init: refusing") != std::string::npos);
}

TEST_CASE("device nodes shipped in an image cannot be opened") {
  auto& env = TestEnv::get();
  std::string layer = make_temp_dir("sbx-dev-layer");
  REQUIRE(::mknod((layer + "/mem-null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  auto plan = env.plan(env.unique_id("nodev"));
  plan.root.lower_dirs.insert(plan.root.lower_dirs.begin(), layer);
  {
    SandboxGuard g(env.runtime(), plan);
    CHECK(exec_capture(env.runtime(), g.id(), probe({"read", "/mem-null"})).kv()["read"] == "EACCES");
    CHECK(exec_capture(env.runtime(), g.id(), probe({"read", "/dev/null"})).kv()["read"] == "ok");
  }
  REQUIRE_OK(remove_tree(layer));
}

TEST_CASE("bind mounts are read-only or read-write as asked") {
  auto& env = TestEnv::get();
  std::string rw = make_temp_dir("sbx-bind-rw");
  std::string ro = make_temp_dir("sbx-bind-ro");
  auto plan = env.plan(env.unique_id("bind"));
  plan.mounts.push_back({rw, "/data/rw", false});
  plan.mounts.push_back({ro, "/data/ro", true});
  {
    SandboxGuard g(env.runtime(), plan);
    CHECK(exec_capture(env.runtime(), g.id(), probe({"write", "/data/rw/f"})).kv()["write"] == "ok");
    CHECK(exec_capture(env.runtime(), g.id(), probe({"write", "/data/ro/f"})).kv()["write"] == "EROFS");
  }
  CHECK(path_exists(rw + "/f"));
  CHECK_FALSE(path_exists(ro + "/f"));
  REQUIRE_OK(remove_tree(rw));
  REQUIRE_OK(remove_tree(ro));
}

TEST_CASE("what a killed test run left behind is removed by the next run") {
  auto& env = TestEnv::get();
  // A child stands in for a run killed mid-test: it makes a runtime named after its pid, starts a sandbox and dies
  // without any cleanup.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    rt::RuntimeConfig config;
    config.run_root = fmt::format("/run/sbx-test-{}", ::getpid());
    config.cgroup.parent_name = fmt::format("sbx-test-{}", ::getpid());
    auto rt = rt::Runtime::open(config);
    bool created = rt.ok() && (*rt)->create(env.plan("killed-run")).ok();
    ::_exit(created ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const std::string run_root = fmt::format("/run/sbx-test-{}", child);
  CHECK(path_exists(run_root + "/killed-run"));
  std::vector<std::string> parents;
  for (const auto& own : env.runtime().cgroups().parent_paths()) {
    parents.push_back(own.substr(0, own.rfind('/')) + fmt::format("/sbx-test-{}", child));
  }
  REQUIRE_FALSE(parents.empty());
  CHECK(path_exists(parents[0] + "/killed-run"));

  recover_killed_runs(env.runtime().cgroups());
  CHECK_FALSE(path_exists(run_root));
  for (const auto& parent : parents) {
    CHECK_MESSAGE(!path_exists(parent), parent);
  }
  CHECK(path_exists(env.run_root()));  // this run's own is untouched
}

}  // TEST_SUITE
