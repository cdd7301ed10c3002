#include "base/unix_address.h"

#include <sys/socket.h>

#include <cstring>

namespace sbx {

Result<sockaddr_un> unix_address(std::string_view path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error(fmt::format("socket path '{}' must be 1 to {} bytes long", path, sizeof addr.sun_path - 1),
                 ENAMETOOLONG);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace sbx
