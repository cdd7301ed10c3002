#pragma once
// Entry paths and whiteout names: the pure checks the unpacker applies to every name an archive gives it.
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace sbx::image {

// A checked relative path inside a layer, split into components ("./a//b/" -> {"a", "b"}). No component is empty,
// "." or "..". No components: the layer root itself.
struct EntryPath {
  std::vector<std::string> parts;

  bool is_root() const { return parts.empty(); }
  // "a/b"; "." for the root.
  std::string str() const;
  // The parent's path ("." for a top-level name) and the last component.
  std::string parent_str() const;
  const std::string& name() const { return parts.back(); }
  // The path of the first `n` components ("." for none).
  std::string prefix_str(size_t n) const;
};

// Checks and normalises an archive entry's path: refuses absolute paths, ".." components, paths longer than PATH_MAX
// and components longer than NAME_MAX; folds leading "./", "." components and repeated or trailing slashes.
Result<EntryPath> normalize_entry_path(std::string_view raw);

// The overlayfs form of an archive's whiteout names.
enum class WhiteoutKind {
  kNone,    // an ordinary name
  kFile,    // ".wh.NAME": NAME is deleted (a 0/0 character device named NAME)
  kOpaque,  // ".wh..wh..opq": the parent directory hides the lower layers (trusted.overlay.opaque=y)
};

struct Whiteout {
  WhiteoutKind kind = WhiteoutKind::kNone;
  std::string target;  // NAME for kFile
};

// Maps a file name (one component) to its whiteout meaning; refuses ".wh." names of any other shape (".wh.",
// ".wh..", aufs' ".wh..wh.plnk" and the like).
Result<Whiteout> classify_whiteout(std::string_view name);

}  // namespace sbx::image
