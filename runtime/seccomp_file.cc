// A compiled seccomp filter stored as a file: written once when a sandbox is created, read by every exec into it.
#include <fcntl.h>
#include <linux/filter.h>
#include <stdio.h>

#include <cstring>
#include <string_view>

#include "base/file.h"
#include "runtime/seccomp.h"

namespace sbx::rt {

namespace {

constexpr std::string_view kMagic = "SBXBPF1\n";
constexpr size_t kMaxFileBytes = kMagic.size() + BPF_MAXINSNS * sizeof(sock_filter);

}  // namespace

Result<void> write_seccomp_filter(const std::string& path, const SeccompFilter& filter) {
  if (filter.insns.empty() || filter.insns.size() > BPF_MAXINSNS) {
    return make_error("store the seccomp filter in '{}': {} instructions is not a valid program", path,
                      filter.insns.size());
  }
  std::string data(kMagic);
  data.append(reinterpret_cast<const char*>(filter.insns.data()), filter.insns.size() * sizeof(sock_filter));
  const std::string tmp = path + ".tmp";
  SBX_TRY_CTX(create_file(tmp, data, 0600), "store the seccomp filter");
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    return sys_error("store the seccomp filter: rename '{}' to '{}'", tmp, path);
  }
  return ok();
}

Result<std::shared_ptr<const SeccompFilter>> read_seccomp_filter(const std::string& path) {
  auto data = read_file(path, kMaxFileBytes);
  if (!data.ok()) {
    return std::move(data).error().context("load the stored seccomp filter");
  }
  std::string_view body(*data);
  if (!body.starts_with(kMagic)) {
    return make_error("load the stored seccomp filter: '{}' does not start with the filter magic", path);
  }
  body.remove_prefix(kMagic.size());
  if (body.empty() || body.size() % sizeof(sock_filter) != 0) {
    return make_error("load the stored seccomp filter: '{}' holds {} bytes of instructions, not a whole program", path,
                      body.size());
  }
  auto filter = std::make_shared<SeccompFilter>();
  filter->insns.resize(body.size() / sizeof(sock_filter));
  std::memcpy(filter->insns.data(), body.data(), body.size());
  return std::shared_ptr<const SeccompFilter>(std::move(filter));
}

}  // namespace sbx::rt
