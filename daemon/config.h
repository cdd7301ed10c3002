#pragma once
// sbxd's configuration: /etc/sbx/sbxd.toml (every key optional, each documented with its default in
// man/sbxd.toml.5), then command-line flags over it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"

namespace sbx::daemon {

struct DaemonConfig {
  // [daemon]
  std::string socket = "/run/sbx/sbxd.sock";
  std::string socket_group;  // group name or number that may connect; empty: root's group only
  uint32_t socket_mode = 0660;
  std::string state_dir = "/var/lib/sbx";
  std::string run_dir = "/run/sbx";
  std::string monitor;      // the sbx-monitor program; empty: the installed one
  bool spare_monitor = true;  // keep one `sbx-monitor sandbox --spare` started ahead of the next create
  std::string image_tool;   // the sbx-image program; empty: the installed one
  std::string seccomp_dir;  // where profiles are looked up by name; empty: the installed ones
  std::vector<uint32_t> trusted_uids;  // may act for a named tenant (the HTTP shim's uid)
  std::vector<std::string> rootfs_dirs = {"/var/lib/sbx/rootfs"};  // where non-root callers' rootfs must lie
  std::string log_level = "info";  // error | warn | info | debug
  // Where CDI specs are read from (the operator's allow-list of devices a request may name), later ones winning.
  std::vector<std::string> cdi_spec_dirs = {"/etc/cdi", "/var/run/cdi"};

  // [cgroup]
  std::string cgroup_mode = "auto";  // auto | v2 | v1
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent;  // path inside each hierarchy; empty: <sbxd's own cgroup>/<cgroup_parent_name>
  std::string cgroup_parent_name = "sbx";

  // [defaults]: what a sandbox gets when its request does not say
  std::optional<uint64_t> memory = 1ull << 30;
  std::optional<uint64_t> pids = 1024;
  std::optional<double> vcpus;
  std::optional<uint64_t> disk;
  int64_t ttl = 0;  // seconds; 0: none
  std::string seccomp = "default";
  std::vector<std::string> capabilities = {"CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER",           "CAP_FSETID",
                                           "CAP_KILL",   "CAP_SETGID",       "CAP_SETUID",           "CAP_SETPCAP",
                                           "CAP_SETFCAP", "CAP_SYS_CHROOT",  "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"};

  // [limits]
  uint64_t max_request_bytes = 16ull << 20;
  uint64_t max_file_bytes = 64ull << 20;
  uint64_t exec_output_limit = 64ull << 20;   // default output cap of an exec
  uint64_t max_exec_output_limit = 1ull << 30;  // the most a request may ask for
  uint64_t log_max_bytes = 8ull << 20;         // main command's log, both files together
  int64_t max_sandboxes = 1000;
  int64_t max_sandboxes_per_owner = 100;
  int64_t max_concurrent_execs = 256;
  int64_t history_days = 90;  // exec records and events older than this are deleted; 0: kept forever

  // [images]: what one import may hold, against archive bombs
  int64_t image_max_entries = 300000;            // files, directories and links over all layers
  uint64_t image_max_bytes = 32ull << 30;        // unpacked content over all layers
  uint64_t image_max_archive_bytes = 64ull << 30;  // the archive itself (and a streamed upload)
  int64_t max_concurrent_imports = 4;

  // [network]: bridge mode (a sandbox in the default mode "none" has only lo)
  std::string network_default = "none";  // the mode of a sandbox whose request does not say: none | bridge
  std::string bridge = "sbx0";
  std::string subnet = "10.66.0.0/16";  // sandboxes' addresses; the bridge (gateway, DNS forwarder) takes the first
  uint32_t mtu = 1500;
  std::vector<std::string> dns_servers;  // the forwarder's upstreams; empty: the nameservers of /etc/resolv.conf
  std::string nft_table = "sbx";         // the `inet` table holding every sandbox's rules
  bool enable_ip_forward = true;         // set net.ipv4.ip_forward=1 when the bridge is set up

  // [userns]: every sandbox gets a user namespace of its own, with `size` ids from a slot of this pool: slot N is
  // host ids first + N * size onwards. The pool must not overlap /etc/subuid, /etc/subgid or any host user or group.
  bool userns = true;  // false: sandboxes share the host's user namespace unless a request asks (root only)
  uint32_t userns_first = 1000000000;
  uint32_t userns_size = 65536;
  uint32_t userns_count = 4096;
};

// Reads a TOML file over the defaults. `required`: a missing file is an error (else the defaults stand).
// Unknown keys are errors: a typo must not silently leave a default in place.
Result<DaemonConfig> load_config(const std::string& path, bool required);
Result<DaemonConfig> parse_config(std::string_view toml_text, std::string_view source);

// The installed locations, fixed at build time.
std::string default_monitor_path();
std::string default_seccomp_dir();
std::string default_image_tool_path();

}  // namespace sbx::daemon
