#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"

using namespace sbx;

namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/sbx-unit-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

}  // namespace

TEST_SUITE("base.file") {

TEST_CASE("a syscall error names what was attempted, on what, and the errno") {
  auto r = read_file("/no/such/file");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "open '/no/such/file': No such file or directory (ENOENT)");
  CHECK(r.error().sys_errno() == ENOENT);
  Error e = Error("inner").context("middle").context("outer");
  CHECK(e.message() == "outer: middle: inner");
  CHECK(errno_name(EPERM) == "EPERM");
  CHECK(errno_name(4242) == "E4242");
}

TEST_CASE("files round trip and integers parse strictly") {
  std::string dir = temp_dir();
  REQUIRE(create_file(dir + "/f", "12345\n").ok());
  auto text = read_file(dir + "/f");
  REQUIRE(text.ok());
  CHECK(*text == "12345\n");
  CHECK(*parse_u64(*text) == 12345);
  CHECK_FALSE(parse_u64("12a").ok());
  CHECK_FALSE(parse_u64("").ok());
  CHECK_FALSE(parse_u64("-1").ok());
  CHECK_FALSE(read_file(dir + "/f", 3).ok());
  CHECK(remove_tree(dir).ok());
}

TEST_CASE("remove_tree removes nested trees without following symlinks, and a missing path is fine") {
  std::string dir = temp_dir();
  std::string outside = temp_dir();
  REQUIRE(create_file(outside + "/keep", "x").ok());
  REQUIRE(make_dirs(dir + "/a/b/c").ok());
  REQUIRE(create_file(dir + "/a/b/c/file", "x").ok());
  REQUIRE(::symlink(outside.c_str(), (dir + "/a/link").c_str()) == 0);
  REQUIRE(::chmod((dir + "/a/b").c_str(), 0) == 0);
  CHECK(remove_tree(dir).ok());
  CHECK_FALSE(exists(dir));
  CHECK(exists(outside + "/keep"));
  CHECK(remove_tree(dir).ok());
  CHECK(remove_tree(outside).ok());
}

TEST_CASE("remove_tree removes a tree deeper than the fd limit allows holding open") {
  std::string dir = temp_dir();
  struct rlimit rl {};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
  const size_t depth = rl.rlim_cur + 1000;
  int cur = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(cur >= 0);
  for (size_t i = 0; i < depth; ++i) {
    REQUIRE(::mkdirat(cur, "d", 0755) == 0);
    int next = ::openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(next >= 0);
    if (i % 100 == 0) {
      int f = ::openat(cur, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      REQUIRE(f >= 0);
      ::close(f);
    }
    ::close(cur);
    cur = next;
  }
  ::close(cur);
  auto r = remove_tree(dir);
  INFO((r.ok() ? std::string() : r.error().message()));
  CHECK(r.ok());
  CHECK_FALSE(exists(dir));
}

}  // TEST_SUITE
