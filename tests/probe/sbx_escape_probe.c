// sbx-escape-probe: runs inside an sbx sandbox and tries, harmlessly, to get out of it. Every check is an attempt
// that must be refused (or a fact that must hold) for the sandbox to pass.
//
//   sbx-escape-probe [OPTION...] [CHECK|GROUP...]      no CHECK: all of them
//     --expect-uid N        the probe must run as uid N (real, effective and saved)    (check "uid")
//     --expect-host-uid N   uid 0 inside must map to host uid N                        (check "userns")
//     --allow-dev NAME      one more entry allowed in /dev (repeatable)                (check "dev_entries")
//     --host-secret PATH    a host path that must not be visible (repeatable)          (check "host_secret")
//     --host-name NAME      the host's hostname: the sandbox's must differ             (check "host_name")
//     --host-port PORT      a port listening on the host's 127.0.0.1: connect must fail (check "host_port")
//     --host-abstract NAME  a host abstract unix socket ("@NAME"): connect must fail    (check "host_abstract")
//     --max-pids N          /proc must list fewer than N processes (default 50)        (check "proc_pids")
//     --list                prints "GROUP NAME" for every check and exits 0
//
// Checks, by group (a GROUP argument selects all of its checks):
//   identity  userns uid no_new_privs seccomp caps_nonroot (uid != 0: no capability at all) caps_root (uid 0: no
//             capability beyond Docker's default set)
//   fds       fds (nothing inherited beyond 0, 1, 2)
//   devices   dev_entries (/dev holds only the standard entries) dev_block (no block device opens) dev_mknod
//   syscalls  mount fsopen umount unshare_user unshare_mount clone_newuser setns_mnt bpf perf_event_open keyctl
//             add_key ptrace_init userfaultfd io_uring_setup open_by_handle_at kexec_load kexec_file_load
//             init_module finit_module socket_packet socket_raw sethostname
//   host      proc_pids init_cmdline (pid 1 is sbx-init) host_secret host_name host_port host_abstract
//   writes    proc_sys_hostname proc_sys_core_pattern sysrq_trigger sys_write
// A syscall refused with EPERM or EACCES, or missing (ENOSYS), or a seccomp kill (SIGSYS) passes; any other
// failure means the permission check passed, and fails.
//
// Output: one line per check, "PASS name: detail", "FAIL name: detail" or "SKIP name: reason" (neither passed nor
// failed), then "N passed, N failed" alone on the last line. Exit 0 when nothing failed, 1 otherwise, 2 on a usage
// error or when it refuses to run.
//
// Safety: before anything else it refuses (exit 2) unless /proc/self/uid_map is readable and maps no id to host
// uid 0, so it never runs as host root. Each check runs in a child of its own (so unshare, setns or a seccomp kill
// touch only that child) with a 10 s alarm. Attempts are harmless even when they succeed: mounts go on a directory
// the probe made and are undone, kexec_load names a foreign architecture (EINVAL once permitted, before any
// action), modules are empty images or a bad fd, ptrace detaches, /proc/sysrq-trigger is never written, and any
// other write puts back the value just read. reboot is never attempted; unknown character devices are never opened.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

// Syscalls added after the unified numbering (5.1) have one number on every architecture.
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif

enum { kPass, kFail, kSkip };
enum { kMaxList = 32, kDetail = 480, kCheckSeconds = 10, kDefaultMaxPids = 50 };
static const unsigned long kForeignKexecArch = 0xfffe0000UL;  // KEXEC_ARCH_MASK bits of no real architecture
static const unsigned long kBadKexecFileFlags = 0x80000000UL;  // not a KEXEC_FILE_* flag

struct config {
  long long expect_uid;       // -1: not given
  long long expect_host_uid;  // -1: not given
  const char* allow_dev[kMaxList];
  int n_allow_dev;
  const char* host_secret[kMaxList];
  int n_host_secret;
  const char* host_name;
  int host_port;  // 0: not given
  const char* host_abstract;
  long max_pids;
  const char* scratch;  // a directory the probe made for its attempts, or NULL
  int report_fd;        // the child's end of the result pipe (not an inherited fd)
};

struct outcome {
  int verdict;
  char detail[kDetail];
};

struct check {
  const char* group;
  const char* name;
  bool attempt;  // a syscall attempt: death by SIGSYS (seccomp kill) counts as refused
  void (*run)(const struct config* c, struct outcome* o);
};

// ---- results -------------------------------------------------------------------------------------------------

static const struct {
  int err;
  const char* name;
} kErrnoNames[] = {
    {EPERM, "EPERM"},         {ENOENT, "ENOENT"},       {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},         {EIO, "EIO"},             {ENXIO, "ENXIO"},
    {ENOEXEC, "ENOEXEC"},     {EBADF, "EBADF"},         {ECHILD, "ECHILD"},
    {EAGAIN, "EAGAIN"},       {ENOMEM, "ENOMEM"},       {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},       {EBUSY, "EBUSY"},         {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},         {ENODEV, "ENODEV"},       {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},       {EINVAL, "EINVAL"},       {EMFILE, "EMFILE"},
    {ENOTTY, "ENOTTY"},       {ENOSPC, "ENOSPC"},       {EROFS, "EROFS"},
    {ELOOP, "ELOOP"},         {ENOSYS, "ENOSYS"},       {ENAMETOOLONG, "ENAMETOOLONG"},
    {EUSERS, "EUSERS"},       {ENOTSOCK, "ENOTSOCK"},   {EPROTONOSUPPORT, "EPROTONOSUPPORT"},
    {EOPNOTSUPP, "EOPNOTSUPP"}, {EAFNOSUPPORT, "EAFNOSUPPORT"}, {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
    {ENETUNREACH, "ENETUNREACH"}, {ECONNRESET, "ECONNRESET"}, {ETIMEDOUT, "ETIMEDOUT"},
    {ECONNREFUSED, "ECONNREFUSED"}, {EHOSTUNREACH, "EHOSTUNREACH"}, {ESTALE, "ESTALE"},
    {ENOKEY, "ENOKEY"},       {EKEYREVOKED, "EKEYREVOKED"}, {EKEYREJECTED, "EKEYREJECTED"},
    {EDQUOT, "EDQUOT"},
};

static const char* errno_name(int err) {
  static char other[32];
  for (size_t i = 0; i < sizeof kErrnoNames / sizeof kErrnoNames[0]; ++i) {
    if (kErrnoNames[i].err == err) {
      return kErrnoNames[i].name;
    }
  }
  snprintf(other, sizeof other, "errno %d", err);
  return other;
}

__attribute__((format(printf, 3, 0))) static void verdict(struct outcome* o, int v, const char* fmt, va_list ap) {
  o->verdict = v;
  vsnprintf(o->detail, sizeof o->detail, fmt, ap);
}

__attribute__((format(printf, 2, 3))) static void pass(struct outcome* o, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verdict(o, kPass, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void fail(struct outcome* o, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verdict(o, kFail, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void skip(struct outcome* o, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verdict(o, kSkip, fmt, ap);
  va_end(ap);
}

// The errnos that mean "refused": not permitted, or not available on this kernel (ENOSYS).
static const int kDenied[] = {EPERM, EACCES, ENOSYS, 0};
// Namespace creation may also be refused by a namespace limit.
static const int kDeniedNs[] = {EPERM, EACCES, ENOSYS, ENOSPC, EUSERS, 0};
// A socket family may also be missing from the kernel.
static const int kDeniedSocket[] = {EPERM, EACCES, ENOSYS, EAFNOSUPPORT, EPROTONOSUPPORT, 0};
// Writes to a file: read-only mount, permission, or the file is not there at all.
static const int kDeniedWrite[] = {EROFS, EACCES, EPERM, ENOENT, 0};

static bool in_set(int err, const int* set) {
  for (; *set != 0; ++set) {
    if (*set == err) {
      return true;
    }
  }
  return false;
}

// An attempt that must be refused: rc >= 0 means it worked.
static void judge(struct outcome* o, const char* what, long rc, int err, const int* refusals) {
  if (rc >= 0) {
    fail(o, "%s: succeeded", what);
  } else if (in_set(err, refusals)) {
    pass(o, "%s: %s", what, errno_name(err));
  } else {
    fail(o, "%s: %s (failed, but not refused: the permission check passed)", what, errno_name(err));
  }
}

// ---- small readers -------------------------------------------------------------------------------------------

// Reads a whole small file into buf (NUL-terminated); returns its length, or -errno. -EFBIG when it does not fit.
static long read_small(const char* path, char* buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return -errno;
  }
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, size - 1 - len);
    if (n < 0) {
      int err = errno;
      close(fd);
      return -err;
    }
    if (n == 0) {
      break;
    }
    len += (size_t)n;
    if (len == size - 1) {
      close(fd);
      return -EFBIG;
    }
  }
  close(fd);
  buf[len] = 0;
  return (long)len;
}

// snprintf that may cut the text short on purpose (bounded details).
__attribute__((format(printf, 3, 4))) static size_t format_into(char* out, size_t size, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out, size, fmt, ap);
  va_end(ap);
  return n < 0 ? 0 : (size_t)n;
}

static void chomp(char* s) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) {
    s[--n] = 0;
  }
}

// The value of "Key:" in /proc/self/status, without leading blanks or newline.
static bool status_value(const char* key, char* out, size_t size) {
  char buf[8192];
  if (read_small("/proc/self/status", buf, sizeof buf) < 0) {
    return false;
  }
  size_t klen = strlen(key);
  for (char* line = buf; line != NULL && *line != 0;) {
    char* next = strchr(line, '\n');
    if (next != NULL) {
      *next++ = 0;
    }
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      const char* v = line + klen + 1;
      v += strspn(v, " \t");
      snprintf(out, size, "%s", v);
      return true;
    }
    line = next;
  }
  return false;
}

struct id_range {
  unsigned long long inside, outside, count;
};

// Parses /proc/self/{uid,gid}_map; returns the number of lines, or -errno (-EINVAL when malformed).
static int read_id_map(const char* path, struct id_range* ranges, int max) {
  char buf[4096];
  long len = read_small(path, buf, sizeof buf);
  if (len < 0) {
    return (int)len;
  }
  int n = 0;
  for (char* line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
    if (n == max || sscanf(line, "%llu %llu %llu", &ranges[n].inside, &ranges[n].outside, &ranges[n].count) != 3) {
      return -EINVAL;
    }
    ++n;
  }
  return n;
}

// ---- identity --------------------------------------------------------------------------------------------------

// "uid 0 -> 1000000000 (65536 ids)"; false when some id maps to host id 0, or 0 does not map to `expect` (>= 0).
static bool describe_map(const char* kind, char* out, size_t size, long long expect) {
  struct id_range r[kMaxList];
  char path[64];
  snprintf(path, sizeof path, "/proc/self/%s_map", kind);
  int n = read_id_map(path, r, kMaxList);
  if (n < 0) {
    snprintf(out, size, "read %s: %s", path, errno_name(-n));
    return false;
  }
  bool ok = true;
  snprintf(out, size, "%s 0 unmapped", kind);
  for (int i = 0; i < n; ++i) {
    if (r[i].inside == 0) {
      snprintf(out, size, "%s 0 -> %llu (%llu ids)", kind, r[i].outside, r[i].count);
      ok = ok && (expect < 0 || r[i].outside == (unsigned long long)expect);
    }
    if (r[i].outside == 0) {
      snprintf(out, size, "%s %llu -> host 0", kind, r[i].inside);
      return false;
    }
  }
  return ok;
}

static void check_userns(const struct config* c, struct outcome* o) {
  char uid[128], gid[128];
  bool uid_ok = describe_map("uid", uid, sizeof uid, c->expect_host_uid);
  bool gid_ok = describe_map("gid", gid, sizeof gid, -1);
  if (uid_ok && gid_ok) {
    pass(o, "%s, %s", uid, gid);
  } else if (c->expect_host_uid >= 0 && uid_ok == false) {
    fail(o, "%s, %s (expected uid 0 -> %lld)", uid, gid, c->expect_host_uid);
  } else {
    fail(o, "%s, %s", uid, gid);
  }
}

static void check_uid(const struct config* c, struct outcome* o) {
  if (c->expect_uid < 0) {
    skip(o, "no --expect-uid given");
    return;
  }
  uid_t r, e, s;
  getresuid(&r, &e, &s);
  bool ok = r == (uid_t)c->expect_uid && e == (uid_t)c->expect_uid && s == (uid_t)c->expect_uid;
  (ok ? pass : fail)(o, "uid %u, euid %u, suid %u (expected %lld)", r, e, s, c->expect_uid);
}

static void check_no_new_privs(const struct config* c, struct outcome* o) {
  (void)c;
  int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  (nnp == 1 ? pass : fail)(o, "PR_GET_NO_NEW_PRIVS = %d", nnp);
}

static void check_seccomp(const struct config* c, struct outcome* o) {
  (void)c;
  char mode[32] = "?";
  status_value("Seccomp", mode, sizeof mode);
  (strcmp(mode, "2") == 0 ? pass : fail)(o, "Seccomp: %s (2 = filter)", mode);
}

static const char* const kCapNames[] = {
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
    "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
    "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
    "checkpoint_restore",
};

// Docker's default set: chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw
// sys_chroot mknod audit_write setfcap.
static const unsigned long long kDockerCaps = (1ull << 0) | (1ull << 1) | (1ull << 3) | (1ull << 4) | (1ull << 5) |
                                              (1ull << 6) | (1ull << 7) | (1ull << 8) | (1ull << 10) | (1ull << 13) |
                                              (1ull << 18) | (1ull << 27) | (1ull << 29) | (1ull << 31);

static unsigned long long cap_set(const char* key) {
  char v[64] = "";
  if (!status_value(key, v, sizeof v)) {
    return ~0ull;
  }
  return strtoull(v, NULL, 16);
}

static void cap_list(unsigned long long set, char* out, size_t size) {
  size_t len = 0;
  out[0] = 0;
  for (unsigned i = 0; i < 64 && len < size; ++i) {
    if (set & (1ull << i)) {
      const char* name = i < sizeof kCapNames / sizeof kCapNames[0] ? kCapNames[i] : "cap_unknown";
      len += (size_t)snprintf(out + len, size - len, "%s%s", len ? "," : "", name);
    }
  }
}

static void check_caps_nonroot(const struct config* c, struct outcome* o) {
  (void)c;
  if (getuid() == 0 || geteuid() == 0) {
    skip(o, "running as uid 0 (run with -u UID:GID)");
    return;
  }
  unsigned long long eff = cap_set("CapEff"), prm = cap_set("CapPrm");
  unsigned long long amb = cap_set("CapAmb"), inh = cap_set("CapInh");
  bool ok = (eff | prm | amb | inh) == 0;
  (ok ? pass : fail)(o, "uid %u: CapEff=%llx CapPrm=%llx CapAmb=%llx CapInh=%llx", getuid(), eff, prm, amb, inh);
}

static void check_caps_root(const struct config* c, struct outcome* o) {
  (void)c;
  if (geteuid() != 0) {
    skip(o, "not running as uid 0");
    return;
  }
  unsigned long long held = cap_set("CapEff") | cap_set("CapPrm") | cap_set("CapInh") | cap_set("CapAmb");
  char names[400];
  cap_list(held & ~kDockerCaps, names, sizeof names);
  if ((held & ~kDockerCaps) != 0) {
    fail(o, "capabilities beyond Docker's default set: %s", names);
    return;
  }
  cap_list(held, names, sizeof names);
  pass(o, "within Docker's default set: %s", names[0] ? names : "none");
}

// ---- fds ------------------------------------------------------------------------------------------------------

static void check_fds(const struct config* c, struct outcome* o) {
  DIR* d = opendir("/proc/self/fd");
  if (d == NULL) {
    fail(o, "opendir /proc/self/fd: %s", errno_name(errno));
    return;
  }
  char extra[kDetail / 2] = "";
  size_t len = 0;
  for (struct dirent* e = readdir(d); e != NULL; e = readdir(d)) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d) || fd == c->report_fd) {
      continue;
    }
    char link[64], target[128] = "?";
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 1] = 0;
    if (len < sizeof extra) {
      len += (size_t)snprintf(extra + len, sizeof extra - len, "%s%d:%s", len ? " " : "", fd, target);
    }
  }
  closedir(d);
  (len == 0 ? pass : fail)(o, "%s", len == 0 ? "only 0, 1, 2" : extra);
}

// ---- devices --------------------------------------------------------------------------------------------------

static const char* const kDevAllowed[] = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
                                          "fd", "stdin", "stdout", "stderr", "core", "mqueue"};

static bool dev_allowed(const struct config* c, const char* name) {
  for (size_t i = 0; i < sizeof kDevAllowed / sizeof kDevAllowed[0]; ++i) {
    if (strcmp(name, kDevAllowed[i]) == 0) {
      return true;
    }
  }
  for (int i = 0; i < c->n_allow_dev; ++i) {
    if (strcmp(name, c->allow_dev[i]) == 0) {
      return true;
    }
  }
  return false;
}

static void check_dev_entries(const struct config* c, struct outcome* o) {
  DIR* d = opendir("/dev");
  if (d == NULL) {
    pass(o, "no /dev (%s)", errno_name(errno));
    return;
  }
  char extra[kDetail / 2] = "";
  size_t len = 0;
  int n = 0;
  for (struct dirent* e = readdir(d); e != NULL; e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || dev_allowed(c, e->d_name)) {
      continue;
    }
    ++n;
    if (len < sizeof extra) {
      len += (size_t)snprintf(extra + len, sizeof extra - len, "%s%s", len ? " " : "", e->d_name);
    }
  }
  closedir(d);
  if (n == 0) {
    pass(o, "only the allowed entries");
  } else {
    fail(o, "%d unexpected: %s", n, extra);
  }
}

struct block_scan {
  int found;
  int opened;
  char first[160];  // the first block device found, and what open said
};

// Walks a directory without following symlinks; opens every block device read-only (never a character device:
// opening some, like a watchdog, has effects).
static void scan_block(int dir, const char* path, int depth, struct block_scan* s) {
  DIR* d = fdopendir(dir);
  if (d == NULL) {
    close(dir);
    return;
  }
  for (struct dirent* e = readdir(d); e != NULL; e = readdir(d)) {
    struct stat st;
    if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      continue;
    }
    char sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    if (S_ISDIR(st.st_mode) && depth < 8) {
      int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        scan_block(fd, sub, depth + 1, s);
      }
    } else if (S_ISBLK(st.st_mode)) {
      int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
      int err = errno;
      if (s->found++ == 0 || (fd >= 0 && s->opened == 0)) {
        format_into(s->first, sizeof s->first, "%s: %s", sub, fd >= 0 ? "opened" : errno_name(err));
      }
      if (fd >= 0) {
        s->opened++;
        close(fd);
      }
    }
  }
  closedir(d);
}

static void check_dev_block(const struct config* c, struct outcome* o) {
  (void)c;
  struct block_scan s = {0, 0, ""};
  int fd = open("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    pass(o, "no /dev (%s)", errno_name(errno));
    return;
  }
  scan_block(fd, "/dev", 0, &s);
  if (s.opened > 0) {
    fail(o, "%d of %d block devices open (%s)", s.opened, s.found, s.first);
  } else if (s.found > 0) {
    pass(o, "%d block devices, none opens (%s)", s.found, s.first);
  } else {
    pass(o, "no block devices under /dev");
  }
}

static void check_dev_mknod(const struct config* c, struct outcome* o) {
  if (c->scratch == NULL) {
    skip(o, "no writable directory for the attempt");
    return;
  }
  int dir = open(c->scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    skip(o, "open %s: %s", c->scratch, errno_name(errno));
    return;
  }
  long chr = mknodat(dir, "null", S_IFCHR | 0600, makedev(1, 3));
  int chr_err = errno;
  long blk = mknodat(dir, "loop0", S_IFBLK | 0600, makedev(7, 0));
  int blk_err = errno;
  unlinkat(dir, "null", 0);
  unlinkat(dir, "loop0", 0);
  close(dir);
  if (chr < 0 && blk < 0 && in_set(chr_err, kDenied) && in_set(blk_err, kDenied)) {
    pass(o, "mknod c 1:3: %s, mknod b 7:0: %s", errno_name(chr_err), errno_name(blk_err));
  } else {
    fail(o, "mknod c 1:3: %s, mknod b 7:0: %s", chr < 0 ? errno_name(chr_err) : "succeeded",
         blk < 0 ? errno_name(blk_err) : "succeeded");
  }
}

// ---- syscalls that must be refused ------------------------------------------------------------------------------

static void check_mount(const struct config* c, struct outcome* o) {
  if (c->scratch == NULL) {
    skip(o, "no writable directory for the attempt");
    return;
  }
  char target[PATH_MAX];
  snprintf(target, sizeof target, "%s/mnt", c->scratch);
  if (mkdir(target, 0700) < 0 && errno != EEXIST) {
    skip(o, "mkdir %s: %s", target, errno_name(errno));
    return;
  }
  long rc = mount("sbx-escape-probe", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0700");
  int err = errno;
  if (rc == 0) {
    umount2(target, MNT_DETACH);
  }
  rmdir(target);
  judge(o, "mount tmpfs", rc, err, kDenied);
}

static void check_fsopen(const struct config* c, struct outcome* o) {
  (void)c;
  long fd = syscall(SYS_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
  int err = errno;
  if (fd >= 0) {
    close((int)fd);  // a filesystem context never attached anywhere
  }
  judge(o, "fsopen tmpfs", fd, err, kDenied);
}

static void check_umount(const struct config* c, struct outcome* o) {
  if (c->scratch == NULL) {
    skip(o, "no writable directory for the attempt");
    return;
  }
  // Not a mount point: EINVAL once the permission check has passed.
  long rc = umount2(c->scratch, 0);
  judge(o, "umount2 of a plain directory", rc, errno, kDenied);
}

static void check_unshare_user(const struct config* c, struct outcome* o) {
  (void)c;
  long rc = unshare(CLONE_NEWUSER);
  judge(o, "unshare(CLONE_NEWUSER)", rc, errno, kDeniedNs);
}

static void check_unshare_mount(const struct config* c, struct outcome* o) {
  (void)c;
  long rc = unshare(CLONE_NEWNS);
  judge(o, "unshare(CLONE_NEWNS)", rc, errno, kDeniedNs);
}

static void check_clone_newuser(const struct config* c, struct outcome* o) {
  (void)c;
#if defined(__s390__) || defined(__cris__)
  skip(o, "clone's argument order differs on this architecture");
#else
  long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0UL, 0UL, 0UL, 0UL);
  if (pid == 0) {
    syscall(SYS_exit_group, 0);
  }
  int err = errno;
  if (pid > 0) {
    waitpid((pid_t)pid, NULL, __WALL);
  }
  judge(o, "clone(CLONE_NEWUSER)", pid, err, kDeniedNs);
#endif
}

static void check_setns_mnt(const struct config* c, struct outcome* o) {
  (void)c;
  int fd = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    pass(o, "open /proc/1/ns/mnt: %s", errno_name(errno));
    return;
  }
  long rc = setns(fd, CLONE_NEWNS);
  int err = errno;
  close(fd);
  judge(o, "setns(/proc/1/ns/mnt)", rc, err, kDenied);
}

static void check_bpf(const struct config* c, struct outcome* o) {
  (void)c;
  struct bpf_insn prog[2];  // r0 = 0; exit: a socket filter that accepts nothing, never attached
  memset(prog, 0, sizeof prog);
  prog[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  prog[1].code = BPF_JMP | BPF_EXIT;
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
  attr.insns = (uint64_t)(uintptr_t)prog;
  attr.insn_cnt = 2;
  attr.license = (uint64_t)(uintptr_t) "GPL";
  long fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
  int err = errno;
  if (fd >= 0) {
    close((int)fd);
  }
  judge(o, "bpf(BPF_PROG_LOAD)", fd, err, kDenied);
}

static void check_perf_event_open(const struct config* c, struct outcome* o) {
  (void)c;
  struct perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
  int err = errno;
  if (fd >= 0) {
    close((int)fd);
  }
  judge(o, "perf_event_open(self, task clock)", fd, err, kDenied);
}

static void check_keyctl(const struct config* c, struct outcome* o) {
  (void)c;
  long rc = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* KEY_SPEC_SESSION_KEYRING */, 0 /* create */);
  judge(o, "keyctl(KEYCTL_GET_KEYRING_ID)", rc, errno, kDenied);
}

static void check_add_key(const struct config* c, struct outcome* o) {
  (void)c;
  // Into the process keyring, which goes away with this child.
  long rc = syscall(SYS_add_key, "user", "sbx-escape-probe", "x", 1UL, -2 /* KEY_SPEC_PROCESS_KEYRING */);
  judge(o, "add_key", rc, errno, kDenied);
}

static void check_ptrace_init(const struct config* c, struct outcome* o) {
  (void)c;
  if (getpid() == 1) {
    skip(o, "the probe is pid 1");
    return;
  }
  long rc = ptrace(PTRACE_ATTACH, 1, NULL, NULL);
  int err = errno;
  if (rc == 0) {
    waitpid(1, NULL, __WALL);
    ptrace(PTRACE_DETACH, 1, NULL, NULL);  // and this child's exit detaches in any case
  }
  judge(o, "ptrace(PTRACE_ATTACH, 1)", rc, err, kDenied);
}

static void check_userfaultfd(const struct config* c, struct outcome* o) {
  (void)c;
  // User-mode-only first: the kind the kernel hands out without privilege (5.11+).
  long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
  int err = errno;
  if (fd < 0 && err == EINVAL) {
    fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    err = errno;
  }
  if (fd >= 0) {
    close((int)fd);
  }
  judge(o, "userfaultfd", fd, err, kDenied);
}

static void check_io_uring_setup(const struct config* c, struct outcome* o) {
  (void)c;
  uint64_t params[16];  // struct io_uring_params (120 bytes), all zero
  memset(params, 0, sizeof params);
  long fd = syscall(SYS_io_uring_setup, 1U, params);
  int err = errno;
  if (fd >= 0) {
    close((int)fd);
  }
  judge(o, "io_uring_setup", fd, err, kDenied);
}

static void check_open_by_handle_at(const struct config* c, struct outcome* o) {
  (void)c;
  struct file_handle* fh = calloc(1, sizeof *fh + MAX_HANDLE_SZ);
  if (fh == NULL) {
    fail(o, "calloc: ENOMEM");
    return;
  }
  int mount_id = 0;
  fh->handle_bytes = MAX_HANDLE_SZ;
  const char* source = "handle of /";
  if (name_to_handle_at(AT_FDCWD, "/", fh, &mount_id, 0) < 0) {
    memset(fh, 0, sizeof *fh + MAX_HANDLE_SZ);  // a made-up handle: ESTALE once permitted
    fh->handle_bytes = 8;
    fh->handle_type = 1;
    source = "made-up handle";
  }
  int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  long fd = open_by_handle_at(root, fh, O_RDONLY | O_CLOEXEC);
  int err = errno;
  if (fd >= 0) {
    close((int)fd);
  }
  close(root);
  free(fh);
  char what[64];
  snprintf(what, sizeof what, "open_by_handle_at(%s)", source);
  judge(o, what, fd, err, kDenied);
}

static void check_kexec_load(const struct config* c, struct outcome* o) {
  (void)c;
  // No segments and a foreign architecture: refused with EINVAL right after the permission check, so it can
  // neither load nor unload anything.
  long rc = syscall(SYS_kexec_load, 0UL, 0UL, NULL, kForeignKexecArch);
  judge(o, "kexec_load", rc, errno, kDenied);
}

static void check_kexec_file_load(const struct config* c, struct outcome* o) {
  (void)c;
#ifdef SYS_kexec_file_load
  long rc = syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, kBadKexecFileFlags);  // EINVAL once permitted
  judge(o, "kexec_file_load", rc, errno, kDenied);
#else
  (void)kBadKexecFileFlags;
  pass(o, "kexec_file_load: ENOSYS (no such syscall on this architecture)");
#endif
}

static void check_init_module(const struct config* c, struct outcome* o) {
  (void)c;
  static const char empty[1] = {0};
  long rc = syscall(SYS_init_module, empty, 0UL, "");  // an empty image: ENOEXEC once permitted
  judge(o, "init_module(empty image)", rc, errno, kDenied);
}

static void check_finit_module(const struct config* c, struct outcome* o) {
  (void)c;
  long rc = syscall(SYS_finit_module, -1, "", 0);  // no file: EBADF once permitted
  judge(o, "finit_module(-1)", rc, errno, kDenied);
}

static void check_socket_packet(const struct config* c, struct outcome* o) {
  (void)c;
  long fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: receives nothing until bound
  int err = errno;
  if (fd >= 0) {
    close((int)fd);
  }
  judge(o, "socket(AF_PACKET, SOCK_RAW)", fd, err, kDeniedSocket);
}

static void check_socket_raw(const struct config* c, struct outcome* o) {
  (void)c;
  long fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  int err = errno;
  if (fd >= 0) {
    close((int)fd);
  }
  judge(o, "socket(AF_INET, SOCK_RAW)", fd, err, kDeniedSocket);
}

static void check_sethostname(const struct config* c, struct outcome* o) {
  (void)c;
  char name[HOST_NAME_MAX + 1] = "";
  if (gethostname(name, sizeof name - 1) < 0) {
    fail(o, "gethostname: %s", errno_name(errno));
    return;
  }
  long rc = sethostname(name, strlen(name));  // the same name back
  judge(o, "sethostname(same name)", rc, errno, kDenied);
}

// ---- the host must be invisible ---------------------------------------------------------------------------------

static void check_proc_pids(const struct config* c, struct outcome* o) {
  DIR* d = opendir("/proc");
  if (d == NULL) {
    fail(o, "opendir /proc: %s", errno_name(errno));
    return;
  }
  long n = 0;
  for (struct dirent* e = readdir(d); e != NULL; e = readdir(d)) {
    n += e->d_name[0] >= '1' && e->d_name[0] <= '9';
  }
  closedir(d);
  (n < c->max_pids ? pass : fail)(o, "%ld processes visible (limit %ld)", n, c->max_pids);
}

static void check_init_cmdline(const struct config* c, struct outcome* o) {
  (void)c;
  char cmdline[4096];
  long len = read_small("/proc/1/cmdline", cmdline, sizeof cmdline);
  if (len < 0 && len != -EFBIG) {
    fail(o, "read /proc/1/cmdline: %s", errno_name((int)-len));
    return;
  }
  cmdline[len < 0 ? sizeof cmdline - 1 : (size_t)len] = 0;
  const char* slash = strrchr(cmdline, '/');
  const char* base = slash != NULL ? slash + 1 : cmdline;
  (strncmp(base, "sbx-init", 8) == 0 ? pass : fail)(o, "pid 1 is \"%s\"", cmdline);
}

static void check_host_secret(const struct config* c, struct outcome* o) {
  if (c->n_host_secret == 0) {
    skip(o, "no --host-secret given");
    return;
  }
  char seen[kDetail / 2] = "";
  size_t len = 0;
  for (int i = 0; i < c->n_host_secret; ++i) {
    struct stat st;
    int err = lstat(c->host_secret[i], &st) == 0 ? 0 : errno;
    if (err != ENOENT && err != ENOTDIR && err != EACCES) {
      fail(o, "%s: %s", c->host_secret[i], err == 0 ? "visible" : errno_name(err));
      return;
    }
    if (len < sizeof seen) {
      len += (size_t)snprintf(seen + len, sizeof seen - len, "%s%s: %s", len ? ", " : "", c->host_secret[i],
                              errno_name(err));
    }
  }
  pass(o, "%s", seen);
}

static void check_host_name(const struct config* c, struct outcome* o) {
  if (c->host_name == NULL) {
    skip(o, "no --host-name given");
    return;
  }
  char uts[HOST_NAME_MAX + 1] = "", file[256] = "";
  gethostname(uts, sizeof uts - 1);
  long len = read_small("/etc/hostname", file, sizeof file);
  if (len < 0) {
    snprintf(file, sizeof file, "(%s)", errno_name((int)-len));
  }
  chomp(file);
  bool same = strcmp(uts, c->host_name) == 0 || strcmp(file, c->host_name) == 0;
  (same ? fail : pass)(o, "hostname \"%s\", /etc/hostname \"%s\", host's \"%s\"", uts, file, c->host_name);
}

// Connects with a 3 s limit; returns 0 or an errno.
static int connect_within(int fd, const struct sockaddr* addr, socklen_t len) {
  if (connect(fd, addr, len) == 0) {
    return 0;
  }
  if (errno != EINPROGRESS) {
    return errno;
  }
  struct pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, 3000) <= 0) {
    return ETIMEDOUT;
  }
  int err = 0;
  socklen_t elen = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  return err;
}

static void check_host_port(const struct config* c, struct outcome* o) {
  if (c->host_port == 0) {
    skip(o, "no --host-port given");
    return;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    pass(o, "socket(AF_INET): %s", errno_name(errno));
    return;
  }
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)c->host_port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int err = connect_within(fd, (const struct sockaddr*)&sin, sizeof sin);
  close(fd);
  if (err == 0) {
    fail(o, "connect 127.0.0.1:%d: connected", c->host_port);
  } else {
    pass(o, "connect 127.0.0.1:%d: %s", c->host_port, errno_name(err));
  }
}

static void check_host_abstract(const struct config* c, struct outcome* o) {
  if (c->host_abstract == NULL) {
    skip(o, "no --host-abstract given");
    return;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    pass(o, "socket(AF_UNIX): %s", errno_name(errno));
    return;
  }
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  size_t n = strnlen(c->host_abstract, sizeof sun.sun_path - 1);
  memcpy(sun.sun_path + 1, c->host_abstract, n);
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  int err = connect_within(fd, (const struct sockaddr*)&sun, len);
  close(fd);
  (err == 0 ? fail : pass)(o, "connect @%s: %s", c->host_abstract, err == 0 ? "connected" : errno_name(err));
}

// ---- writes to /proc and /sys -----------------------------------------------------------------------------------

// Tries to write back to `path` the value it holds (`value`, or NULL to read it first; `value` NULL and unreadable:
// opens but never writes). Masks (a file that is not on procfs or sysfs) count as refused.
static void write_same(struct outcome* o, const char* path, const char* value) {
  char current[4096];
  long len = value != NULL ? (long)strlen(value) : read_small(path, current, sizeof current);
  int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    (in_set(err, kDeniedWrite) ? pass : fail)(o, "open %s for writing: %s", path, errno_name(err));
    return;
  }
  struct statfs sfs;
  bool real = fstatfs(fd, &sfs) == 0 && (sfs.f_type == 0x9fa0 /* proc */ || sfs.f_type == 0x62656572 /* sysfs */);
  if (!real) {
    close(fd);
    pass(o, "%s is masked (not procfs or sysfs)", path);
    return;
  }
  if (len < 0) {
    close(fd);
    fail(o, "%s opens for writing (not written: value unreadable, %s)", path, errno_name((int)-len));
    return;
  }
  ssize_t n = write(fd, value != NULL ? value : current, (size_t)len);
  int err = errno;
  close(fd);
  if (n >= 0) {
    fail(o, "%s: wrote its own value back", path);
  } else {
    (in_set(err, kDeniedWrite) ? pass : fail)(o, "write %s: %s", path, errno_name(err));
  }
}

static void check_proc_sys_hostname(const struct config* c, struct outcome* o) {
  (void)c;
  write_same(o, "/proc/sys/kernel/hostname", NULL);
}

static void check_proc_sys_core_pattern(const struct config* c, struct outcome* o) {
  (void)c;
  write_same(o, "/proc/sys/kernel/core_pattern", NULL);
}

static void check_sysrq_trigger(const struct config* c, struct outcome* o) {
  (void)c;
  // Every byte written here is a command: only the open is attempted.
  int fd = open("/proc/sysrq-trigger", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    (in_set(err, kDeniedWrite) ? pass : fail)(o, "open /proc/sysrq-trigger for writing: %s", errno_name(err));
    return;
  }
  struct statfs sfs;
  bool real = fstatfs(fd, &sfs) == 0 && sfs.f_type == 0x9fa0;
  close(fd);
  (real ? fail : pass)(o, "/proc/sysrq-trigger %s", real ? "opens for writing (nothing written)" : "is masked");
}

// The selected value of a sysfs switch: "always [madvise] never" -> "madvise"; "Y\n" -> "Y".
static bool sys_switch_value(const char* path, char* out, size_t size) {
  char buf[512];
  if (read_small(path, buf, sizeof buf) < 0) {
    return false;
  }
  char* open_bracket = strchr(buf, '[');
  char* close_bracket = open_bracket ? strchr(open_bracket, ']') : NULL;
  if (open_bracket != NULL && close_bracket != NULL) {
    *close_bracket = 0;
    snprintf(out, size, "%s", open_bracket + 1);
  } else {
    chomp(buf);
    snprintf(out, size, "%s", buf);
  }
  return out[0] != 0;
}

static void check_sys_write(const struct config* c, struct outcome* o) {
  (void)c;
  static const char* const candidates[] = {"/sys/kernel/mm/transparent_hugepage/enabled",
                                           "/sys/kernel/mm/transparent_hugepage/defrag",
                                           "/sys/module/printk/parameters/time"};
  struct statvfs sv;
  if (statvfs("/sys/kernel", &sv) < 0) {
    pass(o, "no /sys/kernel (%s)", errno_name(errno));
    return;
  }
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; ++i) {
    char value[128];
    if (access(candidates[i], F_OK) < 0) {
      continue;
    }
    bool known = sys_switch_value(candidates[i], value, sizeof value);
    write_same(o, candidates[i], known ? value : NULL);
    if (o->verdict == kPass && (sv.f_flag & ST_RDONLY)) {
      size_t n = strlen(o->detail);
      snprintf(o->detail + n, sizeof o->detail - n, " (/sys read-only)");
    }
    return;
  }
  if (sv.f_flag & ST_RDONLY) {
    pass(o, "/sys is mounted read-only");
  } else {
    skip(o, "/sys is writable as a mount and none of the known files is there");
  }
}

// ---- the table and the runner --------------------------------------------------------------------------------

static const struct check kChecks[] = {
    {"identity", "userns", false, check_userns},
    {"identity", "uid", false, check_uid},
    {"identity", "no_new_privs", false, check_no_new_privs},
    {"identity", "seccomp", false, check_seccomp},
    {"identity", "caps_nonroot", false, check_caps_nonroot},
    {"identity", "caps_root", false, check_caps_root},
    {"fds", "fds", false, check_fds},
    {"devices", "dev_entries", false, check_dev_entries},
    {"devices", "dev_block", false, check_dev_block},
    {"devices", "dev_mknod", true, check_dev_mknod},
    {"syscalls", "mount", true, check_mount},
    {"syscalls", "fsopen", true, check_fsopen},
    {"syscalls", "umount", true, check_umount},
    {"syscalls", "unshare_user", true, check_unshare_user},
    {"syscalls", "unshare_mount", true, check_unshare_mount},
    {"syscalls", "clone_newuser", true, check_clone_newuser},
    {"syscalls", "setns_mnt", true, check_setns_mnt},
    {"syscalls", "bpf", true, check_bpf},
    {"syscalls", "perf_event_open", true, check_perf_event_open},
    {"syscalls", "keyctl", true, check_keyctl},
    {"syscalls", "add_key", true, check_add_key},
    {"syscalls", "ptrace_init", true, check_ptrace_init},
    {"syscalls", "userfaultfd", true, check_userfaultfd},
    {"syscalls", "io_uring_setup", true, check_io_uring_setup},
    {"syscalls", "open_by_handle_at", true, check_open_by_handle_at},
    {"syscalls", "kexec_load", true, check_kexec_load},
    {"syscalls", "kexec_file_load", true, check_kexec_file_load},
    {"syscalls", "init_module", true, check_init_module},
    {"syscalls", "finit_module", true, check_finit_module},
    {"syscalls", "socket_packet", true, check_socket_packet},
    {"syscalls", "socket_raw", true, check_socket_raw},
    {"syscalls", "sethostname", true, check_sethostname},
    {"host", "proc_pids", false, check_proc_pids},
    {"host", "init_cmdline", false, check_init_cmdline},
    {"host", "host_secret", false, check_host_secret},
    {"host", "host_name", false, check_host_name},
    {"host", "host_port", true, check_host_port},
    {"host", "host_abstract", true, check_host_abstract},
    {"writes", "proc_sys_hostname", true, check_proc_sys_hostname},
    {"writes", "proc_sys_core_pattern", true, check_proc_sys_core_pattern},
    {"writes", "sysrq_trigger", true, check_sysrq_trigger},
    {"writes", "sys_write", true, check_sys_write},
};
enum { kNumChecks = sizeof kChecks / sizeof kChecks[0] };

// Runs one check in a child of its own and collects its outcome through a pipe.
static struct outcome run_isolated(const struct check* k, struct config* c) {
  struct outcome o = {kFail, ""};
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    fail(&o, "pipe: %s", errno_name(errno));
    return o;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    alarm(kCheckSeconds);
    c->report_fd = p[1];
    struct outcome mine = {kFail, "no verdict"};
    k->run(c, &mine);
    ssize_t ignored = write(p[1], &mine, sizeof mine);
    (void)ignored;
    _exit(0);
  }
  close(p[1]);
  if (pid < 0) {
    fail(&o, "fork: %s", errno_name(errno));
    close(p[0]);
    return o;
  }
  ssize_t n = read(p[0], &o, sizeof o);
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (n == (ssize_t)sizeof o) {
    o.detail[sizeof o.detail - 1] = 0;
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS && k->attempt) {
    pass(&o, "killed by seccomp (SIGSYS)");
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
    fail(&o, "timed out after %d s", kCheckSeconds);
  } else if (WIFSIGNALED(status)) {
    fail(&o, "died of signal %d", WTERMSIG(status));
  } else {
    fail(&o, "no verdict (exit status %d)", WEXITSTATUS(status));
  }
  return o;
}

// ---- safety, arguments, main ------------------------------------------------------------------------------------

// Refuses where it could be on a host: an unreadable uid map, or one that maps any id to host uid 0.
static void refuse_on_host(void) {
  struct id_range r[kMaxList];
  int n = read_id_map("/proc/self/uid_map", r, kMaxList);
  if (n < 0) {
    fprintf(stderr, "sbx-escape-probe: refusing to run: cannot read or parse /proc/self/uid_map (%s)\n",
            errno_name(-n));
    exit(2);
  }
  for (int i = 0; i < n; ++i) {
    if (r[i].outside == 0 && r[i].count > 0) {
      fprintf(stderr, "sbx-escape-probe: refusing to run: uid %llu maps to host uid 0 (not inside an sbx sandbox)\n",
              r[i].inside);
      exit(2);
    }
  }
}

static const char kUsage[] =
    "usage: sbx-escape-probe [--expect-uid N] [--expect-host-uid N] [--allow-dev NAME]...\n"
    "         [--host-secret PATH]... [--host-name NAME] [--host-port PORT] [--host-abstract NAME]\n"
    "         [--max-pids N] [--list] [CHECK|GROUP...]\n";

static _Noreturn void usage(const char* problem) {
  fprintf(stderr, "sbx-escape-probe: %s\n%s", problem, kUsage);
  exit(2);
}

static long long number(const char* s, long long max) {
  char* end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != 0 || v < 0 || v > max) {
    usage("bad number");
  }
  return v;
}

static void add(const char** list, int* n, const char* value) {
  if (*n == kMaxList) {
    usage("too many values for one option");
  }
  list[(*n)++] = value;
}

static bool select_checks(const char* name, bool* selected) {
  bool any = false;
  for (int i = 0; i < kNumChecks; ++i) {
    if (strcmp(name, kChecks[i].name) == 0 || strcmp(name, kChecks[i].group) == 0) {
      selected[i] = any = true;
    }
  }
  return any;
}

// Applies one option that takes a value; false when `name` is not such an option.
static bool apply_option(struct config* c, const char* name, const char* v) {
  if (strcmp(name, "--expect-uid") == 0) {
    c->expect_uid = number(v, UINT32_MAX - 1);
  } else if (strcmp(name, "--expect-host-uid") == 0) {
    c->expect_host_uid = number(v, UINT32_MAX - 1);
  } else if (strcmp(name, "--allow-dev") == 0) {
    add(c->allow_dev, &c->n_allow_dev, v);
  } else if (strcmp(name, "--host-secret") == 0) {
    add(c->host_secret, &c->n_host_secret, v);
  } else if (strcmp(name, "--host-name") == 0) {
    c->host_name = v;
  } else if (strcmp(name, "--host-port") == 0) {
    c->host_port = (int)number(v, 65535);
  } else if (strcmp(name, "--host-abstract") == 0) {
    c->host_abstract = v;
  } else if (strcmp(name, "--max-pids") == 0) {
    c->max_pids = (long)number(v, 1000000);
  } else {
    return false;
  }
  return true;
}

// Fills `c` and `selected` from argv; returns true when --list was given.
static bool parse_args(int argc, char** argv, struct config* c, bool* selected) {
  bool list = false, any = false;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(kUsage, stdout);
      exit(0);
    } else if (strcmp(a, "--list") == 0) {
      list = true;
    } else if (a[0] == '-') {
      if (i + 1 == argc) {
        usage("unknown option or missing value");
      }
      if (!apply_option(c, a, argv[++i])) {
        usage("unknown option");
      }
    } else if (select_checks(a, selected)) {
      any = true;
    } else {
      usage("unknown check (--list shows them)");
    }
  }
  for (int i = 0; i < kNumChecks && !any; ++i) {
    selected[i] = true;
  }
  return list;
}

// A directory of the probe's own for mount and mknod attempts; NULL when no candidate place is writable.
static const char* make_scratch(char* buf, size_t size) {
  static const char* const parents[] = {"/tmp", "/dev/shm", "/var/tmp"};
  for (size_t i = 0; i < sizeof parents / sizeof parents[0]; ++i) {
    snprintf(buf, size, "%s/sbx-escape-probe.XXXXXX", parents[i]);
    if (mkdtemp(buf) != NULL) {
      return buf;
    }
  }
  return NULL;
}

static void remove_scratch(const char* dir) {
  char mnt[PATH_MAX];
  snprintf(mnt, sizeof mnt, "%s/mnt", dir);
  if (rmdir(mnt) < 0 && errno == EBUSY) {  // a check died between its mount and its umount
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    unlinkat(fd, "null", 0);
    unlinkat(fd, "loop0", 0);
    close(fd);
  }
  rmdir(dir);
}

int main(int argc, char** argv) {
  refuse_on_host();
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct config c = {.expect_uid = -1, .expect_host_uid = -1, .max_pids = kDefaultMaxPids, .report_fd = -1};
  bool selected[kNumChecks] = {false};
  if (parse_args(argc, argv, &c, selected)) {
    for (int i = 0; i < kNumChecks; ++i) {
      printf("%s %s\n", kChecks[i].group, kChecks[i].name);
    }
    return 0;
  }
  char scratch[PATH_MAX];
  c.scratch = make_scratch(scratch, sizeof scratch);
  int passed = 0, failed = 0;
  static const char* const kWords[] = {"PASS", "FAIL", "SKIP"};
  for (int i = 0; i < kNumChecks; ++i) {
    if (!selected[i]) {
      continue;
    }
    struct outcome o = run_isolated(&kChecks[i], &c);
    passed += o.verdict == kPass;
    failed += o.verdict == kFail;
    printf("%s %s: %s\n", kWords[o.verdict], kChecks[i].name, o.detail);
  }
  if (c.scratch != NULL) {
    remove_scratch(c.scratch);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
