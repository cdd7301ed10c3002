#pragma once
// The address of a unix socket at a file system path, for bind and connect.
#include <sys/un.h>

#include <string_view>

#include "base/error.h"

namespace sbx {

// `path` as a sockaddr_un; ENAMETOOLONG when it is empty or does not fit (107 bytes on Linux).
Result<sockaddr_un> unix_address(std::string_view path);

}  // namespace sbx
