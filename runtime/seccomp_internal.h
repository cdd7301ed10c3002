#pragma once
// What runtime/seccomp.cc (profiles to programs), seccomp_cache.cc (SeccompCache) and seccomp_file.cc (programs as
// files) share.
// Not part of the runtime's interface.
#include <linux/filter.h>
#include <sys/stat.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "runtime/seccomp.h"

namespace sbx::rt {

// Whether `count` instructions can be a program the kernel takes: at least one, at most BPF_MAXINSNS.
constexpr bool valid_program_length(size_t count) { return count > 0 && count <= BPF_MAXINSNS; }

// Capability names as the compiler compares them: upper case, "CAP_"-prefixed, sorted, without duplicates.
std::vector<std::string> normalize_caps(const std::vector<std::string>& caps);

// Whether `st` is something only the runtime's euid can have written: owned by it and not writable by group or
// others. `what` names it in the error ("seccomp cache dir '/var/lib/sbx/seccomp-cache'").
Result<void> check_private(const struct stat& st, std::string_view what);

// The disk cache's file of one compiled profile, `name` in the directory `dirfd`: the magic "SBXBPFC1\n", the
// length of `key` (u64, native byte order), `key`, then the instructions. `key` names everything the program was
// compiled from (see seccomp_cache.cc); a file holding another key is refused, so a hash collision or a stale file is a
// miss and never a wrong filter.
// Reading refuses a file that is not a regular file private to the euid (check_private), or that does not hold a
// whole program for exactly `key`.
Result<std::shared_ptr<const SeccompFilter>> read_cached_filter(int dirfd, const std::string& name,
                                                                std::string_view key);
// Written mode 0600 through a temp file of a name no other writer uses, synced, then renamed over `name`.
Result<void> write_cached_filter(int dirfd, const std::string& name, std::string_view key,
                                 const SeccompFilter& filter);

}  // namespace sbx::rt
