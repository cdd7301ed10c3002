// sbxd: the sbx daemon. Reads its configuration, takes over (re-adopts) the sandboxes a previous run left, and
// serves the JSON-RPC API until SIGTERM or SIGINT. Sandboxes outlive it: stopping sbxd stops no sandbox.
#include <getopt.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "daemon/daemon.h"
#include "daemon/delegation.h"
#include "daemon/log.h"

namespace {

using sbx::daemon::DaemonConfig;

constexpr const char* kDefaultConfig = "/etc/sbx/sbxd.toml";

void usage(FILE* out) {
  std::fprintf(out,
               "usage: sbxd [options]\n"
               "  -c, --config FILE          configuration (default %s)\n"
               "      --socket PATH          API socket (default /run/sbx/sbxd.sock)\n"
               "      --socket-group GROUP   group that may connect\n"
               "      --state-dir DIR        database and per-sandbox files (default /var/lib/sbx)\n"
               "      --run-dir DIR          runtime state (default /run/sbx)\n"
               "      --cgroup-parent PATH   sandbox cgroups' parent inside each hierarchy\n"
               "      --cgroup-parent-name NAME  last component of the default parent (default sbx)\n"
               "      --cgroup-root DIR      where the cgroup hierarchies are mounted (default /sys/fs/cgroup)\n"
               "      --monitor PATH         the sbx-monitor program\n"
               "      --seccomp-dir DIR      seccomp profiles, looked up by name\n"
               "      --rootfs-dir DIR       a directory non-root callers may take a rootfs from (repeatable)\n"
               "      --trusted-uid UID      a uid that may act for tenants (repeatable)\n"
               "      --log-level LEVEL      error, warn, info or debug\n"
               "  -V, --version              print the version\n"
               "  -h, --help                 this help\n",
               kDefaultConfig);
}

// Tells systemd (Type=notify) that the daemon is ready, when it runs under systemd.
void notify_ready() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') {
    return;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if (len >= sizeof addr.sun_path) {
    return;
  }
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace
  }
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return;
  }
  std::string msg = "READY=1\nSTATUS=serving\nMAINPID=" + std::to_string(::getpid());
  ::sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&addr),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
}

struct Flags {
  std::string config = kDefaultConfig;
  bool config_given = false;
  std::vector<std::pair<int, std::string>> overrides;
};

enum FlagId { kSocket = 1000, kSocketGroup, kStateDir, kRunDir, kCgParent, kCgParentName, kCgRoot, kMonitor,
              kSeccompDir, kRootfsDir, kTrustedUid, kLogLevel };

int parse_flags(int argc, char** argv, Flags* f) {
  static const option opts[] = {
      {"config", required_argument, nullptr, 'c'},       {"socket", required_argument, nullptr, kSocket},
      {"socket-group", required_argument, nullptr, kSocketGroup},
      {"state-dir", required_argument, nullptr, kStateDir}, {"run-dir", required_argument, nullptr, kRunDir},
      {"cgroup-parent", required_argument, nullptr, kCgParent},
      {"cgroup-parent-name", required_argument, nullptr, kCgParentName},
      {"cgroup-root", required_argument, nullptr, kCgRoot}, {"monitor", required_argument, nullptr, kMonitor},
      {"seccomp-dir", required_argument, nullptr, kSeccompDir},
      {"rootfs-dir", required_argument, nullptr, kRootfsDir},
      {"trusted-uid", required_argument, nullptr, kTrustedUid},
      {"log-level", required_argument, nullptr, kLogLevel}, {"version", no_argument, nullptr, 'V'},
      {"help", no_argument, nullptr, 'h'},                 {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "c:Vh", opts, nullptr)) != -1) {
    switch (c) {
      case 'c':
        f->config = optarg;
        f->config_given = true;
        break;
      case 'V':
        std::printf("sbxd %s\n", SBX_VERSION);
        std::exit(0);
      case 'h':
        usage(stdout);
        std::exit(0);
      case '?':
        usage(stderr);
        return 2;
      default:
        f->overrides.emplace_back(c, optarg);
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "sbxd: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  return 0;
}

bool apply_overrides(const Flags& f, DaemonConfig* c) {
  bool rootfs_reset = false, trusted_reset = false;
  for (const auto& [id, v] : f.overrides) {
    switch (id) {
      case kSocket: c->socket = v; break;
      case kSocketGroup: c->socket_group = v; break;
      case kStateDir: c->state_dir = v; break;
      case kRunDir: c->run_dir = v; break;
      case kCgParent: c->cgroup_parent = v; break;
      case kCgParentName: c->cgroup_parent_name = v; break;
      case kCgRoot: c->cgroup_root = v; break;
      case kMonitor: c->monitor = v; break;
      case kSeccompDir: c->seccomp_dir = v; break;
      case kLogLevel: c->log_level = v; break;
      case kRootfsDir:
        if (!rootfs_reset) {
          c->rootfs_dirs.clear();
          rootfs_reset = true;
        }
        c->rootfs_dirs.push_back(v);
        break;
      case kTrustedUid: {
        char* end = nullptr;
        unsigned long uid = std::strtoul(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0') {
          std::fprintf(stderr, "sbxd: --trusted-uid: '%s' is not a uid\n", v.c_str());
          return false;
        }
        if (!trusted_reset) {
          c->trusted_uids.clear();
          trusted_reset = true;
        }
        c->trusted_uids.push_back(static_cast<uint32_t>(uid));
        break;
      }
      default: break;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (int rc = parse_flags(argc, argv, &flags); rc != 0) {
    return rc;
  }
  auto config = sbx::daemon::load_config(flags.config, flags.config_given);
  if (!config.ok()) {
    std::fprintf(stderr, "sbxd: %s\n", config.error().message().c_str());
    return 1;
  }
  if (!apply_overrides(flags, &*config)) {
    return 2;
  }
  sbx::daemon::set_log_level(sbx::daemon::parse_log_level(config->log_level));
  if (::geteuid() != 0) {
    std::fprintf(stderr, "sbxd: must run as root (it creates namespaces, mounts and cgroups)\n");
    return 1;
  }
  if (auto d = sbx::daemon::take_v2_delegation(&*config); !d.ok()) {
    sbx::daemon::log_error("start: {}", d.error().message());
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  uv_loop_init(&loop);
  auto daemon = std::make_unique<sbx::daemon::Daemon>(&loop, std::move(*config));
  if (auto r = daemon->start(); !r.ok()) {
    sbx::daemon::log_error("start: {}", r.error().message());
    daemon.reset();
    uv_run(&loop, UV_RUN_NOWAIT);
    return 1;
  }
  uv_signal_t sigterm, sigint;
  uv_signal_init(&loop, &sigterm);
  uv_signal_init(&loop, &sigint);
  sigterm.data = sigint.data = daemon.get();
  auto on_signal = [](uv_signal_t* h, int sig) {
    sbx::daemon::log_info("{}: shutting down (sandboxes keep running)", sigabbrev_np(sig));
    static_cast<sbx::daemon::Daemon*>(h->data)->shutdown();
    uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
    uv_stop(h->loop);
  };
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_unref(reinterpret_cast<uv_handle_t*>(&sigint));
  notify_ready();
  uv_run(&loop, UV_RUN_DEFAULT);
  daemon.reset();
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&sigterm))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
  }
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&sigint))) {
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}
