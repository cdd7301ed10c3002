#pragma once
// The image config's User resolved to numeric ids through the image's own /etc/passwd and /etc/group, and the
// lookup of a file in a stack of layers as overlayfs will show it (whiteouts and opaque directories honoured).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace sbx::image {

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
};

// The well-formed lines of a passwd / group file; comments, NIS "+"/"-" lines and malformed lines are skipped.
std::vector<PasswdEntry> parse_passwd(std::string_view text);
std::vector<GroupEntry> parse_group(std::string_view text);

struct UserIds {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Resolves "", "user", "user:group" (each part a name or a number): "" is 0:0; a user without a group takes its
// passwd entry's group (0 for a uid the file does not list). `passwd` / `group` are nullopt when the image has no
// such file. A name that cannot be resolved is an error.
Result<UserIds> resolve_user(std::string_view user, const std::optional<std::string>& passwd,
                             const std::optional<std::string>& group);

// What one layer holds at a path, as the lookup below needs it.
enum class NodeKind { kMissing, kFile, kDir, kWhiteout, kOther };
struct Node {
  NodeKind kind = NodeKind::kMissing;
  bool opaque = false;  // a directory marked trusted.overlay.opaque=y
};
using LayerStat = std::function<Node(size_t layer, const std::string& path)>;

// The layer (0 = top) whose regular file at `path` ("etc/passwd") the merged view shows, or nullopt when the view
// has no regular file there (missing, deleted by a whiteout, hidden by an opaque directory or a non-directory).
std::optional<size_t> find_visible_file(size_t layers, std::string_view path, const LayerStat& stat);

}  // namespace sbx::image
