#pragma once
// User namespaces: the id maps of a sandbox's own user namespace, written by the parent (the host's root) before the
// child goes on, and the translation of ids inside to ids on the host. Every other namespace of such a sandbox is
// created together with it and so belongs to it: root inside holds capabilities over the sandbox's own objects only.
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/plan.h"

namespace sbx::rt {

// The kernel takes at most this many lines in one uid_map or gid_map.
constexpr size_t kMaxIdMapLines = 340;

// "inside host count\n" per line: the text of /proc/<pid>/uid_map (pure).
std::string format_id_map(const std::vector<IdMapping>& map);
// The host id that `inside` maps to, if any (pure).
std::optional<uint32_t> map_to_host(const std::vector<IdMapping>& map, uint32_t inside);
// Checks one map: 1..340 lines, each count > 0 without overflow, no two lines overlapping inside or on the host, id
// 0 inside mapped, host id 0 not mapped (a namespace holding the host's root isolates nothing). Errors name `field`.
Result<void> validate_id_map(const std::vector<IdMapping>& map, std::string_view field);

// The usual map of a sandbox: ids 0..count-1 inside are host ids first..first+count-1, for uids and gids alike.
UserNamespacePlan contiguous_userns(uint32_t first, uint32_t count);

// Parent side: writes the child's uid_map and gid_map. Until then the child's ids are unmapped: it waits for "G".
Result<void> write_id_maps(pid_t pid, const UserNamespacePlan& userns);
// Parent side: an fd of the child's user namespace, for idmapped mounts (MOUNT_ATTR_IDMAP).
Result<Fd> open_user_namespace(pid_t pid);

// Child side, first step after "G": become uid and gid 0 of the new namespace, with no supplementary groups (the
// host root's groups are unmapped there). Returns 0 or an errno; sets *step.
int become_namespace_root(const char** step) noexcept;

}  // namespace sbx::rt
