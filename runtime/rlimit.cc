#include "runtime/rlimit.h"

#include <sys/resource.h>

namespace sbx::rt {

namespace {

constexpr uint64_t kMaxNofile = 1 << 20;  // fs.nr_open's default ceiling

int set_limit(int resource, uint64_t value) noexcept {
  struct rlimit rl {};
  rl.rlim_cur = value;
  rl.rlim_max = value;
  return setrlimit(resource, &rl) < 0 ? errno : 0;
}

}  // namespace

Result<void> validate_rlimits(const Rlimits& limits) {
  if (limits.nofile && (*limits.nofile < 16 || *limits.nofile > kMaxNofile)) {
    return make_error("rlimits.nofile: {} is outside 16..{}", *limits.nofile, kMaxNofile);
  }
  if (limits.nproc && *limits.nproc < 1) {
    return make_error("rlimits.nproc: must be at least 1");
  }
  if (limits.fsize && *limits.fsize < 4096) {
    return make_error("rlimits.fsize: {} is below the minimum of 4096 bytes", *limits.fsize);
  }
  return ok();
}

int apply_rlimits(const Rlimits& limits, const char** step) noexcept {
  *step = "set rlimit core";
  if (int err = set_limit(RLIMIT_CORE, limits.core)) {
    return err;
  }
  if (limits.nofile) {
    *step = "set rlimit nofile";
    if (int err = set_limit(RLIMIT_NOFILE, *limits.nofile)) {
      return err;
    }
  }
  if (limits.nproc) {
    *step = "set rlimit nproc";
    if (int err = set_limit(RLIMIT_NPROC, *limits.nproc)) {
      return err;
    }
  }
  if (limits.fsize) {
    *step = "set rlimit fsize";
    if (int err = set_limit(RLIMIT_FSIZE, *limits.fsize)) {
      return err;
    }
  }
  return 0;
}

}  // namespace sbx::rt
