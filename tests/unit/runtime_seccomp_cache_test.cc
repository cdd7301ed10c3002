// SeccompCache's disk dir: a program compiled by one process is loaded by the next instead of compiled, and nothing
// wrong in the dir can ever give a wrong program or fail a load.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/file.h"
#include "runtime/runtime.h"
#include "runtime/seccomp.h"
#include "temp_dir.h"

using namespace sbx;
using namespace sbx::rt;
using sbx::test::TempDir;

namespace {

const std::string kDefaultProfile = SBX_SOURCE_ROOT "/seccomp-profiles/default.json";
const std::string kUnconfinedProfile = SBX_SOURCE_ROOT "/seccomp-profiles/unconfined.json";

// The error's message, or "" (doctest builds a message even for an assertion that holds when run with -s).
template <typename T>
std::string error_of(const Result<T>& r) {
  return r.ok() ? std::string() : r.error().message();
}

// What one load by a new SeccompCache on `dir` did: as a later process (a monitor) would.
struct Load {
  std::shared_ptr<const SeccompFilter> filter;
  size_t compiled = 0;
  size_t disk_hits = 0;
};

Load load_fresh(const std::string& dir, const std::string& profile, const std::vector<std::string>& caps = {}) {
  SeccompCache cache;
  auto set = cache.set_disk_dir(dir);
  REQUIRE_MESSAGE(set.ok(), error_of(set));
  auto filter = cache.load(profile, caps);
  REQUIRE_MESSAGE(filter.ok(), error_of(filter));
  return Load{*filter, cache.compiled_count(), cache.disk_hits()};
}

bool same_program(const SeccompFilter& a, const SeccompFilter& b) {
  return a.insns.size() == b.insns.size() &&
         std::memcmp(a.insns.data(), b.insns.data(), a.insns.size() * sizeof(sock_filter)) == 0;
}

// The one file in the cache dir, which must hold nothing else (no temp file either).
std::string only_file(const TempDir& dir, const std::string& sub) {
  auto names = dir.entries(dir.path + "/" + sub);
  REQUIRE(names.size() == 1);
  CHECK(names[0].size() == 16 + 4);  // 16 hex digits + ".bpf"
  CHECK(names[0].ends_with(".bpf"));
  return dir.path + "/" + sub + "/" + names[0];
}

// A cache file as the format describes it, holding `key` and the program `filter`.
std::string cache_file_bytes(std::string_view key, const SeccompFilter& filter) {
  std::string data = "SBXBPFC1\n";
  uint64_t key_size = key.size();
  data.append(reinterpret_cast<const char*>(&key_size), sizeof key_size);
  data.append(key);
  data.append(reinterpret_cast<const char*>(filter.insns.data()), filter.insns.size() * sizeof(sock_filter));
  return data;
}

// Replaces the file at `path` with `data` (as another writer would, through a new inode).
void overwrite(const std::string& path, std::string_view data, mode_t mode = 0600) {
  REQUIRE(::unlink(path.c_str()) == 0);
  REQUIRE(create_file(path, data, mode).ok());
  REQUIRE(::chmod(path.c_str(), mode) == 0);  // past the umask
}

// After a miss on a bad file: the load compiled, gave the right program, and left a good file the next load uses.
void check_repaired(const std::string& dir, const Load& miss, const SeccompFilter& want) {
  CHECK(miss.compiled == 1);
  CHECK(miss.disk_hits == 0);
  CHECK(same_program(*miss.filter, want));
  Load next = load_fresh(dir, kDefaultProfile);
  CHECK(next.compiled == 0);
  CHECK(next.disk_hits == 1);
  CHECK(same_program(*next.filter, want));
}

// A cache dir as the first process leaves it: holding the default profile's file.
struct Primed {
  TempDir dir;
  std::string cache = dir.path + "/cache";
  Load first = load_fresh(cache, kDefaultProfile);
  std::string file = only_file(dir, "cache");
  std::string bytes() const {
    auto data = read_file(file, 1 << 20);
    REQUIRE(data.ok());
    return *data;
  }
  // Loads the default profile as a later process would, and checks that the file was a miss, repaired.
  void check_miss_repaired() const { check_repaired(cache, load_fresh(cache, kDefaultProfile), *first.filter); }
};

}  // namespace

TEST_SUITE("rt.seccomp.cache") {

TEST_CASE("a second cache on the same dir loads the program from disk instead of compiling it") {
  Primed p;  // the dir was created, mode 0700, and holds one file, mode 0600
  CHECK(p.first.compiled == 1);
  CHECK(p.first.disk_hits == 0);
  struct stat st {};
  REQUIRE(::stat(p.cache.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  REQUIRE(::stat(p.file.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

  SeccompCache second;
  REQUIRE(second.set_disk_dir(p.cache).ok());
  auto loaded = second.load(kDefaultProfile, {});
  REQUIRE(loaded.ok());
  CHECK(second.compiled_count() == 0);
  CHECK(second.disk_hits() == 1);
  CHECK(same_program(**loaded, *p.first.filter));
  auto again = second.load(kDefaultProfile, {});  // the memory cache answers from now on
  REQUIRE(again.ok());
  CHECK(again->get() == loaded->get());
  CHECK(second.disk_hits() == 1);
}

TEST_CASE("another profile text or other kept caps compile again; the same text at another path does not") {
  TempDir dir;
  const std::string cache = dir.path + "/cache";
  const std::string profile = dir.path + "/p.json";
  const std::string text = R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
      {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
      {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]})";
  REQUIRE(create_file(profile, text).ok());
  Load first = load_fresh(cache, profile);
  CHECK(first.compiled == 1);
  const std::string copy = dir.path + "/copy.json";
  REQUIRE(create_file(copy, text).ok());
  CHECK(load_fresh(cache, copy).disk_hits == 1);  // keyed by the text, not the path

  REQUIRE(create_file(profile, text + "\n").ok());  // the same rules, another text
  Load edited = load_fresh(cache, profile);
  CHECK(edited.compiled == 1);
  CHECK(edited.disk_hits == 0);
  CHECK(same_program(*edited.filter, *first.filter));

  Load admin = load_fresh(cache, copy, {"CAP_SYS_ADMIN"});
  CHECK(admin.compiled == 1);
  CHECK_FALSE(same_program(*admin.filter, *first.filter));
  Load normalized = load_fresh(cache, copy, {"sys_admin", "CAP_SYS_ADMIN"});
  CHECK(normalized.disk_hits == 1);
  CHECK(same_program(*normalized.filter, *admin.filter));
  CHECK(load_fresh(cache, copy, {"CAP_KILL"}).compiled == 1);  // a cap the profile never names: another key still
  CHECK(dir.entries(cache).size() == 4);
}

TEST_CASE("a damaged cache file is a miss, compiled and written again") {
  Primed p;
  const std::string good = p.bytes();
  const size_t program_bytes = p.first.filter->insns.size() * sizeof(sock_filter);
  const std::vector<std::pair<const char*, std::string>> damaged = {
      {"empty", ""},
      {"header only", good.substr(0, 17)},
      {"truncated in the key", good.substr(0, good.size() / 2)},
      {"truncated in an instruction", good.substr(0, good.size() - 3)},
      {"a trailing byte", good + "x"},
      {"no instructions", good.substr(0, good.size() - program_bytes)},
      {"the per-sandbox magic", "SBXBPF1\n" + good.substr(9)},
      {"a key length past the end", [&] {
         std::string bad = good;
         bad[9] = '\xff';  // the u64 after the 9-byte magic
         bad[16] = '\x7f';
         return bad;
       }()},
      {"a flipped byte in the key", [&] {
         std::string bad = good;
         bad[bad.size() - program_bytes - 2] ^= 1;
         return bad;
       }()},
  };
  for (const auto& [what, data] : damaged) {
    CAPTURE(what);
    overwrite(p.file, data);
    p.check_miss_repaired();
    CHECK(p.dir.entries(p.cache).size() == 1);
  }
}

TEST_CASE("a valid cache file made from another key is a miss and never gives its program") {
  Primed p;
  // Another profile's program under this name, as a hash collision would leave it.
  Load other = load_fresh(p.dir.path + "/other", kUnconfinedProfile);
  REQUIRE_FALSE(same_program(*other.filter, *p.first.filter));
  overwrite(p.file, cache_file_bytes("sbx seccomp cache 1\nanother key", *other.filter));
  p.check_miss_repaired();
  // The other profile's own file, renamed to this name: a whole valid file, for another key.
  REQUIRE(::rename(only_file(p.dir, "other").c_str(), p.file.c_str()) == 0);
  p.check_miss_repaired();
}

TEST_CASE("a cache file others may write, that is not ours, or that is not a regular file is a miss") {
  Primed p;
  const std::string good = p.bytes();
  for (mode_t mode : {0620, 0602}) {
    CAPTURE(mode);
    REQUIRE(::chmod(p.file.c_str(), mode) == 0);
    p.check_miss_repaired();
    struct stat st {};
    REQUIRE(::stat(p.file.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
  }

  // A symlink to a good file is not followed.
  const std::string elsewhere = p.dir.path + "/good.bpf";
  REQUIRE(create_file(elsewhere, good, 0600).ok());
  REQUIRE(::unlink(p.file.c_str()) == 0);
  REQUIRE(::symlink(elsewhere.c_str(), p.file.c_str()) == 0);
  p.check_miss_repaired();

  // A directory under the name cannot be replaced: every load compiles, and none fails.
  REQUIRE(::unlink(p.file.c_str()) == 0);
  REQUIRE(::mkdir(p.file.c_str(), 0700) == 0);
  Load blocked = load_fresh(p.cache, kDefaultProfile);
  CHECK(blocked.compiled == 1);
  CHECK(same_program(*blocked.filter, *p.first.filter));
  REQUIRE(::rmdir(p.file.c_str()) == 0);

  if (::geteuid() == 0) {  // only root can give a file away
    REQUIRE(create_file(p.file, good, 0600).ok());
    REQUIRE(::chown(p.file.c_str(), 65534, 65534) == 0);
    p.check_miss_repaired();
  }
}

TEST_CASE("a cache dir that others may write or that is not a directory is refused, naming the path") {
  TempDir dir;
  const std::string open = dir.path + "/open";
  REQUIRE(::mkdir(open.c_str(), 0700) == 0);
  REQUIRE(::chmod(open.c_str(), 0770) == 0);
  SeccompCache cache;
  auto r = cache.set_disk_dir(open);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "seccomp cache dir '" + open +
                                   "': writable by group or others (mode 0770); it must be private to the runtime, "
                                   "since the programs in it decide which syscalls sandboxes may make");

  const std::string file = dir.path + "/file";
  REQUIRE(create_file(file, "").ok());
  r = cache.set_disk_dir(file);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "seccomp cache dir '" + file + "': not a directory");

  if (::geteuid() == 0) {
    const std::string theirs = dir.path + "/theirs";
    REQUIRE(::mkdir(theirs.c_str(), 0700) == 0);
    REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
    r = cache.set_disk_dir(theirs);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().starts_with("seccomp cache dir '" + theirs + "': owned by uid 65534, not by"));
  }

  // Runtime::open refuses it before it touches anything else (cgroups, the init memfd).
  RuntimeConfig config;
  config.run_root = dir.path + "/run";
  config.seccomp_cache_dir = open;
  auto rt = Runtime::open(config);
  REQUIRE_FALSE(rt.ok());
  CHECK(rt.error().message().starts_with("open runtime: seccomp cache dir '" + open + "': writable by group"));

  // Refused dirs leave the cache in memory only; so does "".
  REQUIRE(cache.load(kDefaultProfile, {}).ok());
  CHECK(dir.entries(open).empty());
  CHECK(cache.set_disk_dir("").ok());
}

TEST_CASE("a cache dir that cannot be written to still gives the compiled program") {
  TempDir dir;
  const std::string cache = dir.path + "/cache";
  SeccompCache gone;
  REQUIRE(gone.set_disk_dir(cache).ok());
  REQUIRE(::rmdir(cache.c_str()) == 0);  // nothing can be created in a removed directory, even by root
  auto filter = gone.load(kDefaultProfile, {});
  REQUIRE_MESSAGE(filter.ok(), error_of(filter));
  CHECK(gone.compiled_count() == 1);
  CHECK(same_program(**filter, *load_fresh(dir.path + "/other", kDefaultProfile).filter));

  if (::geteuid() != 0) {  // root writes through a mode of 0500
    REQUIRE(::mkdir(cache.c_str(), 0500) == 0);
    Load read_only = load_fresh(cache, kDefaultProfile);
    CHECK(read_only.compiled == 1);
    CHECK(dir.entries(cache).empty());
  }
}

TEST_CASE("concurrent writers of one cache file leave one whole file and no temp files") {
  TempDir dir;
  const std::string cache = dir.path + "/cache";
  constexpr int kWriters = 6;
  std::vector<pid_t> pids;
  for (int i = 0; i < kWriters; ++i) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      SeccompCache mine;
      bool good = mine.set_disk_dir(cache).ok() && mine.load(kDefaultProfile, {}).ok();
      ::_exit(good ? 0 : 1);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  only_file(dir, "cache");
  Load after = load_fresh(cache, kDefaultProfile);
  CHECK(after.disk_hits == 1);
  CHECK(same_program(*after.filter, *load_fresh(dir.path + "/other", kDefaultProfile).filter));
}

TEST_CASE("compile and disk-cache load times of default.json (measured, not asserted)") {
  using Clock = std::chrono::steady_clock;
  TempDir dir;
  const std::string cache = dir.path + "/cache";
  constexpr int kRounds = 20;
  double compile_us = 0;
  double disk_us = 0;
  for (int i = 0; i < kRounds; ++i) {
    REQUIRE(remove_tree(cache).ok());
    auto start = Clock::now();
    Load miss = load_fresh(cache, kDefaultProfile);
    compile_us += std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    start = Clock::now();
    Load hit = load_fresh(cache, kDefaultProfile);
    disk_us += std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    REQUIRE(miss.compiled == 1);
    REQUIRE(hit.disk_hits == 1);
  }
  MESSAGE("default.json in a new SeccompCache: compile (and write the file) " << compile_us / kRounds
                                                                              << " us; load from the disk dir "
                                                                              << disk_us / kRounds << " us");
}

}  // TEST_SUITE
