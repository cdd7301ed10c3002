// sbxd-config-defaults FILE: parses FILE with sbxd's own config reader and checks that every value equals the
// built-in default. etc/sbxd.toml sets every key to its default, so this fails when the sample (and with it
// man/sbxd.toml.5, which the docs check keeps in step) no longer matches daemon/config.h, or no longer parses.
// Exit status: 0 when it parses and matches, 1 otherwise (each difference on stderr).
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "daemon/config.h"

namespace {

using sbx::daemon::DaemonConfig;

template <typename T>
std::string show(const T& v) {
  return fmt::format("{}", v);
}
template <typename T>
std::string show(const std::optional<T>& v) {
  return v ? fmt::format("{}", *v) : std::string("none");
}

// Reports each field whose value differs from the default.
class Comparer {
 public:
  explicit Comparer(std::string file) : file_(std::move(file)) {}

  template <typename T>
  void field(const char* name, const T& got, const T& want) {
    if (!(got == want)) {
      std::fprintf(stderr, "%s: %s is %s, the default is %s\n", file_.c_str(), name, show(got).c_str(),
                   show(want).c_str());
      ++differences_;
    }
  }
  int differences() const { return differences_; }

 private:
  std::string file_;
  int differences_ = 0;
};

void compare_daemon(Comparer& c, const DaemonConfig& got, const DaemonConfig& d) {
  c.field("[daemon] socket", got.socket, d.socket);
  c.field("[daemon] socket_group", got.socket_group, d.socket_group);
  c.field("[daemon] socket_mode", got.socket_mode, d.socket_mode);
  c.field("[daemon] state_dir", got.state_dir, d.state_dir);
  c.field("[daemon] run_dir", got.run_dir, d.run_dir);
  c.field("[daemon] monitor", got.monitor, d.monitor);
  c.field("[daemon] seccomp_dir", got.seccomp_dir, d.seccomp_dir);
  c.field("[daemon] trusted_uids", got.trusted_uids, d.trusted_uids);
  c.field("[daemon] rootfs_dirs", got.rootfs_dirs, d.rootfs_dirs);
  c.field("[daemon] log_level", got.log_level, d.log_level);
  c.field("[cgroup] mode", got.cgroup_mode, d.cgroup_mode);
  c.field("[cgroup] root", got.cgroup_root, d.cgroup_root);
  c.field("[cgroup] parent", got.cgroup_parent, d.cgroup_parent);
  c.field("[cgroup] parent_name", got.cgroup_parent_name, d.cgroup_parent_name);
}

void compare_sandbox(Comparer& c, const DaemonConfig& got, const DaemonConfig& d) {
  c.field("[defaults] memory", got.memory, d.memory);
  c.field("[defaults] pids", got.pids, d.pids);
  c.field("[defaults] vcpus", got.vcpus, d.vcpus);
  c.field("[defaults] disk", got.disk, d.disk);
  c.field("[defaults] ttl", got.ttl, d.ttl);
  c.field("[defaults] seccomp", got.seccomp, d.seccomp);
  c.field("[defaults] capabilities", got.capabilities, d.capabilities);
  c.field("[limits] max_request_bytes", got.max_request_bytes, d.max_request_bytes);
  c.field("[limits] max_file_bytes", got.max_file_bytes, d.max_file_bytes);
  c.field("[limits] exec_output_limit", got.exec_output_limit, d.exec_output_limit);
  c.field("[limits] max_exec_output_limit", got.max_exec_output_limit, d.max_exec_output_limit);
  c.field("[limits] log_max_bytes", got.log_max_bytes, d.log_max_bytes);
  c.field("[limits] max_sandboxes", got.max_sandboxes, d.max_sandboxes);
  c.field("[limits] max_sandboxes_per_owner", got.max_sandboxes_per_owner, d.max_sandboxes_per_owner);
  c.field("[limits] max_concurrent_execs", got.max_concurrent_execs, d.max_concurrent_execs);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sbxd-config-defaults FILE\n");
    return 2;
  }
  auto config = sbx::daemon::load_config(argv[1], true);
  if (!config.ok()) {
    std::fprintf(stderr, "sbxd-config-defaults: %s\n", config.error().message().c_str());
    return 1;
  }
  Comparer c(argv[1]);
  const DaemonConfig defaults;
  compare_daemon(c, *config, defaults);
  compare_sandbox(c, *config, defaults);
  if (c.differences() != 0) {
    std::fprintf(stderr, "%d value(s) differ from daemon/config.h's defaults\n", c.differences());
    return 1;
  }
  std::printf("%s: parses, every value is the default\n", argv[1]);
  return 0;
}
