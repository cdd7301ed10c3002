#include "image/path.h"

#include <algorithm>
#include <climits>

namespace sbx::image {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueName = ".wh..wh..opq";

}  // namespace

std::string EntryPath::str() const {
  if (parts.empty()) {
    return ".";
  }
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) {
      out.push_back('/');
    }
    out += p;
  }
  return out;
}

std::string EntryPath::prefix_str(size_t n) const {
  EntryPath prefix;
  prefix.parts.assign(parts.begin(), parts.begin() + static_cast<std::ptrdiff_t>(std::min(n, parts.size())));
  return prefix.str();
}

std::string EntryPath::parent_str() const { return prefix_str(parts.empty() ? 0 : parts.size() - 1); }

Result<EntryPath> normalize_entry_path(std::string_view raw) {
  if (raw.empty()) {
    return make_error("empty path");
  }
  if (raw.front() == '/') {
    return make_error("absolute path");
  }
  if (raw.size() >= PATH_MAX) {
    return make_error("path longer than PATH_MAX ({})", PATH_MAX);
  }
  if (raw.find('\0') != std::string_view::npos) {
    return make_error("NUL in path");
  }
  EntryPath out;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t end = raw.find('/', start);
    if (end == std::string_view::npos) {
      end = raw.size();
    }
    std::string_view part = raw.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      return make_error("'..' component in path");
    }
    if (part.size() > NAME_MAX) {
      return make_error("name longer than NAME_MAX ({})", NAME_MAX);
    }
    out.parts.emplace_back(part);
  }
  return out;
}

Result<Whiteout> classify_whiteout(std::string_view name) {
  if (name.substr(0, kWhiteoutPrefix.size()) != kWhiteoutPrefix) {
    return Whiteout{};
  }
  if (name == kOpaqueName) {
    return Whiteout{WhiteoutKind::kOpaque, {}};
  }
  std::string_view target = name.substr(kWhiteoutPrefix.size());
  if (target.empty() || target == "." || target == ".." ||
      target.substr(0, kWhiteoutPrefix.size()) == kWhiteoutPrefix) {
    return make_error("unsupported whiteout '{}'", name);
  }
  return Whiteout{WhiteoutKind::kFile, std::string(target)};
}

}  // namespace sbx::image
