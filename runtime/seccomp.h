#pragma once
// Seccomp: OCI-format JSON profiles (the format Docker and podman use), compiled to BPF once with libseccomp and
// cached, then applied in the child right before execve.
//
// Parent side: SeccompCache::load(path) parses, validates and compiles a profile, keyed by the file's identity
// (device, inode, size, mtime) so that a changed file is compiled again and an unchanged one never is.
// With a disk dir (SeccompCache::set_disk_dir; RuntimeConfig::seccomp_cache_dir), a compiled program also persists
// there as a file, so that every later process given the same dir (such as each sandbox's monitor) loads it instead of
// parsing and compiling the profile: the file is named by a hash of, and holds, a key of everything the program was
// compiled from (a format version, the libseccomp version and API level, the native architecture, the kept caps and
// the profile's whole text). A file whose key differs from the wanted one byte for byte, that is damaged, or that is
// not private to the runtime's euid is a miss: the profile is compiled and the file written again (0600, temp file and
// rename). Neither a bad file nor a dir that cannot be written ever fails a load.
// Child side: apply_seccomp_filter() is a single syscall on a program built earlier; it allocates nothing.
// The runtime stores each sandbox's compiled filter in its run dir (write/read_seccomp_filter): an exec loads it
// instead of compiling the profile again.
#include <linux/filter.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace sbx::rt {

// The parsed, validated form of a profile. Pure data: parsing needs no libseccomp and no privileges.
enum class SeccompAction { kAllow, kErrno, kKill, kKillProcess, kTrap, kLog, kTrace };

enum class SeccompOp { kNotEqual, kLessThan, kLessEqual, kEqual, kGreaterEqual, kGreaterThan, kMaskedEqual };

struct SeccompArg {
  unsigned index = 0;  // 0..5
  uint64_t value = 0;
  uint64_t value_two = 0;  // the mask's compare value for kMaskedEqual
  SeccompOp op = SeccompOp::kEqual;
};

struct SeccompRule {
  std::vector<std::string> names;  // syscall names, each known to libseccomp
  SeccompAction action = SeccompAction::kAllow;
  std::optional<unsigned> errno_ret;  // for kErrno; defaults to the profile's defaultErrnoRet, else EPERM
  std::vector<SeccompArg> args;       // all must match (AND)
  // OCI/Docker "includes"/"excludes": the rule applies only when the conditions hold for the plan.
  std::vector<std::string> includes_caps, excludes_caps, includes_arches, excludes_arches;
};

struct SeccompProfile {
  SeccompAction default_action = SeccompAction::kErrno;
  unsigned default_errno = 1;  // EPERM
  std::vector<std::string> architectures;  // SCMP_ARCH_X86_64 ...; empty means the native one only
  std::vector<SeccompRule> rules;
};

// Parses and validates a profile. Errors name the field: "syscalls[3].names[1]: unknown syscall 'mountx'".
// `source` names the file in messages.
Result<SeccompProfile> parse_seccomp_profile(std::string_view json, std::string_view source);

// A compiled BPF program, ready for seccomp(SECCOMP_SET_MODE_FILTER).
struct SeccompFilter {
  std::vector<sock_filter> insns;
};

// Compiles a profile for a sandbox that keeps the capabilities `kept_caps` (names like "CAP_SYS_ADMIN"; they decide
// "includes"/"excludes" on caps).
Result<std::shared_ptr<const SeccompFilter>> compile_seccomp_profile(const SeccompProfile& profile,
                                                                     const std::vector<std::string>& kept_caps);

// Loads, compiles and caches profiles by path. Not thread-safe; one per runtime.
class SeccompCache {
 public:
  // Also keeps compiled programs as files in `dir`, creating it (mode 0700) if missing; "" keeps them in memory only.
  // Refuses a `dir` that is not a directory owned by the euid, or that group or others may write: a file in it
  // decides which syscalls sandboxed code may make.
  Result<void> set_disk_dir(const std::string& dir);
  Result<std::shared_ptr<const SeccompFilter>> load(const std::string& path, const std::vector<std::string>& kept_caps);
  size_t compiled_count() const { return compiles_; }  // how many times this cache actually compiled a profile
  size_t disk_hits() const { return disk_hits_; }       // how many compiles the disk dir saved it

 private:
  struct Entry {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0;
    std::shared_ptr<const SeccompFilter> filter;
  };
  // The program of a profile's text for the normalized `caps`: from the disk dir when it holds it, else compiled
  // (and then stored there).
  Result<std::shared_ptr<const SeccompFilter>> load_or_compile(const std::string& text, const std::string& source,
                                                               const std::vector<std::string>& caps);

  std::map<std::string, Entry> entries_;  // key: path + '\0' + sorted kept caps
  Fd disk_dir_;                           // the disk dir, if any
  size_t compiles_ = 0;
  size_t disk_hits_ = 0;
};

// The compiled filter as a file, so that a later process entering the sandbox does not compile its profile again:
// the magic "SBXBPF1\n", then the instructions (struct sock_filter, native byte order). Written with mode 0600 through
// a temp file and rename, so a reader sees the whole filter or none.
Result<void> write_seccomp_filter(const std::string& path, const SeccompFilter& filter);
// Reads a filter written by write_seccomp_filter; fails with ENOENT when there is none, and refuses a file that is not
// a whole, non-empty program.
Result<std::shared_ptr<const SeccompFilter>> read_seccomp_filter(const std::string& path);

// Child side: installs the filter on the calling thread. no_new_privs must already be set.
// Returns 0 or an errno value; async-signal-safe.
int apply_seccomp_filter(const SeccompFilter& filter) noexcept;

}  // namespace sbx::rt
