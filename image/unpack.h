#pragma once
// The safe layer unpacker: every entry of an EntrySource is created relative to the layer's root fd, each parent
// reached with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so nothing
// lands outside the layer whatever symlinks earlier entries made. Refused (the whole layer fails, naming the entry):
// absolute paths, ".." components, paths longer than PATH_MAX, parents that are symlinks, hardlinks to anything but
// an already-unpacked non-directory of this layer, whiteout names of unknown shape. Dropped and counted: device
// nodes, sockets, xattrs other than security.capability and user.*. Whiteouts become overlayfs whiteouts
// (".wh.NAME": a 0/0 character device; ".wh..wh..opq": trusted.overlay.opaque=y on the directory).
#include <cstdint>

#include "base/error.h"
#include "image/entry.h"
#include "image/limits.h"

namespace sbx::image {

struct Dropped {
  uint64_t devices = 0;
  uint64_t xattrs = 0;
  uint64_t other = 0;

  Dropped& operator+=(const Dropped& o) {
    devices += o.devices;
    xattrs += o.xattrs;
    other += o.other;
    return *this;
  }
};

struct UnpackStats {
  uint64_t entries = 0;
  Dropped dropped;
};

// Unpacks `source` into the empty directory open at `root_fd` (O_RDONLY | O_DIRECTORY, borrowed), counting entries
// and content against `budget` as it goes. Directory times are set last, deepest first.
Result<UnpackStats> unpack_layer(int root_fd, EntrySource& source, Budget& budget);

// True for the xattrs a layer keeps: security.capability and user.*.
bool keep_xattr(std::string_view name);

}  // namespace sbx::image
