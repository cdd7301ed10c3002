#include "image/passwd.h"

#include <algorithm>
#include <charconv>

namespace sbx::image {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

// A decimal id below 2^32 - 1 ((uid_t)-1 is no id).
std::optional<uint32_t> parse_id(std::string_view s) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || v >= 0xffffffffULL) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(v);
}

bool skipped_line(std::string_view line) {
  return line.empty() || line.front() == '#' || line.front() == '+' || line.front() == '-';
}

}  // namespace

std::vector<PasswdEntry> parse_passwd(std::string_view text) {
  std::vector<PasswdEntry> out;
  for (auto line : split(text, '\n')) {
    if (skipped_line(line)) {
      continue;
    }
    auto f = split(line, ':');
    if (f.size() < 4 || f[0].empty()) {
      continue;
    }
    auto uid = parse_id(f[2]);
    auto gid = parse_id(f[3]);
    if (uid && gid) {
      out.push_back(PasswdEntry{std::string(f[0]), *uid, *gid});
    }
  }
  return out;
}

std::vector<GroupEntry> parse_group(std::string_view text) {
  std::vector<GroupEntry> out;
  for (auto line : split(text, '\n')) {
    if (skipped_line(line)) {
      continue;
    }
    auto f = split(line, ':');
    if (f.size() < 3 || f[0].empty()) {
      continue;
    }
    if (auto gid = parse_id(f[2])) {
      out.push_back(GroupEntry{std::string(f[0]), *gid});
    }
  }
  return out;
}

Result<UserIds> resolve_user(std::string_view user, const std::optional<std::string>& passwd,
                             const std::optional<std::string>& group) {
  if (user.empty()) {
    return UserIds{};
  }
  size_t colon = user.find(':');
  std::string_view u = user.substr(0, colon);
  std::optional<std::string_view> g;
  if (colon != std::string_view::npos) {
    g = user.substr(colon + 1);
  }
  if (u.empty() || (g && g->empty())) {
    return make_error("user '{}' is not of the form user[:group]", user);
  }
  auto users = passwd ? parse_passwd(*passwd) : std::vector<PasswdEntry>();
  UserIds ids;
  if (auto uid = parse_id(u)) {
    ids.uid = *uid;
    for (const auto& e : users) {
      if (e.uid == *uid) {
        ids.gid = e.gid;
        break;
      }
    }
  } else {
    auto it = std::find_if(users.begin(), users.end(), [&](const auto& e) { return e.name == u; });
    if (it == users.end()) {
      return make_error("user '{}' not found in the image's /etc/passwd{}", u, passwd ? "" : " (the image has none)");
    }
    ids.uid = it->uid;
    ids.gid = it->gid;
  }
  if (!g) {
    return ids;
  }
  if (auto gid = parse_id(*g)) {
    ids.gid = *gid;
    return ids;
  }
  auto groups = group ? parse_group(*group) : std::vector<GroupEntry>();
  auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& e) { return e.name == *g; });
  if (it == groups.end()) {
    return make_error("group '{}' not found in the image's /etc/group{}", *g, group ? "" : " (the image has none)");
  }
  ids.gid = it->gid;
  return ids;
}

std::optional<size_t> find_visible_file(size_t layers, std::string_view path, const LayerStat& stat) {
  auto parts = split(path, '/');
  for (size_t layer = 0; layer < layers; ++layer) {
    bool lower_hidden = false;  // an opaque directory on the way hides every layer below this one
    std::string prefix;
    for (size_t i = 0; i < parts.size(); ++i) {
      prefix += (i == 0 ? "" : "/") + std::string(parts[i]);
      Node node = stat(layer, prefix);
      bool last = i + 1 == parts.size();
      if (node.kind == NodeKind::kMissing) {
        break;
      }
      if (last) {
        return node.kind == NodeKind::kFile ? std::optional<size_t>(layer) : std::nullopt;
      }
      if (node.kind != NodeKind::kDir) {
        return std::nullopt;  // a whiteout or a non-directory hides the path in every lower layer
      }
      lower_hidden = lower_hidden || node.opaque;
    }
    if (lower_hidden) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace sbx::image
