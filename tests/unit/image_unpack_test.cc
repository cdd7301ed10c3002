// The unpacker against a temp directory, fed entries directly (no archive). Entries are owned by the caller's own
// uid/gid, so this runs without root; whiteout devices and the opaque xattr need root and are checked only as root.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/file.h"
#include "image/unpack.h"
#include "temp_dir.h"

using namespace sbx;
using namespace sbx::image;

namespace {

class FakeSource : public EntrySource {
 public:
  void add(Entry e, std::string data = {}) {
    e.uid = ::getuid();
    e.gid = ::getgid();
    if (e.mode == 0) {
      e.mode = e.type == EntryType::kDir ? 0755 : 0644;
    }
    e.size = data.size();
    items_.push_back({std::move(e), std::move(data)});
  }
  Result<bool> next(Entry& e) override {
    ++calls;
    if (pos_ >= items_.size()) {
      return false;
    }
    e = items_[pos_].first;
    data_ = items_[pos_].second;
    sent_ = false;
    ++pos_;
    return true;
  }
  Result<std::optional<DataBlock>> read_block() override {
    if (sent_ || data_.empty()) {
      return std::optional<DataBlock>();
    }
    sent_ = true;
    return std::optional<DataBlock>(DataBlock{data_.data(), data_.size(), 0});
  }
  size_t calls = 0;

 private:
  std::vector<std::pair<Entry, std::string>> items_;
  size_t pos_ = 0;
  std::string data_;
  bool sent_ = false;
};

Entry make_entry(const std::string& path, EntryType type, const std::string& link = {}) {
  Entry e;
  e.path = path;
  e.type = type;
  e.link = link;
  return e;
}
Entry file(const std::string& path) { return make_entry(path, EntryType::kFile); }
Entry dir(const std::string& path) { return make_entry(path, EntryType::kDir); }
Entry symlink_to(const std::string& path, const std::string& target) {
  return make_entry(path, EntryType::kSymlink, target);
}
Entry hardlink_to(const std::string& path, const std::string& target) {
  return make_entry(path, EntryType::kHardlink, target);
}
Entry device(const std::string& path, EntryType type, uint32_t major, uint32_t minor) {
  Entry e = make_entry(path, type);
  e.rdev_major = major;
  e.rdev_minor = minor;
  return e;
}

struct Layer {
  test::TempDir tmp;
  Fd root;
  Layer() { root = open_at(AT_FDCWD, tmp.path, O_RDONLY | O_DIRECTORY).value(); }
  Result<UnpackStats> unpack(FakeSource& src, Limits limits = {}) {
    Budget budget(limits);
    return unpack_layer(root.get(), src, budget);
  }
  std::string path(const std::string& rel) const { return tmp.path + "/" + rel; }
  struct stat lstat(const std::string& rel) const {
    struct stat st {};
    REQUIRE(::lstat(path(rel).c_str(), &st) == 0);
    return st;
  }
  bool exists(const std::string& rel) const {
    struct stat st {};
    return ::lstat(path(rel).c_str(), &st) == 0;
  }
};

std::string refusal(FakeSource& src) {
  Layer layer;
  auto r = layer.unpack(src);
  return r.ok() ? "accepted" : r.error().message();
}

}  // namespace

TEST_SUITE("image.unpack") {

TEST_CASE("files, directories, symlinks, hardlinks and fifos are made with their modes and times") {
  Layer layer;
  FakeSource src;
  Entry d = dir("./usr/");
  d.has_mtime = true;
  d.mtime_sec = 1000000;
  src.add(d);
  Entry f = file("usr/bin/tool");  // its parent is implicit
  f.mode = 04755;
  src.add(f, "#!/bin/sh\n");
  src.add(symlink_to("usr/link", "../../../etc/passwd"));
  src.add(hardlink_to("usr/tool2", "./usr/bin/tool"));
  src.add(make_entry("usr/fifo", EntryType::kFifo));
  auto stats = layer.unpack(src);
  REQUIRE_MESSAGE(stats.ok(), stats.error().message());
  CHECK(stats->entries == 5);
  CHECK(*read_file(layer.path("usr/bin/tool")) == "#!/bin/sh\n");
  CHECK((layer.lstat("usr/bin/tool").st_mode & 07777) == 04755);
  CHECK(layer.lstat("usr/tool2").st_ino == layer.lstat("usr/bin/tool").st_ino);
  CHECK(S_ISFIFO(layer.lstat("usr/fifo").st_mode));
  char target[64] = {};
  REQUIRE(::readlink(layer.path("usr/link").c_str(), target, sizeof target - 1) > 0);
  CHECK(std::string(target) == "../../../etc/passwd");
  CHECK(layer.lstat("usr").st_mtime == 1000000);  // set after the entries inside it
}

TEST_CASE("paths that leave the layer are refused, naming the entry") {
  FakeSource dotdot;
  dotdot.add(file("a/../../x"), "x");
  CHECK(refusal(dotdot) == "entry 'a/../../x': '..' component in path");
  FakeSource absolute;
  absolute.add(file("/etc/passwd"), "x");
  CHECK(refusal(absolute) == "entry '/etc/passwd': absolute path");
}

TEST_CASE("an entry below a symlink is a symlink escape, and nothing lands at the symlink's target") {
  test::TempDir outside;
  FakeSource src;
  src.add(symlink_to("evil", outside.path));
  src.add(file("evil/passwd"), "owned");
  CHECK(refusal(src) == "entry 'evil/passwd': symlink escape: 'evil' is a symlink");
  CHECK(outside.entries().empty());
  FakeSource relative;
  relative.add(dir("d"));
  relative.add(symlink_to("d/up", "../../../.."));
  relative.add(dir("d/up/tmp"));
  CHECK(refusal(relative) == "entry 'd/up/tmp': symlink escape: 'd/up' is a symlink");
}

TEST_CASE("hardlinks only reach non-directories unpacked before them in this layer") {
  auto refused = [](Entry link, bool with_dir = false) {
    FakeSource src;
    src.add(file("x"), "x");
    if (with_dir) {
      src.add(dir("d"));
      src.add(symlink_to("s", "d"));
    }
    src.add(std::move(link));
    return refusal(src);
  };
  CHECK(refused(hardlink_to("l", "/etc/shadow")) == "entry 'l': hardlink escape: target '/etc/shadow': absolute path");
  CHECK(refused(hardlink_to("l", "../x")) == "entry 'l': hardlink escape: target '../x': '..' component in path");
  CHECK(refused(hardlink_to("l", "nothing")) ==
        "entry 'l': hardlink escape: target 'nothing' is not an entry unpacked before it");
  CHECK(refused(hardlink_to("l", "s/x"), true) == "entry 'l': hardlink escape: target 's/x' goes through a symlink");
  CHECK(refused(hardlink_to("l", "d"), true) == "entry 'l': hardlink escape: target 'd' is not a file, symlink or fifo");
  CHECK(refused(hardlink_to("l", "./"), true) == "entry 'l': hardlink escape: target './' is the layer root");
  CHECK(refused(hardlink_to("l", "x")) == "accepted");
}

TEST_CASE("a later entry replaces an earlier one unless both are directories") {
  Layer layer;
  FakeSource src;
  src.add(file("a"), "file");
  src.add(dir("a"));            // file -> dir
  src.add(file("a/inner"), "1");
  src.add(dir("a"));            // dir over dir keeps the contents
  src.add(dir("b"));
  src.add(file("b/gone"), "2");
  src.add(symlink_to("b", "a"));   // dir -> symlink: the tree goes
  src.add(file("c"), "old");
  src.add(file("c"), "new");
  auto r = layer.unpack(src);
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(*read_file(layer.path("a/inner")) == "1");
  CHECK(S_ISLNK(layer.lstat("b").st_mode));
  CHECK(*read_file(layer.path("c")) == "new");
}

TEST_CASE("device nodes and sockets are dropped and counted; foreign xattrs are dropped and counted") {
  Layer layer;
  FakeSource src;
  src.add(device("dev/sda", EntryType::kBlockDev, 8, 0));
  src.add(device("dev/null", EntryType::kCharDev, 1, 3));
  src.add(make_entry("run/sock", EntryType::kSocket));
  Entry f = file("f");
  f.xattrs = {{"security.selinux", "system_u:object_r:etc_t:s0"}, {"trusted.x", "y"}};
  src.add(f, "data");
  auto stats = layer.unpack(src);
  REQUIRE(stats.ok());
  CHECK(stats->dropped.devices == 2);
  CHECK(stats->dropped.other == 1);
  CHECK(stats->dropped.xattrs == 2);
  CHECK_FALSE(layer.exists("dev/sda"));
  CHECK_FALSE(layer.exists("run/sock"));
}

TEST_CASE("the entry limit stops the unpacking at the first entry too many") {
  FakeSource src;
  for (int i = 0; i < 100; ++i) {
    src.add(file("f" + std::to_string(i)), "x");
  }
  Layer layer;
  auto r = layer.unpack(src, Limits{10, 1000, 1000});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "more than 10 entries (max_entries)");
  CHECK(src.calls == 11);
  FakeSource big;
  big.add(file("big"), std::string(2000, 'x'));
  CHECK(layer.unpack(big, Limits{10, 1000, 1000}).error().message() ==
        "entry 'big': more than 1000 bytes of content (max_bytes)");
}

TEST_CASE("whiteouts become overlayfs whiteouts (root only)") {
  if (::geteuid() != 0) {
    MESSAGE("skipped: mknod of a whiteout and trusted.* xattrs need root");
    return;
  }
  Layer layer;
  FakeSource src;
  src.add(file("etc/.wh.passwd"));
  src.add(file("opt/.wh..wh..opq"));
  src.add(file("top"), "x");
  src.add(file(".wh.top"));
  REQUIRE(layer.unpack(src).ok());
  struct stat st = layer.lstat("etc/passwd");
  CHECK(S_ISCHR(st.st_mode));
  CHECK(st.st_rdev == makedev(0, 0));
  CHECK(S_ISCHR(layer.lstat("top").st_mode));
  CHECK_FALSE(layer.exists("etc/.wh.passwd"));
  char value[8] = {};
  CHECK(::getxattr(layer.path("opt").c_str(), "trusted.overlay.opaque", value, sizeof value) == 1);
  CHECK(value[0] == 'y');
  FakeSource bad;
  bad.add(file("x/.wh..wh.plnk"));
  CHECK(refusal(bad) == "entry 'x/.wh..wh.plnk': unsupported whiteout '.wh..wh.plnk'");
}

}  // TEST_SUITE
