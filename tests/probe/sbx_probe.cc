// sbx-probe: runs inside a sandbox and reports what it sees, one "key=value" per line, for the integration tests.
// It only probes: it refuses to run at all where it finds capabilities, so it can never do harm on a host.
//
//   sbx-probe status               identity, capabilities, no_new_privs, seccomp mode, pid 1, fds, cwd
//   sbx-probe syscalls             tries mount, umount, unshare, pivot_root, ptrace, bpf, keyctl... and prints errnos
//   sbx-probe read PATH            bytes readable from PATH, or its errno
//   sbx-probe write PATH           writes "probe" to PATH; ok or errno
//   sbx-probe alloc MIB            allocates and touches MIB MiB
//   sbx-probe forkbomb N           forks up to N sleeping children; prints how many it got and the first errno
//   sbx-probe spin SECONDS         burns CPU for SECONDS of wall time
//   sbx-probe deeptree N           builds a directory tree N levels deep under the cwd
//   sbx-probe stopper SECONDS      SIGSTOPs every new process that appears in the sandbox (an attack on exec)
//   sbx-probe exit CODE | kill SIG ends itself that way
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include <initializer_list>
#include <vector>
#include <unistd.h>

namespace {

const char* err_name(int err) {
  switch (err) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case EROFS: return "EROFS";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EBUSY: return "EBUSY";
    case ENOSPC: return "ENOSPC";
    case EFBIG: return "EFBIG";
    case ENOTDIR: return "ENOTDIR";
    case EEXIST: return "EEXIST";
    case ESRCH: return "ESRCH";
    default: return "other";
  }
}

// Any effective, permitted or bounding capability means this is not a sandbox we made: refuse.
bool has_capabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) < 0) {
    return true;
  }
  return (data[0].effective | data[1].effective | data[0].permitted | data[1].permitted) != 0;
}

void print_status_line(const char* key) {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) {
    printf("%s=error\n", key);
    return;
  }
  char line[512];
  size_t klen = strlen(key);
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
      char* v = line + klen + 1;
      while (*v == ' ' || *v == '\t') {
        ++v;
      }
      printf("%s=%s", key, v);
    }
  }
  fclose(f);
}

void print_file(const char* key, const char* path) {
  char buf[256] = {};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    printf("%s=%s\n", key, err_name(errno));
    return;
  }
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n > 0 ? n : 0] = 0;
  char* nl = strchr(buf, '\n');
  if (nl != nullptr) {
    *nl = 0;
  }
  printf("%s=%s\n", key, buf);
}

void print_fds() {
  DIR* d = opendir("/proc/self/fd");
  int own = d ? dirfd(d) : -1;
  printf("fds=");
  const char* sep = "";
  while (struct dirent* e = d ? readdir(d) : nullptr) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == own) {
      continue;
    }
    char target[256] = {};
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    printf("%s%d:%s", sep, fd, n > 0 ? target : "?");
    sep = ",";
  }
  printf("\n");
  if (d) {
    closedir(d);
  }
}

int count_processes() {
  DIR* d = opendir("/proc");
  int n = 0;
  while (struct dirent* e = d ? readdir(d) : nullptr) {
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9') {
      ++n;
    }
  }
  if (d) {
    closedir(d);
  }
  return n;
}

int cmd_status() {
  char host[128] = {};
  gethostname(host, sizeof host - 1);
  char cwd[512] = {};
  printf("pid=%d\nppid=%d\nuid=%d\ngid=%d\nhostname=%s\ncwd=%s\nprocesses=%d\n", getpid(), getppid(), getuid(),
         getgid(), host, getcwd(cwd, sizeof cwd) ? cwd : "?", count_processes());
  for (const char* k : {"CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh", "NoNewPrivs", "Seccomp", "SigBlk", "SigIgn"}) {
    print_status_line(k);
  }
  print_file("init_comm", "/proc/1/comm");
  char exe[256] = {};
  ssize_t n = readlink("/proc/1/exe", exe, sizeof exe - 1);
  printf("init_exe=%s\n", n > 0 ? exe : err_name(errno));
  int fd = open("/proc/1/exe", O_RDONLY | O_CLOEXEC);
  printf("init_exe_open=%s\n", fd >= 0 ? "ok" : err_name(errno));
  if (fd >= 0) {
    close(fd);
  }
  print_file("cgroup", "/proc/self/cgroup");
  print_fds();
  const char* env = getenv("PROBE_VAR");
  printf("env_PROBE_VAR=%s\n", env ? env : "");
  return 0;
}

int result(long rc) { return rc < 0 ? errno : 0; }

int cmd_syscalls() {
  printf("mount=%s\n", err_name(result(mount("none", "/tmp", "tmpfs", 0, nullptr))));
  printf("umount=%s\n", err_name(result(umount2("/proc", MNT_DETACH))));
  printf("unshare=%s\n", err_name(result(unshare(CLONE_NEWNS))));
  printf("unshare_user=%s\n", err_name(result(unshare(CLONE_NEWUSER))));
  printf("pivot_root=%s\n", err_name(result(syscall(SYS_pivot_root, "/tmp", "/tmp"))));
  printf("ptrace=%s\n", err_name(result(ptrace(PTRACE_ATTACH, 1, nullptr, nullptr))));
  printf("bpf=%s\n", err_name(result(syscall(SYS_bpf, 0, nullptr, 0))));
  printf("keyctl=%s\n", err_name(result(syscall(SYS_keyctl, 0, 0, 0, 0, 0))));
  printf("perf_event_open=%s\n", err_name(result(syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0))));
  printf("sethostname=%s\n", err_name(result(sethostname("evil", 4))));
  printf("kill_init=%s\n", err_name(result(kill(1, SIGKILL))));
  int vsock = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
  printf("socket_vsock=%s\n", err_name(vsock >= 0 ? 0 : errno));
  int inet = socket(AF_INET, SOCK_STREAM, 0);
  printf("socket_inet=%s\n", err_name(inet >= 0 ? 0 : errno));
  return 0;
}

int cmd_read(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    printf("read=%s\n", err_name(errno));
    return 0;
  }
  char buf[65536];
  long total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    total += n;
  }
  printf("read=%s\nbytes=%ld\n", n < 0 ? err_name(errno) : "ok", total);
  close(fd);
  return 0;
}

int cmd_write(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    printf("write=%s\n", err_name(errno));
    return 0;
  }
  ssize_t n = write(fd, "probe", 5);
  printf("write=%s\n", n == 5 ? "ok" : err_name(errno));
  close(fd);
  return 0;
}

int cmd_alloc(long mib) {
  for (long i = 0; i < mib; ++i) {
    char* p = static_cast<char*>(malloc(1 << 20));
    if (p == nullptr) {
      printf("alloc=ENOMEM after %ld MiB\n", i);
      return 1;
    }
    memset(p, 1, 1 << 20);
  }
  printf("alloc=ok\n");
  return 0;
}

int cmd_forkbomb(int n) {
  std::vector<pid_t> children;
  int first_err = 0;
  for (int i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
    if (pid < 0) {
      first_err = errno;
      break;
    }
    children.push_back(pid);
  }
  printf("forked=%zu\nfork_error=%s\n", children.size(), err_name(first_err));
  for (pid_t pid : children) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  return 0;
}

int cmd_deeptree(long depth) {
  for (long i = 0; i < depth; ++i) {
    if (mkdir("d", 0755) < 0 || chdir("d") < 0) {
      printf("deeptree=%s at %ld\n", err_name(errno), i);
      return 1;
    }
  }
  printf("deeptree=ok\n");
  return 0;
}

int cmd_stopper(double seconds) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  pid_t self = getpid();
  printf("stopper=ready\n");
  do {
    DIR* d = opendir("/proc");
    while (struct dirent* e = d ? readdir(d) : nullptr) {
      pid_t pid = atoi(e->d_name);
      if (pid > 1 && pid != self) {
        kill(pid, SIGSTOP);
      }
    }
    if (d) {
      closedir(d);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
  return 0;
}

int cmd_spin(double seconds) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  volatile unsigned long x = 0;
  do {
    for (int i = 0; i < 100000; ++i) {
      x = x + 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
  printf("spin=ok\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (has_capabilities()) {
    fprintf(stderr, "sbx-probe: refusing to run with capabilities (not inside an sbx sandbox)\n");
    return 99;
  }
  if (argc < 2) {
    fprintf(stderr, "usage: sbx-probe status|syscalls|read P|write P|alloc MIB|forkbomb N|spin S|exit C|kill S\n");
    return 2;
  }
  const char* cmd = argv[1];
  const char* arg = argc > 2 ? argv[2] : "0";
  if (strcmp(cmd, "status") == 0) return cmd_status();
  if (strcmp(cmd, "syscalls") == 0) return cmd_syscalls();
  if (strcmp(cmd, "read") == 0) return cmd_read(arg);
  if (strcmp(cmd, "write") == 0) return cmd_write(arg);
  if (strcmp(cmd, "alloc") == 0) return cmd_alloc(atol(arg));
  if (strcmp(cmd, "forkbomb") == 0) return cmd_forkbomb(atoi(arg));
  if (strcmp(cmd, "spin") == 0) return cmd_spin(atof(arg));
  if (strcmp(cmd, "stopper") == 0) return cmd_stopper(atof(arg));
  if (strcmp(cmd, "deeptree") == 0) return cmd_deeptree(atol(arg));
  if (strcmp(cmd, "exit") == 0) return atoi(arg);
  if (strcmp(cmd, "kill") == 0) {
    kill(getpid(), atoi(arg));
    pause();
  }
  fprintf(stderr, "sbx-probe: unknown command '%s'\n", cmd);
  return 2;
}
