// sbx-monitor: `sbx-monitor sandbox` or `sbx-monitor exec`, with fd 3 a unix stream socket to sbxd (monitor.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "monitor/monitor.h"

namespace {

// A closed stdio fd would be reused by the next open (the runtime's memfd, say) and then be handed to a process as
// its stdio: every one of 0, 1, 2 is open from the start.
void fill_stdio() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int null_fd = ::open("/dev/null", O_RDWR);
      if (null_fd >= 0 && null_fd != fd) {
        ::dup2(null_fd, fd);
        ::close(null_fd);
      }
    }
  }
}

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sbx::monitor;
  const char* mode = argc >= 2 ? argv[1] : "";
  const bool sandbox = std::strcmp(mode, "sandbox") == 0;
  const bool spare = sandbox && argc == 3 && std::strcmp(argv[2], "--spare") == 0;
  if (!(sandbox && (argc == 2 || spare)) && !(std::strcmp(mode, "exec") == 0 && argc == 2)) {
    std::fprintf(stderr, "usage: sbx-monitor sandbox [--spare] | exec   (started by sbxd, with fd 3 a socket to it)\n");
    return 2;
  }
  if (!is_socket(kChannelFd)) {
    std::fprintf(stderr, "sbx-monitor: fd 3 is not a socket; sbx-monitor is started by sbxd\n");
    return 2;
  }
  ::fcntl(kChannelFd, F_SETFD, FD_CLOEXEC);
  fill_stdio();
  Channel channel(kChannelFd);
  return sandbox ? run_sandbox(channel, spare) : run_exec(channel);
}
