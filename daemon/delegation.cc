#include "daemon/delegation.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>

#include "base/file.h"
#include "daemon/log.h"

namespace sbx::daemon {

namespace {

constexpr const char* kLeaf = "supervisor";

bool is_cgroup2(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// The "0::/path" line of /proc/self/cgroup.
Result<std::string> own_v2_cgroup() {
  SBX_ASSIGN(std::string text, read_file("/proc/self/cgroup"));
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (line.rfind("0::", 0) == 0) {
      return line.substr(3);
    }
    if (end == std::string::npos) {
      break;
    }
    pos = end + 1;
  }
  return make_error("/proc/self/cgroup has no cgroup v2 line");
}

// Enables for the children of `dir` every controller it has among those sandboxes use.
Result<void> enable_for_children(const std::string& dir) {
  SBX_ASSIGN(std::string have, read_file(dir + "/cgroup.controllers"));
  std::string request;
  for (const char* c : {"cpu", "memory", "pids", "io"}) {
    if ((" " + trim(have) + " ").find(std::string(" ") + c + " ") != std::string::npos) {
      request += std::string(request.empty() ? "+" : " +") + c;
    }
  }
  if (request.empty()) {
    return ok();
  }
  return write_file(dir + "/cgroup.subtree_control", request);
}

}  // namespace

Result<bool> take_v2_delegation(DaemonConfig* config) {
  if (config->cgroup_mode == "v1" || !config->cgroup_parent.empty() || std::getenv("INVOCATION_ID") == nullptr ||
      !is_cgroup2(config->cgroup_root)) {
    return false;
  }
  SBX_ASSIGN(std::string own, own_v2_cgroup());
  if (own == "/" || own.empty()) {
    return false;  // never at a hierarchy's root
  }
  const std::string suffix = std::string("/") + kLeaf;
  if (own.size() > suffix.size() && own.compare(own.size() - suffix.size(), suffix.size(), suffix) == 0) {
    own = own.substr(0, own.size() - suffix.size());  // already in the leaf (a restart that kept the cgroup)
  }
  const std::string service = config->cgroup_root + own;
  const std::string leaf = service + "/" + kLeaf;
  if (::mkdir(leaf.c_str(), 0755) < 0 && errno != EEXIST) {
    return sys_error("create '{}'", leaf);
  }
  SBX_TRY_CTX(write_file(leaf + "/cgroup.procs", std::to_string(::getpid())), "move sbxd into '{}'", leaf);
  SBX_TRY_CTX(enable_for_children(service), "enable controllers in the delegated cgroup '{}'", service);
  config->cgroup_parent = own + "/" + config->cgroup_parent_name;
  log_info("cgroup v2 delegation: sbxd runs in {}/{}; sandboxes go below {}", own, kLeaf, config->cgroup_parent);
  return true;
}

}  // namespace sbx::daemon
