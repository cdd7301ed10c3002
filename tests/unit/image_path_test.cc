#include <doctest/doctest.h>

#include <climits>
#include <string>

#include "image/path.h"
#include "image/unpack.h"

using namespace sbx::image;

namespace {

std::string norm(std::string_view raw) {
  auto p = normalize_entry_path(raw);
  return p.ok() ? p->str() : "ERROR: " + p.error().message();
}

}  // namespace

TEST_SUITE("image.path") {

TEST_CASE("entry paths lose their leading ./, dot components and extra slashes") {
  CHECK(norm("a/b") == "a/b");
  CHECK(norm("./a/b") == "a/b");
  CHECK(norm("././a//b/") == "a/b");
  CHECK(norm("a/./b/.") == "a/b");
  CHECK(norm("./") == ".");
  CHECK(norm(".") == ".");
  CHECK(normalize_entry_path("./").value().is_root());
  auto p = normalize_entry_path("usr/bin/env").value();
  CHECK(p.parent_str() == "usr/bin");
  CHECK(p.name() == "env");
  CHECK(p.prefix_str(1) == "usr");
  CHECK(normalize_entry_path("top").value().parent_str() == ".");
}

TEST_CASE("absolute paths, dot-dot components and overlong paths are refused") {
  CHECK(norm("/etc/passwd") == "ERROR: absolute path");
  CHECK(norm("../x") == "ERROR: '..' component in path");
  CHECK(norm("a/../../x") == "ERROR: '..' component in path");
  CHECK(norm("a/..") == "ERROR: '..' component in path");
  CHECK(norm("") == "ERROR: empty path");
  CHECK(norm(std::string(PATH_MAX, 'a')).find("PATH_MAX") != std::string::npos);
  CHECK(norm(std::string(NAME_MAX + 1, 'a')).find("NAME_MAX") != std::string::npos);
  CHECK(norm("a/" + std::string(NAME_MAX, 'b')) == "a/" + std::string(NAME_MAX, 'b'));
  CHECK(norm("..a/b..") == "..a/b..");
}

TEST_CASE("whiteout names map to the overlayfs forms, other .wh. shapes are refused") {
  CHECK(classify_whiteout("passwd").value().kind == WhiteoutKind::kNone);
  CHECK(classify_whiteout(".whx").value().kind == WhiteoutKind::kNone);
  auto file = classify_whiteout(".wh.passwd").value();
  CHECK(file.kind == WhiteoutKind::kFile);
  CHECK(file.target == "passwd");
  CHECK(classify_whiteout(".wh..hidden").value().target == ".hidden");
  CHECK(classify_whiteout(".wh..wh..opq").value().kind == WhiteoutKind::kOpaque);
  CHECK_FALSE(classify_whiteout(".wh.").ok());
  CHECK_FALSE(classify_whiteout(".wh..").ok());
  CHECK_FALSE(classify_whiteout(".wh...").ok());
  CHECK_FALSE(classify_whiteout(".wh..wh.plnk").ok());
  CHECK_FALSE(classify_whiteout(".wh..wh..opq2").ok());
}

TEST_CASE("a layer keeps security.capability and user xattrs only") {
  CHECK(keep_xattr("security.capability"));
  CHECK(keep_xattr("user.mime_type"));
  CHECK_FALSE(keep_xattr("security.selinux"));
  CHECK_FALSE(keep_xattr("trusted.overlay.opaque"));
  CHECK_FALSE(keep_xattr("system.posix_acl_access"));
  CHECK_FALSE(keep_xattr("user"));
}

}  // TEST_SUITE
