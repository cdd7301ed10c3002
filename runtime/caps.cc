#include "runtime/caps.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace sbx::rt {

namespace {

bool kept(const std::vector<int>& keep, int cap) { return std::find(keep.begin(), keep.end(), cap) != keep.end(); }

// Removes every capability not kept from the bounding set. Needs CAP_SETPCAP, so it runs before the uid switch.
// Goes to 63, not the build's CAP_LAST_CAP: a newer kernel's capabilities must go too (EINVAL: not one there).
int drop_bounding(const std::vector<int>& keep) noexcept {
  for (int cap = 0; cap < 64; ++cap) {
    if (kept(keep, cap)) {
      continue;
    }
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
      return errno;
    }
  }
  return 0;
}

int switch_identity(const Identity& id) noexcept {
  if (setgroups(id.groups.size(), id.groups.empty() ? nullptr : id.groups.data()) < 0) {
    return errno;
  }
  if (setresgid(id.gid, id.gid, id.gid) < 0) {
    return errno;
  }
  if (setresuid(id.uid, id.uid, id.uid) < 0) {
    return errno;
  }
  return 0;
}

// The kernel's rules, as under Docker: root holds exactly `keep` in its permitted and effective sets (and gets the
// bounding set, also `keep`, again at every execve); any other uid holds nothing, neither effective, permitted,
// inheritable nor ambient, so running as a non-root user inside a sandbox separates it from root there.
int set_process_caps(uid_t uid, const std::vector<int>& keep) noexcept {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (uid == 0) {
    for (int cap : keep) {
      data[cap / 32].permitted |= 1u << (cap % 32);
    }
    for (auto& d : data) {
      d.effective = d.permitted;
    }
  }
  if (capset(&header, data) < 0) {
    return errno;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
    return errno;
  }
  return 0;
}

}  // namespace

Result<std::vector<int>> parse_capabilities(const std::vector<std::string>& names, std::string_view field) {
  std::vector<int> caps;
  for (size_t i = 0; i < names.size(); ++i) {
    std::string name = names[i];
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (name.rfind("cap_", 0) != 0) {
      name = "cap_" + name;
    }
    cap_value_t value = 0;
    if (name.empty() || cap_from_name(name.c_str(), &value) < 0 || value > CAP_LAST_CAP) {
      return make_error("{}[{}]: unknown capability '{}'", field, i, names[i]);
    }
    if (!kept(caps, value)) {
      caps.push_back(value);
    }
  }
  return caps;
}

int drop_privileges(const Identity& id, const std::vector<int>& keep, const char** step) noexcept {
  *step = "drop capabilities from the bounding set";
  if (int err = drop_bounding(keep)) {
    return err;
  }
  *step = "keep capabilities across setuid";
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
    return errno;
  }
  *step = "switch to uid/gid";
  if (int err = switch_identity(id)) {
    return err;
  }
  *step = "set capabilities";
  if (int err = set_process_caps(id.uid, keep)) {
    return err;
  }
  *step = "clear keep-caps";
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) {
    return errno;
  }
  *step = "set no_new_privs";
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    return errno;
  }
  return 0;
}

}  // namespace sbx::rt
