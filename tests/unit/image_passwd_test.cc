#include <doctest/doctest.h>

#include <map>
#include <string>

#include "image/passwd.h"

using namespace sbx::image;

namespace {

const std::string kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment\n"
    "+nis::::::\n"
    "broken line\n"
    "bad:x:notanumber:1::/:/bin/sh\n"
    "nobody:x:65534:65533:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1001::/home/app:/bin/sh";  // no final newline
const std::string kGroup = "root:x:0:\nstaff:x:50:app\nnogroup:x:65533:\n";

std::string resolved(std::string_view user, std::optional<std::string> passwd = kPasswd,
                     std::optional<std::string> group = kGroup) {
  auto r = resolve_user(user, passwd, group);
  return r.ok() ? std::to_string(r->uid) + ":" + std::to_string(r->gid) : "ERROR: " + r.error().message();
}

// Layers as maps of path -> node, top first.
using Layers = std::vector<std::map<std::string, Node>>;

std::optional<size_t> visible(const Layers& layers, std::string_view path) {
  return find_visible_file(layers.size(), path, [&](size_t i, const std::string& p) {
    auto it = layers[i].find(p);
    return it == layers[i].end() ? Node{} : it->second;
  });
}

const Node kDir{NodeKind::kDir, false};
const Node kOpaqueDir{NodeKind::kDir, true};
const Node kFile{NodeKind::kFile, false};
const Node kWhiteout{NodeKind::kWhiteout, false};
const Node kOther{NodeKind::kOther, false};

}  // namespace

TEST_SUITE("image.passwd") {

TEST_CASE("passwd and group files parse to their well-formed lines") {
  auto users = parse_passwd(kPasswd);
  REQUIRE(users.size() == 3);
  CHECK(users[0].name == "root");
  CHECK(users[1].uid == 65534);
  CHECK(users[1].gid == 65533);
  CHECK(users[2].name == "app");
  auto groups = parse_group(kGroup);
  REQUIRE(groups.size() == 3);
  CHECK(groups[1].name == "staff");
  CHECK(groups[1].gid == 50);
  CHECK(parse_passwd("x:x:4294967295:0::/:/bin/sh\n").empty());
}

TEST_CASE("users resolve by name or number, with the passwd entry's group by default") {
  CHECK(resolved("") == "0:0");
  CHECK(resolved("", std::nullopt, std::nullopt) == "0:0");
  CHECK(resolved("nobody") == "65534:65533");
  CHECK(resolved("app") == "1000:1001");
  CHECK(resolved("1000") == "1000:1001");
  CHECK(resolved("4242") == "4242:0");
  CHECK(resolved("4242", std::nullopt, std::nullopt) == "4242:0");
  CHECK(resolved("app:staff") == "1000:50");
  CHECK(resolved("app:7") == "1000:7");
  CHECK(resolved("5:6", std::nullopt, std::nullopt) == "5:6");
  CHECK(resolved("0:nogroup") == "0:65533");
}

TEST_CASE("names that cannot be resolved are errors that say where they were looked for") {
  CHECK(resolved("ghost") == "ERROR: user 'ghost' not found in the image's /etc/passwd");
  CHECK(resolved("app", std::nullopt) == "ERROR: user 'app' not found in the image's /etc/passwd (the image has none)");
  CHECK(resolved("app:ghosts") == "ERROR: group 'ghosts' not found in the image's /etc/group");
  CHECK(resolved("1:staff", kPasswd, std::nullopt) ==
        "ERROR: group 'staff' not found in the image's /etc/group (the image has none)");
  CHECK(resolved(":staff").rfind("ERROR: user ':staff' is not of the form", 0) == 0);
  CHECK(resolved("app:").rfind("ERROR:", 0) == 0);
  CHECK(resolved("4294967295").rfind("ERROR:", 0) == 0);
}

TEST_CASE("the top layer's file wins; a lower one shows through missing upper entries") {
  Layers layers = {{{"etc", kDir}}, {{"etc", kDir}, {"etc/passwd", kFile}}, {{"etc", kDir}, {"etc/passwd", kFile}}};
  CHECK(visible(layers, "etc/passwd") == std::optional<size_t>(1));
  layers[0]["etc/passwd"] = kFile;
  CHECK(visible(layers, "etc/passwd") == std::optional<size_t>(0));
  CHECK(visible({{}, {{"etc", kDir}, {"etc/passwd", kFile}}}, "etc/passwd") == std::optional<size_t>(1));
  CHECK_FALSE(visible({{}, {}}, "etc/passwd"));
}

TEST_CASE("whiteouts, opaque directories and non-directories hide lower layers") {
  Layers file_whiteout = {{{"etc", kDir}, {"etc/passwd", kWhiteout}}, {{"etc", kDir}, {"etc/passwd", kFile}}};
  CHECK_FALSE(visible(file_whiteout, "etc/passwd"));
  Layers dir_whiteout = {{{"etc", kWhiteout}}, {{"etc", kDir}, {"etc/passwd", kFile}}};
  CHECK_FALSE(visible(dir_whiteout, "etc/passwd"));
  Layers opaque = {{{"etc", kOpaqueDir}}, {{"etc", kDir}, {"etc/passwd", kFile}}};
  CHECK_FALSE(visible(opaque, "etc/passwd"));
  Layers opaque_with_file = {{{"etc", kOpaqueDir}, {"etc/passwd", kFile}}, {}};
  CHECK(visible(opaque_with_file, "etc/passwd") == std::optional<size_t>(0));
  Layers symlinked_etc = {{{"etc", kOther}}, {{"etc", kDir}, {"etc/passwd", kFile}}};
  CHECK_FALSE(visible(symlinked_etc, "etc/passwd"));
  Layers passwd_is_dir = {{{"etc", kDir}, {"etc/passwd", kDir}}, {{"etc", kDir}, {"etc/passwd", kFile}}};
  CHECK_FALSE(visible(passwd_is_dir, "etc/passwd"));
}

}  // TEST_SUITE
