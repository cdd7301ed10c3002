#include "runtime/namespaces.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sbx::rt {

int set_hostname(const std::string& name) noexcept {
  return sethostname(name.data(), name.size()) < 0 ? errno : 0;
}

int bring_up_loopback() noexcept {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    return errno;
  }
  struct ifreq req {};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  int err = 0;
  if (ioctl(sock, SIOCGIFFLAGS, &req) < 0) {
    err = errno;
  } else {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
    if (ioctl(sock, SIOCSIFFLAGS, &req) < 0) {
      err = errno;
    }
  }
  close(sock);
  return err;
}

int join_namespaces(int pidfd, bool with_userns) noexcept {
  return setns(pidfd, kSandboxNamespaces | (with_userns ? CLONE_NEWUSER : 0)) < 0 ? errno : 0;
}

}  // namespace sbx::rt
