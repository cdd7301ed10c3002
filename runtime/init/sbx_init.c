// sbx-init: pid 1 of every sandbox.
//
//   sbx-init                 idle: reap orphans until SIGTERM, SIGINT or SIGHUP, then exit 0
//   sbx-init -- CMD ARGS...  run CMD as its child, forward signals to it, reap orphans; when CMD ends, kill what is
//                            left in the sandbox and exit with CMD's status (128+N for signal N)
//   sbx-init --exec -- CMD ARGS...
//                            (any pid) exec CMD, searching the PATH of the environment: how every exec reaches its
//                            program, so that no process inside a sandbox ever has a host binary as /proc/self/exe
//                            (CVE-2019-5736). On failure it reports on fd 3, the runtime's sync channel.
//
// As init it inherits fd 3 as the status channel to the runtime and writes one line there before it exits:
// "exited N" or "signaled N", followed for the main command by what it used: "USER_US SYSTEM_US MAXRSS_KIB". The
// runtime execs this binary from a sealed memfd, so /proc/1/exe inside the sandbox never points at a host file.
// C, statically linked, and only libc: built with musl (musl-gcc) when the machine has it, because glibc's static
// start-up probes the CPU's caches with dozens of CPUID instructions, each a VM exit on a virtual machine: 0.6 ms of
// CPU per start against musl's 0.03 ms, paid by every sandbox's init and by every exec, which passes through
// `sbx-init --exec`. Without musl-gcc the C compiler's libc is used. Differences between the two that a user can
// see: PATH search without a PATH variable (musl: /usr/local/bin:/bin:/usr/bin) and strerror's wording.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kStatusFd = 3 };

struct main_state {
  pid_t pid;
  bool done;
  int status;
  struct rusage usage;
};

static unsigned long long micros(const struct timeval* tv) {
  return (unsigned long long)tv->tv_sec * 1000000ull + (unsigned long long)tv->tv_usec;
}

// One line on the status channel; `ru` (may be NULL) adds what the main command used.
static void report(const char* kind, int value, const struct rusage* ru) {
  char line[128];
  int n = 0;
  if (ru != NULL) {
    n = snprintf(line, sizeof line, "%s %d %llu %llu %llu\n", kind, value, micros(&ru->ru_utime),
                 micros(&ru->ru_stime), (unsigned long long)ru->ru_maxrss);
  } else {
    n = snprintf(line, sizeof line, "%s %d\n", kind, value);
  }
  if (n > 0) {
    ssize_t ignored = write(kStatusFd, line, (size_t)n);
    (void)ignored;
  }
}

static _Noreturn void finish(const struct main_state* main) {
  int wait_status = main->status;
  if (WIFSIGNALED(wait_status)) {
    report("signaled", WTERMSIG(wait_status), &main->usage);
    _exit(128 + WTERMSIG(wait_status));
  }
  int code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 1;
  report("exited", code, &main->usage);
  _exit(code);
}

static _Noreturn void exec_main(char** argv, const sigset_t* original_mask) {
  for (int sig = 1; sig < NSIG; ++sig) {
    signal(sig, SIG_DFL);
  }
  sigprocmask(SIG_SETMASK, original_mask, NULL);
  setsid();
  execvp(argv[0], argv);
  int err = errno;
  dprintf(2, "sbx-init: exec '%s': %s\n", argv[0], strerror(err));
  _exit(err == ENOENT ? 127 : 126);
}

// Reaps every exited child; records the main command's status.
static void reap(struct main_state* main) {
  for (;;) {
    int status = 0;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    pid_t pid = wait4(-1, &status, WNOHANG, &usage);
    if (pid <= 0) {
      return;
    }
    if (pid == main->pid) {
      main->done = true;
      main->status = status;
      main->usage = usage;
    }
  }
}

// The main command is gone: everything else in the sandbox goes too, then init reports and exits.
static _Noreturn void end_sandbox(const struct main_state* main) {
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
  finish(main);
}

static bool is_stop_signal(int sig) { return sig == SIGTERM || sig == SIGINT || sig == SIGHUP; }

static const char* errno_name(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOEXEC: return "ENOEXEC";
    case ENOTDIR: return "ENOTDIR";
    case ELOOP: return "ELOOP";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case ETXTBSY: return "ETXTBSY";
    case EISDIR: return "EISDIR";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    default: return "errno";
  }
}

// --exec: becomes CMD. The sync channel (fd 3) closes on success; on failure it carries the runtime's error format.
static int exec_mode(char** cmd) {
  fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);
  execvp(cmd[0], cmd);
  int err = errno;
  // One write: the channel is a SOCK_SEQPACKET socket, one message per write.
  char msg[512];
  int n = snprintf(msg, sizeof msg, "E%d exec '%.256s' in the sandbox: %s (%s)", err, cmd[0], strerror(err),
                   errno_name(err));
  if (n > 0) {
    size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    ssize_t ignored = write(kStatusFd, msg, len);
    (void)ignored;
  }
  return err == ENOENT ? 127 : 126;
}

int main(int argc, char** argv) {
  if (argc >= 4 && strcmp(argv[1], "--exec") == 0 && strcmp(argv[2], "--") == 0) {
    return exec_mode(argv + 3);
  }
  // Only ever pid 1 of a fresh pid namespace: elsewhere its kill(-1, SIGKILL) would hit every process it may signal.
  if (getpid() != 1) {
    dprintf(2, "sbx-init: refusing to run as pid %d; sbx-init runs only as pid 1 of a sandbox\n", getpid());
    return 125;
  }
  fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  prctl(PR_SET_NAME, "sbx-init", 0, 0, 0);

  char** cmd = NULL;
  if (argc >= 3 && strcmp(argv[1], "--") == 0) {
    cmd = argv + 2;
  } else if (argc != 1) {
    dprintf(2, "sbx-init: usage: sbx-init [-- CMD ARGS...]\n");
    report("exited", 2, NULL);
    return 2;
  }

  sigset_t all;
  sigset_t original;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &original);

  struct main_state main_state;
  memset(&main_state, 0, sizeof main_state);
  main_state.pid = -1;
  if (cmd != NULL) {
    main_state.pid = fork();
    if (main_state.pid < 0) {
      dprintf(2, "sbx-init: fork: %s\n", strerror(errno));
      report("exited", 1, NULL);
      return 1;
    }
    if (main_state.pid == 0) {
      exec_main(cmd, &original);
    }
  }

  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0) {
      continue;
    }
    if (sig == SIGCHLD) {
      reap(&main_state);
      if (main_state.done) {
        end_sandbox(&main_state);
      }
      continue;
    }
    if (cmd == NULL) {
      if (is_stop_signal(sig)) {
        report("exited", 0, NULL);
        return 0;
      }
      continue;
    }
    kill(main_state.pid, sig);
  }
}
