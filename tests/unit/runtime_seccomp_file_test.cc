// The compiled seccomp filter stored in a sandbox's run dir, read back by every exec.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <cstring>

#include "base/file.h"
#include "runtime/seccomp.h"
#include "temp_dir.h"

using namespace sbx;
using namespace sbx::rt;
using sbx::test::TempDir;

namespace {

std::shared_ptr<const SeccompFilter> default_filter() {
  auto text = read_file(SBX_SOURCE_ROOT "/seccomp-profiles/default.json", 4 << 20);
  REQUIRE(text.ok());
  auto profile = parse_seccomp_profile(*text, "default.json");
  REQUIRE(profile.ok());
  auto filter = compile_seccomp_profile(*profile, {});
  REQUIRE(filter.ok());
  return *filter;
}

}  // namespace

TEST_SUITE("rt.seccomp.file") {

TEST_CASE("a stored filter reads back instruction for instruction, from a 0600 file") {
  TempDir dir;
  auto filter = default_filter();
  const std::string path = dir.path + "/seccomp.bpf";
  REQUIRE(write_seccomp_filter(path, *filter).ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto back = read_seccomp_filter(path);
  REQUIRE_MESSAGE(back.ok(), back.error().message());
  REQUIRE((*back)->insns.size() == filter->insns.size());
  CHECK(std::memcmp((*back)->insns.data(), filter->insns.data(), filter->insns.size() * sizeof(sock_filter)) == 0);
  CHECK(dir.entries() == std::vector<std::string>{"seccomp.bpf"});  // the temp file was renamed into place
}

TEST_CASE("a missing filter is ENOENT, and a damaged one is refused") {
  TempDir dir;
  auto missing = read_seccomp_filter(dir.path + "/none.bpf");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().sys_errno() == ENOENT);

  const std::string path = dir.path + "/bad.bpf";
  REQUIRE(create_file(path, "not a filter").ok());
  auto bad = read_seccomp_filter(path);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().find("magic") != std::string::npos);

  REQUIRE(create_file(path, std::string("SBXBPF1\n") + "12345").ok());  // not a whole instruction
  bad = read_seccomp_filter(path);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().find("not a whole program") != std::string::npos);

  REQUIRE(create_file(path, "SBXBPF1\n").ok());  // no instruction at all
  CHECK_FALSE(read_seccomp_filter(path).ok());

  SeccompFilter empty;
  CHECK_FALSE(write_seccomp_filter(dir.path + "/empty.bpf", empty).ok());
}

}  // TEST_SUITE
