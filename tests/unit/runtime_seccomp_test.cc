#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/file.h"
#include "runtime/seccomp.h"
#include "temp_dir.h"

namespace {

using sbx::rt::SeccompAction;
using sbx::rt::SeccompCache;
using sbx::rt::SeccompFilter;
using sbx::rt::SeccompOp;
using sbx::rt::SeccompProfile;
using sbx::test::TempDir;

const std::string kDefaultProfile = SBX_SOURCE_ROOT "/seccomp-profiles/default.json";
const std::string kUnconfinedProfile = SBX_SOURCE_ROOT "/seccomp-profiles/unconfined.json";

SeccompProfile parse_ok(const std::string& json) {
  auto r = sbx::rt::parse_seccomp_profile(json, "test.json");
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  return std::move(r).value();
}

std::string parse_error(const std::string& json) {
  auto r = sbx::rt::parse_seccomp_profile(json, "test.json");
  REQUIRE_MESSAGE(!r.ok(), json);
  return r.error().message();
}

// A profile around one syscalls[] entry.
std::string with_rule(const std::string& rule) {
  return R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [)" + rule + "]}";
}

// `text` with every "@@" replaced by `value`.
std::string subst(std::string text, std::string_view value) {
  for (size_t at = text.find("@@"); at != std::string::npos; at = text.find("@@", at + value.size())) {
    text.replace(at, 2, value);
  }
  return text;
}

std::shared_ptr<const SeccompFilter> compile_ok(const SeccompProfile& profile, const std::vector<std::string>& caps) {
  auto r = sbx::rt::compile_seccomp_profile(profile, caps);
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  REQUIRE(*r != nullptr);
  return std::move(r).value();
}

SeccompProfile load_default_profile() {
  auto text = sbx::read_file(kDefaultProfile);
  REQUIRE_MESSAGE(text.ok(), text.error().message());
  return parse_ok(*text);
}

void write_profile(const std::string& path, const std::string& text, int64_t mtime_sec) {
  REQUIRE(sbx::create_file(path, text).ok());
  timespec times[2] = {{mtime_sec, 0}, {mtime_sec, 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

// ---------------------------------------------------------------------------------------------------------------
// A classic-BPF interpreter for what libseccomp emits, so the compiled program's decisions can be checked for any
// architecture without installing it.

constexpr uint32_t kBadProgram = 0xdeadbeef;

bool jump_taken(uint16_t code, uint32_t a, uint32_t operand) {
  switch (BPF_OP(code)) {
    case BPF_JEQ:
      return a == operand;
    case BPF_JGT:
      return a > operand;
    case BPF_JGE:
      return a >= operand;
    case BPF_JSET:
      return (a & operand) != 0;
    default:
      return false;
  }
}

uint32_t run_bpf(const std::vector<sock_filter>& prog, const seccomp_data& data) {
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const sock_filter& in = prog[pc];
    uint16_t cls = BPF_CLASS(in.code);
    if (in.code == (BPF_LD | BPF_W | BPF_ABS)) {
      if (in.k + 4 > sizeof data) {
        return kBadProgram;
      }
      std::memcpy(&a, reinterpret_cast<const char*>(&data) + in.k, 4);
    } else if (in.code == (BPF_LD | BPF_IMM)) {
      a = in.k;
    } else if (in.code == (BPF_LDX | BPF_IMM)) {
      x = in.k;
    } else if (in.code == (BPF_LD | BPF_MEM) && in.k < BPF_MEMWORDS) {
      a = mem[in.k];
    } else if (in.code == (BPF_LDX | BPF_MEM) && in.k < BPF_MEMWORDS) {
      x = mem[in.k];
    } else if (in.code == BPF_ST && in.k < BPF_MEMWORDS) {
      mem[in.k] = a;
    } else if (in.code == BPF_STX && in.k < BPF_MEMWORDS) {
      mem[in.k] = x;
    } else if (in.code == (BPF_ALU | BPF_AND | BPF_K)) {
      a &= in.k;
    } else if (in.code == (BPF_ALU | BPF_OR | BPF_K)) {
      a |= in.k;
    } else if (in.code == (BPF_MISC | BPF_TAX)) {
      x = a;
    } else if (in.code == (BPF_MISC | BPF_TXA)) {
      a = x;
    } else if (in.code == (BPF_JMP | BPF_JA)) {
      pc += in.k;
    } else if (cls == BPF_JMP && BPF_OP(in.code) != BPF_JA) {
      pc += jump_taken(in.code, a, BPF_SRC(in.code) == BPF_X ? x : in.k) ? in.jt : in.jf;
    } else if (in.code == (BPF_RET | BPF_K)) {
      return in.k;
    } else if (in.code == (BPF_RET | BPF_A)) {
      return a;
    } else {
      return kBadProgram;
    }
  }
  return kBadProgram;  // ran off the end
}

constexpr uint32_t kX32Bit = 0x40000000;
constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kEperm = SECCOMP_RET_ERRNO | EPERM;
constexpr uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;

struct AbiCall {
  const char* name;
  int x86_64, x86, x32;  // the x32 number without its 0x40000000 bit
  uint32_t expected;
};

// Numbers from the kernel's syscall tables (arch/x86/entry/syscalls).
constexpr AbiCall kCalls[] = {
    {"read", 0, 3, 0, kAllow},
    {"write", 1, 4, 1, kAllow},
    {"openat", 257, 295, 257, kAllow},
    {"execve", 59, 11, 520, kAllow},
    {"execveat", 322, 358, 545, kAllow},
    {"mmap", 9, 90, 9, kAllow},
    {"futex", 202, 240, 202, kAllow},
    {"getpid", 39, 20, 39, kAllow},
    {"socketpair", 53, 360, 53, kAllow},
    {"sendmsg", 46, 370, 518, kAllow},
    {"wait4", 61, 114, 61, kAllow},
    {"rseq", 334, 386, 334, kAllow},
    {"getrandom", 318, 355, 318, kAllow},
    {"memfd_create", 319, 356, 319, kAllow},
    {"statx", 332, 383, 332, kAllow},
    {"close_range", 436, 436, 436, kAllow},
    {"pidfd_open", 434, 434, 434, kAllow},
    {"clone3", 435, 435, 435, kEnosys},
    {"mount", 165, 21, 165, kEperm},
    {"umount2", 166, 52, 166, kEperm},
    {"unshare", 272, 310, 272, kEperm},
    {"setns", 308, 346, 308, kEperm},
    {"ptrace", 101, 26, 521, kEperm},
    {"process_vm_readv", 310, 347, 539, kEperm},
    {"bpf", 321, 357, 321, kEperm},
    {"keyctl", 250, 288, 250, kEperm},
    {"io_uring_setup", 425, 425, 425, kEperm},
    {"init_module", 175, 128, 175, kEperm},
    {"reboot", 169, 88, 169, kEperm},
    {"pivot_root", 155, 217, 155, kEperm},
    {"chroot", 161, 61, 161, kEperm},
    {"kexec_load", 246, 283, 528, kEperm},
    {"perf_event_open", 298, 336, 298, kEperm},
    {"userfaultfd", 323, 374, 323, kEperm},
    {"open_by_handle_at", 304, 342, 304, kEperm},
    {"clock_settime", 227, 264, 227, kEperm},
    {"sethostname", 170, 74, 170, kEperm},
    {"fsopen", 430, 430, 430, kEperm},
    {"syslog", 103, 103, 103, kEperm},
    {"swapon", 167, 87, 167, kEperm},
};

struct Abi {
  const char* name;
  uint32_t audit_arch;
};

seccomp_data call_data(uint32_t arch, int nr, uint64_t arg0 = 0) {
  seccomp_data d{};
  d.nr = nr;
  d.arch = arch;
  d.args[0] = arg0;
  return d;
}

// Runs the program for one call on each of x86_64, x86 and x32 and returns the three results.
std::vector<uint32_t> decide(const SeccompFilter& f, int x86_64, int x86, int x32, uint64_t arg0 = 0) {
  return {run_bpf(f.insns, call_data(AUDIT_ARCH_X86_64, x86_64, arg0)),
          run_bpf(f.insns, call_data(AUDIT_ARCH_I386, x86, arg0)),
          run_bpf(f.insns, call_data(AUDIT_ARCH_X86_64, static_cast<int>(kX32Bit | x32), arg0))};
}

// Child side of the behavioural test: reports the first failed check on `report` and exits 1, or execs /bin/true.
[[noreturn]] void filtered_child(const SeccompFilter& filter, int report) {
  auto fail = [&](const char* what) {
    (void)!::write(report, what, std::strlen(what));
    ::_exit(1);
  };
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    fail("prctl(PR_SET_NO_NEW_PRIVS) failed");
  }
  if (int err = sbx::rt::apply_seccomp_filter(filter); err != 0) {
    fail("apply_seccomp_filter failed");
  }
  if (::syscall(SYS_unshare, CLONE_NEWUTS) != -1 || errno != EPERM) {
    fail("unshare(CLONE_NEWUTS) did not fail with EPERM");
  }
  if (::mount("none", "/nonexistent-sbx-seccomp-test", "tmpfs", 0, nullptr) != -1 || errno != EPERM) {
    fail("mount did not fail with EPERM");
  }
  if (::syscall(SYS_getpid) != ::getpid() || ::getpid() <= 0) {
    fail("getpid failed");
  }
  if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) {
    fail("clone3 did not fail with ENOSYS");
  }
  long pid = ::syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    ::_exit(0);
  }
  if (pid != -1 || errno != EPERM) {
    fail("clone(CLONE_NEWUTS) did not fail with EPERM");
  }
  pid_t plain = ::fork();  // glibc's fork is clone(SIGCHLD|CLONE_CHILD_*): no namespace flags
  if (plain == 0) {
    ::_exit(7);
  }
  int status = 0;
  if (plain < 0 || ::waitpid(plain, &status, 0) != plain || !WIFEXITED(status) || WEXITSTATUS(status) != 7) {
    fail("fork under the filter failed");
  }
  char* const argv[] = {const_cast<char*>("true"), nullptr};
  char* const envp[] = {nullptr};
  ::execve("/bin/true", argv, envp);
  fail("execve /bin/true failed");
  ::_exit(1);
}

}  // namespace

TEST_SUITE("rt.seccomp") {
  TEST_CASE("a profile's default action, errno, architectures and rules are parsed") {
    auto p = parse_ok(R"({
      "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "io"},
        {"name": "mount", "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS", "args": null, "includes": {}, "excludes": {}}
      ]})");
    CHECK(p.default_action == SeccompAction::kErrno);
    CHECK(p.default_errno == 13);
    CHECK(p.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"});
    REQUIRE(p.rules.size() == 3);
    CHECK(p.rules[0].names == std::vector<std::string>{"read", "write"});
    CHECK(p.rules[0].action == SeccompAction::kAllow);
    CHECK(!p.rules[0].errno_ret.has_value());
    CHECK(p.rules[1].names == std::vector<std::string>{"mount"});
    CHECK(p.rules[1].errno_ret == 38u);
    CHECK(p.rules[2].action == SeccompAction::kKillProcess);
  }

  TEST_CASE("every action name maps to its action") {
    const std::pair<const char*, SeccompAction> cases[] = {
        {"SCMP_ACT_ALLOW", SeccompAction::kAllow},
        {"SCMP_ACT_ERRNO", SeccompAction::kErrno},
        {"SCMP_ACT_KILL", SeccompAction::kKill},
        {"SCMP_ACT_KILL_THREAD", SeccompAction::kKill},
        {"SCMP_ACT_KILL_PROCESS", SeccompAction::kKillProcess},
        {"SCMP_ACT_TRAP", SeccompAction::kTrap},
        {"SCMP_ACT_LOG", SeccompAction::kLog},
        {"SCMP_ACT_TRACE", SeccompAction::kTrace},
    };
    for (const auto& [name, action] : cases) {
      auto p = parse_ok(std::string(R"({"defaultAction": ")") + name + R"("})");
      CHECK_MESSAGE(p.default_action == action, name);
      CHECK(p.rules.empty());
    }
  }

  TEST_CASE("arguments parse with every operator, valueTwo defaulting to 0") {
    const std::pair<const char*, SeccompOp> ops[] = {
        {"SCMP_CMP_NE", SeccompOp::kNotEqual},           {"SCMP_CMP_LT", SeccompOp::kLessThan},
        {"SCMP_CMP_LE", SeccompOp::kLessEqual},          {"SCMP_CMP_EQ", SeccompOp::kEqual},
        {"SCMP_CMP_GE", SeccompOp::kGreaterEqual},       {"SCMP_CMP_GT", SeccompOp::kGreaterThan},
        {"SCMP_CMP_MASKED_EQ", SeccompOp::kMaskedEqual},
    };
    for (const auto& [name, op] : ops) {
      auto p = parse_ok(with_rule(subst(R"({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
          {"index": 5, "value": 18446744073709551615, "op": "@@"},
          {"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]})",
                                        name)));
      REQUIRE(p.rules[0].args.size() == 2);
      CHECK(p.rules[0].args[0].index == 5);
      CHECK(p.rules[0].args[0].value == UINT64_MAX);
      CHECK(p.rules[0].args[0].value_two == 0);
      CHECK_MESSAGE(p.rules[0].args[0].op == op, name);
      CHECK(p.rules[0].args[1].value == 255);
      CHECK(p.rules[0].args[1].value_two == 8);
    }
  }

  TEST_CASE("includes and excludes are kept and minKernel is accepted and ignored") {
    auto p = parse_ok(with_rule(R"({"names": ["chroot"], "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_CHROOT"], "arches": ["amd64"], "minKernel": "4.8"},
        "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}})"));
    CHECK(p.rules[0].includes_caps == std::vector<std::string>{"CAP_SYS_CHROOT"});
    CHECK(p.rules[0].includes_arches == std::vector<std::string>{"amd64"});
    CHECK(p.rules[0].excludes_caps == std::vector<std::string>{"CAP_SYS_ADMIN"});
    CHECK(p.rules[0].excludes_arches == std::vector<std::string>{"s390x"});
  }

  TEST_CASE("archMap gives the native architecture and its sub-architectures") {
    auto p = parse_ok(R"({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        {"architecture": "SCMP_ARCH_LOONGARCH64_UNKNOWN_HERE", "subArchitectures": []},
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}]})");
    CHECK(p.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"});
    CHECK(parse_error(R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
        "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]})") ==
          "test.json: architectures: give 'architectures' or 'archMap', not both");
  }

  TEST_CASE("a syscall name known only on another architecture is accepted") {
    auto p = parse_ok(with_rule(R"({"names": ["_llseek", "mmap2", "socketcall"], "action": "SCMP_ACT_ALLOW"})"));
    CHECK(p.rules[0].names.size() == 3);
    compile_ok(p, {});
  }

  TEST_CASE("an unknown syscall name is an error naming the file and the field") {
    CHECK(parse_error(with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                                   {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
                                   {"names": ["close"], "action": "SCMP_ACT_ALLOW"},
                                   {"names": ["mount", "mountx"], "action": "SCMP_ACT_ALLOW"})")) ==
          "test.json: syscalls[3].names[1]: unknown syscall 'mountx'");
    CHECK(parse_error(with_rule(R"({"name": "nosuchcall", "action": "SCMP_ACT_ALLOW"})")) ==
          "test.json: syscalls[0].name: unknown syscall 'nosuchcall'");
  }

  TEST_CASE("malformed JSON is an error with the byte offset") {
    std::string err = parse_error(R"({"defaultAction": "SCMP_ACT_ALLOW",, })");
    CHECK(err.rfind("test.json: malformed JSON at byte 35: ", 0) == 0);
    CHECK(err.find("line 1, column 36") != std::string::npos);
    CHECK(parse_error("").rfind("test.json: malformed JSON at byte 0: ", 0) == 0);
    CHECK(parse_error(R"({"defaultAction": "SCMP_ACT_ALLOW"} trailing)").find("malformed JSON at byte") !=
          std::string::npos);
  }

  TEST_CASE("every invalid field is an error that names the file and the field") {
    const std::pair<std::string, std::string> cases[] = {
        {"[]", "test.json: expected a JSON object at the top level, got array"},
        {"{}", "test.json: defaultAction: required field is missing"},
        {R"({"defaultAction": "X"})", "test.json: defaultAction: unknown action 'X'"},
        {R"({"defaultAction": 3})", "test.json: defaultAction: expected a string, got number 3"},
        {R"({"defaultAction": "SCMP_ACT_NOTIFY"})",
         "test.json: defaultAction: action 'SCMP_ACT_NOTIFY' is not supported (sbx runs no seccomp listener)"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1})",
         "test.json: defaultErrnoRet: expected a non-negative integer, got number -1"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1.5})",
         "test.json: defaultErrnoRet: expected a non-negative integer, got number 1.5"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000})",
         "test.json: defaultErrnoRet: 5000 is out of range 0..4095"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultAktion": 1})", "test.json: unknown field 'defaultAktion'"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "architectures": "SCMP_ARCH_X86"})",
         "test.json: architectures: expected an array of strings, got string 'SCMP_ARCH_X86'"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86", "x86_64"]})",
         "test.json: architectures[1]: unknown architecture 'x86_64'"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86_64",
            "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_NOPE"]}]})",
         "test.json: archMap[0].subArchitectures[1]: unknown architecture 'SCMP_ARCH_NOPE'"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"subArchitectures": []}]})",
         "test.json: archMap[0].architecture: required field is missing"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}})",
         "test.json: syscalls: expected an array, got object"},
        {R"({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_LOG"]})",
         "test.json: flags: seccomp filter flags are not supported (got 'SECCOMP_FILTER_FLAG_LOG')"},
        {with_rule("7"), "test.json: syscalls[0]: expected an object, got number 7"},
        {with_rule(R"({"action": "SCMP_ACT_ALLOW"})"),
         "test.json: syscalls[0]: no syscall names ('names' is missing or empty)"},
        {with_rule(R"({"names": [], "action": "SCMP_ACT_ALLOW"})"),
         "test.json: syscalls[0]: no syscall names ('names' is missing or empty)"},
        {with_rule(R"({"names": ["read"], "name": "read", "action": "SCMP_ACT_ALLOW"})"),
         "test.json: syscalls[0]: give 'names' or 'name', not both"},
        {with_rule(R"({"names": ["read", 4], "action": "SCMP_ACT_ALLOW"})"),
         "test.json: syscalls[0].names[1]: expected a string, got number 4"},
        {with_rule(R"({"names": ["read"]})"), "test.json: syscalls[0].action: required field is missing"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_MAYBE"})"),
         "test.json: syscalls[0].action: unknown action 'SCMP_ACT_MAYBE'"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1})"),
         "test.json: syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": "EPERM"})"),
         "test.json: syscalls[0].errnoRet: expected a non-negative integer, got string 'EPERM'"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "nmes": []})"),
         "test.json: syscalls[0]: unknown field 'nmes'"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": {}})"),
         "test.json: syscalls[0].args: expected an array, got object"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1,
            "op": "SCMP_CMP_EQ"}]})"),
         "test.json: syscalls[0].args[0].index: 6 is out of range 0..5"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"value": 1, "op": "SCMP_CMP_EQ"}]})"),
         "test.json: syscalls[0].args[0].index: required field is missing"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1,
            "op": "SCMP_CMP_XX"}]})"),
         "test.json: syscalls[0].args[0].op: unknown operator 'SCMP_CMP_XX'"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": true,
            "op": "SCMP_CMP_EQ"}]})"),
         "test.json: syscalls[0].args[0].value: expected a non-negative integer, got boolean true"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1,
            "valueTwo": -2, "op": "SCMP_CMP_EQ"}]})"),
         "test.json: syscalls[0].args[0].valueTwo: expected a non-negative integer, got number -2"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_GE"}, {"index": 0, "value": 9, "op": "SCMP_CMP_LE"}]})"),
         "test.json: syscalls[0].args[1].index: argument 0 is already compared in this rule; write a separate "
         "rule per comparison"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": "CAP_KILL"}})"),
         "test.json: syscalls[0].includes.caps: expected an array of strings, got string 'CAP_KILL'"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "excludes": {"kernel": "5.0"}})"),
         "test.json: syscalls[0].excludes: unknown field 'kernel'"},
        {with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": 5}})"),
         "test.json: syscalls[0].includes.minKernel: expected a string, got number 5"},
    };
    for (const auto& [json, expected] : cases) {
      CHECK(parse_error(json) == expected);
    }
  }

  TEST_CASE("the shipped default and unconfined profiles parse and compile") {
    SeccompProfile def = load_default_profile();
    CHECK(def.default_action == SeccompAction::kErrno);
    CHECK(def.default_errno == EPERM);
    CHECK(def.architectures == std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"});
    auto filter = compile_ok(def, {});
    CHECK(filter->insns.size() > 10);
    CHECK(filter->insns.size() <= BPF_MAXINSNS);
    MESSAGE("default.json compiles to " << filter->insns.size() << " BPF instructions");

    auto text = sbx::read_file(kUnconfinedProfile);
    REQUIRE(text.ok());
    SeccompProfile unconfined = parse_ok(*text);
    CHECK(unconfined.default_action == SeccompAction::kAllow);
    CHECK(unconfined.rules.empty());
    auto open = compile_ok(unconfined, {});
    CHECK(run_bpf(open->insns, call_data(AUDIT_ARCH_X86_64, 165)) == kAllow);  // mount
  }

  TEST_CASE("the default filter allows, blocks and answers ENOSYS as intended on x86_64, x86 and x32") {
    auto filter = compile_ok(load_default_profile(), {});
    for (const auto& c : kCalls) {
      auto got = decide(*filter, c.x86_64, c.x86, c.x32);
      for (size_t abi = 0; abi < got.size(); ++abi) {
        CHECK_MESSAGE(got[abi] == c.expected, c.name << " on ABI #" << abi);
      }
    }
    // clone: allowed without namespace flags, refused with any of them.
    for (uint64_t flags : {0x11ull, 0x3d0f00ull, 0x1200011ull}) {  // fork, pthread_create, fork with tid flags
      CHECK(decide(*filter, 56, 120, 56, flags) == std::vector<uint32_t>(3, kAllow));
    }
    for (uint64_t ns :
         {0x00020000ull, 0x02000000ull, 0x04000000ull, 0x08000000ull, 0x10000000ull, 0x20000000ull, 0x40000000ull}) {
      CHECK_MESSAGE(decide(*filter, 56, 120, 56, ns | 0x11) == std::vector<uint32_t>(3, kEperm), ns);
    }
    // personality: only the safe values.
    for (uint64_t persona : {0x0ull, 0x8ull, 0x20000ull, 0x20008ull, 0xffffffffull}) {
      CHECK_MESSAGE(decide(*filter, 135, 136, 135, persona) == std::vector<uint32_t>(3, kAllow), persona);
    }
    for (uint64_t persona : {0x1ull, 0x0400000ull, 0x8000000ull}) {  // PER_SVR4, READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE
      CHECK_MESSAGE(decide(*filter, 135, 136, 135, persona) == std::vector<uint32_t>(3, kEperm), persona);
    }
    // Any other architecture kills the process.
    CHECK(run_bpf(filter->insns, call_data(AUDIT_ARCH_AARCH64, 63)) == SECCOMP_RET_KILL_PROCESS);
  }

  TEST_CASE("includes and excludes on caps decide whether a rule is in the program") {
    auto p = parse_ok(with_rule(R"({"names": ["chroot"], "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_CHROOT"]}}, {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
        "excludes": {"caps": ["CAP_SYS_ADMIN"]}})"));
    auto none = compile_ok(p, {});
    auto chroot_cap = compile_ok(p, {"CAP_SYS_CHROOT"});
    auto admin = compile_ok(p, {"sys_admin"});  // normalised to CAP_SYS_ADMIN
    auto insns_equal = [](const SeccompFilter& a, const SeccompFilter& b) {
      return a.insns.size() == b.insns.size() &&
             std::memcmp(a.insns.data(), b.insns.data(), a.insns.size() * sizeof(sock_filter)) == 0;
    };
    CHECK(!insns_equal(*none, *chroot_cap));
    CHECK(!insns_equal(*none, *admin));
    CHECK(run_bpf(none->insns, call_data(AUDIT_ARCH_X86_64, 161)) == kEperm);
    CHECK(run_bpf(none->insns, call_data(AUDIT_ARCH_X86_64, 39)) == kAllow);
    CHECK(run_bpf(chroot_cap->insns, call_data(AUDIT_ARCH_X86_64, 161)) == kAllow);
    CHECK(run_bpf(admin->insns, call_data(AUDIT_ARCH_X86_64, 39)) == kEperm);
  }

  TEST_CASE("includes and excludes on arches match the native architecture by any of its names") {
    for (const char* native : {"amd64", "x86_64", "SCMP_ARCH_X86_64"}) {
      auto p = parse_ok(with_rule(subst(R"({"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
          "includes": {"arches": ["s390x", "@@"]}},
          {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["@@"]}},
          {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}})",
                                        native)));
      auto f = compile_ok(p, {});
      CHECK_MESSAGE(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 39)) == kAllow, native);   // getpid
      CHECK_MESSAGE(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 186)) == kEperm, native);  // gettid
      CHECK_MESSAGE(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 110)) == kEperm, native);  // getppid
    }
  }

  TEST_CASE("the same syscall in several rules with arguments becomes alternatives") {
    auto p = parse_ok(with_rule(R"(
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 100, "op": "SCMP_CMP_GT"}]})"));
    auto f = compile_ok(p, {});
    auto at = [&](uint64_t v) { return run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 135, v)); };
    CHECK(at(8) == kAllow);
    CHECK(at(3) == kAllow);
    CHECK(at(4) == kEperm);
    CHECK(at(101) == (SECCOMP_RET_ERRNO | EINVAL));
  }

  TEST_CASE("rules use errnoRet, else defaultErrnoRet, and TRACE and KILL compile to their actions") {
    auto p = parse_ok(R"({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 13, "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["umount2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
        {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
        {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
        {"names": ["chroot"], "action": "SCMP_ACT_LOG"},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]})");
    auto f = compile_ok(p, {});
    CHECK(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 165)) == (SECCOMP_RET_ERRNO | EACCES));
    CHECK(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 166)) == SECCOMP_RET_ERRNO);
    CHECK(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 101)) == (SECCOMP_RET_TRACE | 7));
    CHECK(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 169)) == SECCOMP_RET_KILL_THREAD);
    CHECK(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 161)) == SECCOMP_RET_LOG);
    CHECK(run_bpf(f->insns, call_data(AUDIT_ARCH_X86_64, 39)) == kAllow);
  }

  TEST_CASE("a syscall given two different actions under the same conditions is refused") {
    auto p = parse_ok(with_rule(R"({"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                                   {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5})"));
    auto r = sbx::rt::compile_seccomp_profile(p, {});
    REQUIRE(!r.ok());
    CHECK(r.error().message() ==
          "syscalls[1]: 'write' is given SCMP_ACT_ERRNO(5) here but SCMP_ACT_ALLOW by syscalls[0]");
  }

  TEST_CASE("the cache compiles a profile once and reuses it while the file is unchanged") {
    TempDir dir;
    std::string path = dir.path + "/p.json";
    write_profile(path, with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW"})"), 1'000'000);
    SeccompCache cache;
    auto first = cache.load(path, {"CAP_KILL"});
    REQUIRE_MESSAGE(first.ok(), first.error().message());
    CHECK(cache.compiled_count() == 1);
    auto second = cache.load(path, {"CAP_KILL"});
    REQUIRE(second.ok());
    CHECK(cache.compiled_count() == 1);
    CHECK(first->get() == second->get());
    auto other_caps = cache.load(path, {"CAP_KILL", "CAP_CHOWN"});
    REQUIRE(other_caps.ok());
    CHECK(cache.compiled_count() == 2);  // caps are part of the key
  }

  TEST_CASE("the cache compiles again after the file changes") {
    TempDir dir;
    std::string path = dir.path + "/p.json";
    write_profile(path, with_rule(R"({"names": ["read"], "action": "SCMP_ACT_ALLOW"})"), 1'000'000);
    SeccompCache cache;
    auto first = cache.load(path, {});
    REQUIRE(first.ok());
    write_profile(path, with_rule(R"({"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"})"), 2'000'000);
    auto second = cache.load(path, {});
    REQUIRE_MESSAGE(second.ok(), second.error().message());
    CHECK(cache.compiled_count() == 2);
    CHECK(first->get() != second->get());
    CHECK(run_bpf((*second)->insns, call_data(AUDIT_ARCH_X86_64, 1)) == kAllow);
    CHECK(run_bpf((*first)->insns, call_data(AUDIT_ARCH_X86_64, 1)) == kEperm);
    // A broken edit is reported with the path; fixing it compiles again.
    write_profile(path, with_rule(R"({"names": ["wrote"], "action": "SCMP_ACT_ALLOW"})"), 3'000'000);
    auto broken = cache.load(path, {});
    REQUIRE(!broken.ok());
    CHECK(broken.error().message() == "seccomp profile '" + path + "': syscalls[0].names[0]: unknown syscall 'wrote'");
    write_profile(path, with_rule(R"({"names": ["write"], "action": "SCMP_ACT_ALLOW"})"), 4'000'000);
    CHECK(cache.load(path, {}).ok());
    CHECK(cache.compiled_count() == 3);
  }

  TEST_CASE("a missing or unreadable profile is an error naming the path and errno") {
    SeccompCache cache;
    auto r = cache.load("/nonexistent-sbx/x.json", {});
    REQUIRE(!r.ok());
    CHECK(r.error().message() ==
          "seccomp profile '/nonexistent-sbx/x.json': open '/nonexistent-sbx/x.json': "
          "No such file or directory (ENOENT)");
    CHECK(r.error().sys_errno() == ENOENT);
    auto dir = cache.load("/tmp", {});
    REQUIRE(!dir.ok());
    CHECK(dir.error().message() == "seccomp profile '/tmp': not a regular file");
    CHECK(cache.compiled_count() == 0);
  }

  TEST_CASE("a child under the default filter cannot unshare, mount or clone3 but can fork and exec") {
    auto filter = compile_ok(load_default_profile(), {});
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      filtered_child(*filter, fds[1]);
    }
    ::close(fds[1]);
    pollfd pfd{fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, 30'000) != 1) {  // a hung child must not hang the suite
      ::kill(pid, SIGKILL);
    }
    char buf[256] = {};
    ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK_MESSAGE(n == 0, buf);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  TEST_CASE("apply_seccomp_filter refuses an empty program") {
    SeccompFilter empty;
    CHECK(sbx::rt::apply_seccomp_filter(empty) == EINVAL);
  }

  TEST_CASE("compile and cached-load times of default.json (measured, not asserted)") {
    using Clock = std::chrono::steady_clock;
    auto text = sbx::read_file(kDefaultProfile);
    REQUIRE(text.ok());
    constexpr int kCompiles = 20;
    auto start = Clock::now();
    for (int i = 0; i < kCompiles; ++i) {
      auto p = sbx::rt::parse_seccomp_profile(*text, "default.json");
      REQUIRE(p.ok());
      REQUIRE(sbx::rt::compile_seccomp_profile(*p, {}).ok());
    }
    double compile_us = std::chrono::duration<double, std::micro>(Clock::now() - start).count() / kCompiles;
    SeccompCache cache;
    REQUIRE(cache.load(kDefaultProfile, {}).ok());
    constexpr int kLoads = 10000;
    start = Clock::now();
    for (int i = 0; i < kLoads; ++i) {
      REQUIRE(cache.load(kDefaultProfile, {}).ok());
    }
    double cached_us = std::chrono::duration<double, std::micro>(Clock::now() - start).count() / kLoads;
    CHECK(cache.compiled_count() == 1);
    MESSAGE("default.json: parse+compile " << compile_us << " us; cached load " << cached_us << " us");
  }
}
