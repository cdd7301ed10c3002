#include "runtime/userns.h"

#include <fcntl.h>
#include <grp.h>
#include <unistd.h>

#include <algorithm>

#include "base/file.h"

namespace sbx::rt {

namespace {

uint64_t end_of(uint32_t start, uint32_t count) { return static_cast<uint64_t>(start) + count; }

bool overlaps(uint32_t a, uint32_t a_count, uint32_t b, uint32_t b_count) {
  return a < end_of(b, b_count) && b < end_of(a, a_count);
}

Result<void> check_line(const IdMapping& m, std::string_view field, size_t i) {
  if (m.count == 0) {
    return make_error("{}[{}]: count must be at least 1", field, i);
  }
  // uid 4294967295 is (uid_t)-1, "no change" to setresuid: the kernel refuses a map that reaches it.
  if (end_of(m.inside, m.count) > UINT32_MAX || end_of(m.host, m.count) > UINT32_MAX) {
    return make_error("{}[{}]: {} ids from {} inside / {} on the host run past 4294967294", field, i, m.count,
                      m.inside, m.host);
  }
  if (m.host == 0) {
    return make_error("{}[{}]: maps the host's id 0; a user namespace that holds the host's root isolates nothing",
                      field, i);
  }
  return ok();
}

}  // namespace

std::string format_id_map(const std::vector<IdMapping>& map) {
  std::string text;
  for (const IdMapping& m : map) {
    text += fmt::format("{} {} {}\n", m.inside, m.host, m.count);
  }
  return text;
}

std::optional<uint32_t> map_to_host(const std::vector<IdMapping>& map, uint32_t inside) {
  for (const IdMapping& m : map) {
    if (inside >= m.inside && inside < end_of(m.inside, m.count)) {
      return m.host + (inside - m.inside);
    }
  }
  return std::nullopt;
}

Result<void> validate_id_map(const std::vector<IdMapping>& map, std::string_view field) {
  if (map.empty() || map.size() > kMaxIdMapLines) {
    return make_error("{}: must have 1 to {} lines, not {}", field, kMaxIdMapLines, map.size());
  }
  for (size_t i = 0; i < map.size(); ++i) {
    SBX_TRY(check_line(map[i], field, i));
    for (size_t j = 0; j < i; ++j) {
      if (overlaps(map[i].inside, map[i].count, map[j].inside, map[j].count)) {
        return make_error("{}[{}]: ids inside overlap those of line {}", field, i, j);
      }
      if (overlaps(map[i].host, map[i].count, map[j].host, map[j].count)) {
        return make_error("{}[{}]: host ids overlap those of line {}", field, i, j);
      }
    }
  }
  if (!map_to_host(map, 0)) {
    return make_error("{}: id 0 inside is not mapped; the sandbox's root must be", field);
  }
  return ok();
}

UserNamespacePlan contiguous_userns(uint32_t first, uint32_t count) {
  UserNamespacePlan u;
  u.uid_map = {{0, first, count}};
  u.gid_map = {{0, first, count}};
  return u;
}

uint32_t UserNamespacePlan::host_root_uid() const { return map_to_host(uid_map, 0).value_or(UINT32_MAX); }
uint32_t UserNamespacePlan::host_root_gid() const { return map_to_host(gid_map, 0).value_or(UINT32_MAX); }

Result<void> write_id_maps(pid_t pid, const UserNamespacePlan& userns) {
  // One write(2) each: the kernel takes a map in a single write and refuses a second.
  for (const auto& [name, map] : {std::pair{"uid_map", &userns.uid_map}, std::pair{"gid_map", &userns.gid_map}}) {
    std::string path = fmt::format("/proc/{}/{}", pid, name);
    SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, path, O_WRONLY));
    std::string text = format_id_map(*map);
    ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size())) {
      return sys_error("write the user namespace's {} '{}'", name, trim(text));
    }
  }
  return ok();
}

Result<Fd> open_user_namespace(pid_t pid) {
  auto fd = open_at(AT_FDCWD, fmt::format("/proc/{}/ns/user", pid), O_RDONLY);
  if (!fd.ok()) {
    return std::move(fd).error().context("open the sandbox's user namespace");
  }
  return fd;
}

int become_namespace_root(const char** step) noexcept {
  *step = "drop the host's supplementary groups";
  if (::setgroups(0, nullptr) < 0) {
    return errno;
  }
  *step = "become gid 0 of the user namespace";
  if (::setresgid(0, 0, 0) < 0) {
    return errno;
  }
  *step = "become uid 0 of the user namespace";
  if (::setresuid(0, 0, 0) < 0) {
    return errno;
  }
  return 0;
}

}  // namespace sbx::rt
