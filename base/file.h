#pragma once
// Small file helpers that report what failed on which path. All opens are O_CLOEXEC.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace sbx {

// Opens `path` relative to `dirfd` (AT_FDCWD for absolute/cwd-relative paths).
Result<Fd> open_at(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// Whole-file read, for small kernel files (/proc, cgroupfs). Refuses files over `limit` bytes.
Result<std::string> read_file(const std::string& path, size_t limit = 1 << 20);
Result<std::string> read_file_at(int dirfd, const std::string& path, size_t limit = 1 << 20);

// Reads an fd from where it stands to EOF; refuses more than `limit` bytes.
Result<std::string> read_all(int fd, size_t limit);

// Writes `data` with one write(2) as cgroupfs and procfs expect, without O_CREAT.
Result<void> write_file(const std::string& path, std::string_view data);
Result<void> write_file_at(int dirfd, const std::string& path, std::string_view data);

// Creates or truncates a regular file and writes `data` (for files we own, not kernel files).
Result<void> create_file(const std::string& path, std::string_view data, mode_t mode = 0644);

// Writes all of `data` to an fd, retrying on short writes and EINTR.
Result<void> write_all(int fd, std::string_view data);

// Parses a decimal unsigned integer, allowing surrounding whitespace.
Result<uint64_t> parse_u64(std::string_view text);

// A pipe, both ends O_CLOEXEC: {read end, write end}.
Result<std::pair<Fd, Fd>> make_pipe();
// The names in a directory, without "." and "..", in no particular order.
Result<std::vector<std::string>> list_dir(const std::string& path);
// mkdir -p; existing directories are fine.
Result<void> make_dirs(const std::string& path, mode_t mode = 0755);

// Recursively removes `path` without following symlinks and without crossing into other mounts.
// A missing path is success.
Result<void> remove_tree(const std::string& path);
// As remove_tree, for the entry `name` of the directory `dirfd` (`shown` names it in errors).
Result<void> remove_tree_at(int dirfd, const std::string& name, const std::string& shown);

std::string trim(std::string_view s);

}  // namespace sbx
