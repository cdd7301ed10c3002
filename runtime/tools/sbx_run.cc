// sbx-run: runs one command in a one-off sandbox straight through the runtime library (no daemon), then destroys
// the sandbox. The development front end of the runtime, like `crun run`; exits with the command's status.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/scope.h"
#include "runtime/runtime.h"
#include "runtime/userns.h"

namespace {

using namespace sbx;
using namespace sbx::rt;

constexpr const char* kUsage = R"(usage: sbx-run [OPTIONS] --rootfs DIR [--rootfs DIR...] -- COMMAND [ARGS...]

Runs COMMAND in a new sandbox on an overlay of the given root filesystems (topmost first) and destroys the sandbox
when COMMAND ends. Must run as root.

  --rootfs DIR           a read-only layer of the root filesystem (repeatable, topmost first)
  --read-only            use the single rootfs read-only instead of an overlay
  --disk SIZE            put the overlay's writable layer on a tmpfs of SIZE (bounds disk use)
  --memory SIZE          memory limit (e.g. 256M)
  --vcpus N              CPU bandwidth in CPUs (e.g. 0.5)
  --pids N               maximum number of processes
  --seccomp FILE         OCI seccomp profile (default: the installed default.json); "none" for no filter
  --cap CAP              keep a capability (repeatable); all others are dropped
  --bind SRC:DST[:rw]    bind-mount a host path (read-only unless :rw)
  --env NAME=VALUE       environment variable (repeatable); PATH has a default
  --cwd DIR              working directory inside the sandbox (default /)
  --user UID[:GID]       identity of COMMAND (default 0:0 with the kept capabilities; any other uid gets none)
  --userns HOST_UID      a user namespace of the sandbox's own: ids 0..65535 inside are HOST_UID.. on the host
                         (the same as --uidmap 0:HOST_UID:65536 --gidmap 0:HOST_UID:65536)
  --uidmap IN:HOST:N     one line of the user namespace's uid map (repeatable); --gidmap likewise (the gid map
  --gidmap IN:HOST:N     is the uid map when only --uidmap is given). Without any: the host's user namespace
  --hostname NAME        hostname (default: the sandbox id)
  --id ID                sandbox id (default: sbx-run-<pid>)
  --run-root DIR         where sandboxes keep their state (default /run/sbx)
)";

// Relative host paths are taken from the current directory, as a user typing them expects.
std::string absolute(const std::string& path) {
  if (path.empty() || path.front() == '/') {
    return path;
  }
  char cwd[4096];
  return ::getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + path : path;
}

Result<uint64_t> parse_size(const std::string& text, const char* option) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  uint64_t mult = 1;
  std::string suffix = end ? end : "";
  if (suffix == "K" || suffix == "k") {
    mult = 1ull << 10;
  } else if (suffix == "M" || suffix == "m") {
    mult = 1ull << 20;
  } else if (suffix == "G" || suffix == "g") {
    mult = 1ull << 30;
  } else if (!suffix.empty()) {
    return make_error("{}: '{}' is not a size (a number with an optional K, M or G)", option, text);
  }
  if (end == text.c_str() || v <= 0) {
    return make_error("{}: '{}' is not a positive size", option, text);
  }
  return static_cast<uint64_t>(v * static_cast<double>(mult));
}

std::string default_seccomp_profile() {
  std::string installed = SBX_SECCOMP_DIR "/default.json";
  if (::access(installed.c_str(), R_OK) == 0) {
    return installed;
  }
  return SBX_SOURCE_ROOT "/seccomp-profiles/default.json";
}

struct Options {
  Plan plan;
  ProcessSpec proc;
  std::string run_root = "/run/sbx";
};

Result<void> parse_bind(const std::string& spec, Plan& plan) {
  size_t a = spec.find(':');
  if (a == std::string::npos) {
    return make_error("--bind: '{}' is not SRC:DST[:rw]", spec);
  }
  size_t b = spec.find(':', a + 1);
  BindMount m{absolute(spec.substr(0, a)), spec.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1), true};
  if (b != std::string::npos) {
    std::string mode = spec.substr(b + 1);
    if (mode != "rw" && mode != "ro") {
      return make_error("--bind: mode '{}' is neither rw nor ro", mode);
    }
    m.read_only = mode == "ro";
  }
  plan.mounts.push_back(m);
  return ok();
}

Result<void> parse_user(const std::string& spec, ProcessSpec& proc) {
  char* end = nullptr;
  proc.uid = static_cast<uint32_t>(std::strtoul(spec.c_str(), &end, 10));
  proc.gid = proc.uid;
  if (end != nullptr && *end == ':') {
    proc.gid = static_cast<uint32_t>(std::strtoul(end + 1, &end, 10));
  }
  if (end == nullptr || *end != '\0') {
    return make_error("--user: '{}' is not UID[:GID]", spec);
  }
  return ok();
}

Result<uint32_t> parse_id(const std::string& text, const std::string& option, const std::string& spec) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || errno != 0 || v > UINT32_MAX) {
    return make_error("{}: '{}' is not INSIDE:HOST:COUNT", option, spec);
  }
  return static_cast<uint32_t>(v);
}

Result<IdMapping> parse_id_mapping(const std::string& spec, const std::string& option) {
  size_t a = spec.find(':');
  size_t b = a == std::string::npos ? a : spec.find(':', a + 1);
  if (b == std::string::npos) {
    return make_error("{}: '{}' is not INSIDE:HOST:COUNT", option, spec);
  }
  IdMapping m;
  SBX_ASSIGN(m.inside, parse_id(spec.substr(0, a), option, spec));
  SBX_ASSIGN(m.host, parse_id(spec.substr(a + 1, b - a - 1), option, spec));
  SBX_ASSIGN(m.count, parse_id(spec.substr(b + 1), option, spec));
  return m;
}

// --userns, --uidmap and --gidmap into the plan's user namespace.
Result<void> add_mapping(const std::string& option, const std::string& value, Plan& plan) {
  if (!plan.userns) {
    plan.userns.emplace();
  }
  if (option == "--userns") {
    SBX_ASSIGN(uint32_t first, parse_id(value, option, value));
    plan.userns = contiguous_userns(first, 65536);
    return ok();
  }
  SBX_ASSIGN(IdMapping m, parse_id_mapping(value, option));
  (option == "--uidmap" ? plan.userns->uid_map : plan.userns->gid_map).push_back(m);
  return ok();
}

Result<Options> parse_args(int argc, char** argv) {
  Options o;
  o.plan = default_plan(fmt::format("sbx-run-{}", ::getpid()), {});
  o.plan.security.seccomp_profile = default_seccomp_profile();
  std::optional<std::string> hostname;
  int i = 1;
  auto value = [&](const char* opt) -> Result<std::string> {
    if (i + 1 >= argc) {
      return make_error("{} needs a value", opt);
    }
    return std::string(argv[++i]);
  };
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--read-only") {
      o.plan.root.read_only = true;
      continue;
    }
    SBX_ASSIGN(std::string v, value(a.c_str()));
    if (a == "--rootfs") {
      o.plan.root.lower_dirs.push_back(absolute(v));
    } else if (a == "--disk") {
      SBX_ASSIGN(o.plan.root.upper_tmpfs_size, parse_size(v, "--disk"));
    } else if (a == "--memory") {
      SBX_ASSIGN(o.plan.limits.memory_max, parse_size(v, "--memory"));
    } else if (a == "--vcpus") {
      o.plan.limits.vcpus = std::strtod(v.c_str(), nullptr);
    } else if (a == "--pids") {
      o.plan.limits.pids_max = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--seccomp") {
      o.plan.security.seccomp_profile = v == "none" ? "" : absolute(v);
    } else if (a == "--cap") {
      o.plan.security.keep_caps.push_back(v);
    } else if (a == "--bind") {
      SBX_TRY(parse_bind(v, o.plan));
    } else if (a == "--env") {
      o.proc.env.push_back(v);
    } else if (a == "--cwd") {
      o.proc.cwd = v;
    } else if (a == "--user") {
      SBX_TRY(parse_user(v, o.proc));
    } else if (a == "--userns" || a == "--uidmap" || a == "--gidmap") {
      SBX_TRY(add_mapping(a, v, o.plan));
    } else if (a == "--hostname") {
      hostname = v;
    } else if (a == "--id") {
      o.plan.id = v;
    } else if (a == "--run-root") {
      o.run_root = v;
    } else {
      return make_error("unknown option '{}' (see --help)", a);
    }
  }
  if (i + 1 >= argc) {
    return make_error("no command given (sbx-run [OPTIONS] -- COMMAND [ARGS...])");
  }
  o.proc.argv.assign(argv + i + 1, argv + argc);
  if (o.plan.userns && o.plan.userns->gid_map.empty()) {
    o.plan.userns->gid_map = o.plan.userns->uid_map;
  }
  o.plan.hostname = hostname.value_or(o.plan.id);
  bool has_path = false;
  for (const auto& e : o.proc.env) {
    has_path = has_path || e.rfind("PATH=", 0) == 0;
  }
  if (!has_path) {
    o.proc.env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  o.proc.stdin_fd = 0;
  o.proc.stdout_fd = 1;
  o.proc.stderr_fd = 2;
  return o;
}

// The sandbox's init, for the signal handler: sbx-run's own SIGINT/SIGTERM/SIGHUP/SIGQUIT go to the sandbox (init
// forwards them to the command), so sbx-run always lives to destroy it instead of leaving it running.
volatile sig_atomic_t g_init_pidfd = -1;

void forward_signal(int sig) {
  if (g_init_pidfd >= 0) {
    ::syscall(SYS_pidfd_send_signal, static_cast<int>(g_init_pidfd), sig, nullptr, 0);
  }
}

void forward_signals_to(int pidfd) {
  g_init_pidfd = pidfd;
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    ::sigaction(sig, &sa, nullptr);
  }
}

Result<ExitStatus> run(const Options& o) {
  RuntimeConfig config;
  config.run_root = o.run_root;
  SBX_ASSIGN(auto runtime, Runtime::open(config));
  Plan plan = o.plan;
  plan.main = o.proc;
  // A one-off run leaves no parent cgroup behind, not even when the create fails; one still in use by another
  // sandbox stays (rmdir refuses).
  ScopeGuard remove_parent([&runtime] { (void)runtime->cgroups().remove_parent(); });
  SBX_ASSIGN(Sandbox sandbox, runtime->create(plan));
  forward_signals_to(sandbox.init().pidfd());
  auto status = sandbox.wait();
  g_init_pidfd = -1;
  auto destroyed = runtime->destroy(plan.id);
  if (!status.ok()) {
    return std::move(status).error();
  }
  if (!destroyed.ok()) {
    return std::move(destroyed).error();
  }
  return *status;
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_args(argc, argv);
  if (!opts.ok()) {
    std::fprintf(stderr, "sbx-run: %s\n", opts.error().message().c_str());
    return 125;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "sbx-run: must run as root\n");
    return 125;
  }
  auto status = run(*opts);
  if (!status.ok()) {
    std::fprintf(stderr, "sbx-run: %s\n", status.error().message().c_str());
    return 125;
  }
  return status->shell_code();
}
