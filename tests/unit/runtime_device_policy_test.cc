// The device policy without root: the standard allow-list, rule validation, the v1 devices.allow lines, and the v2
// BPF program, both its shape and what it decides (run through a small interpreter of the instructions it uses).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "base/file.h"
#include "runtime/cgroup.h"
#include "runtime/device_policy.h"

namespace sbx::rt {
namespace {

template <typename R>
std::string error_text(const R& r) {
  return r.ok() ? std::string() : r.error().message();
}

std::string error_of(const Result<void>& r) {
  REQUIRE_FALSE(r.ok());
  return r.error().message();
}

constexpr uint32_t kRead = BPF_DEVCG_ACC_READ;
constexpr uint32_t kWrite = BPF_DEVCG_ACC_WRITE;
constexpr uint32_t kMknod = BPF_DEVCG_ACC_MKNOD;

// Runs a device program on one request, as the kernel would: the instructions device_program emits, nothing more.
// Fails the test on anything else (an unknown opcode, a jump out of the program, a read outside the context).
int run(const std::vector<bpf_insn>& prog, char type, uint32_t major, uint32_t minor, uint32_t access) {
  const bpf_cgroup_dev_ctx ctx{(access << 16) | (type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK), major, minor};
  std::array<uint64_t, 11> r{};
  size_t pc = 0;
  for (size_t steps = 0; steps < 10000; ++steps) {
    REQUIRE(pc < prog.size());
    const bpf_insn& i = prog[pc++];
    uint64_t& dst = r[i.dst_reg];
    switch (i.code) {
      case BPF_LDX | BPF_MEM | BPF_W:
        REQUIRE(i.src_reg == BPF_REG_1);
        REQUIRE((i.off == 0 || i.off == 4 || i.off == 8));
        dst = i.off == 0 ? ctx.access_type : i.off == 4 ? ctx.major : ctx.minor;
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        dst = static_cast<uint32_t>(dst) & static_cast<uint32_t>(i.imm);
        break;
      case BPF_ALU | BPF_RSH | BPF_K:
        dst = static_cast<uint32_t>(dst) >> i.imm;
        break;
      case BPF_ALU | BPF_MOV | BPF_X:
        dst = static_cast<uint32_t>(r[i.src_reg]);
        break;
      case BPF_ALU64 | BPF_MOV | BPF_K:
        dst = static_cast<uint64_t>(static_cast<int64_t>(i.imm));
        break;
      case BPF_JMP | BPF_JNE | BPF_K:
        REQUIRE(i.off > 0);  // forward only: the verifier refuses loops
        pc += dst != static_cast<uint64_t>(static_cast<int64_t>(i.imm)) ? static_cast<size_t>(i.off) : 0;
        break;
      case BPF_JMP | BPF_JNE | BPF_X:
        REQUIRE(i.off > 0);
        pc += dst != r[i.src_reg] ? static_cast<size_t>(i.off) : 0;
        break;
      case BPF_JMP | BPF_EXIT:
        return static_cast<int>(r[BPF_REG_0]);
      default:
        FAIL("unexpected opcode " << static_cast<int>(i.code) << " at " << pc - 1);
    }
  }
  FAIL("the program did not end");
  return -1;
}

size_t count_if_insn(const std::vector<bpf_insn>& prog, uint8_t code, uint8_t dst) {
  return static_cast<size_t>(
      std::count_if(prog.begin(), prog.end(), [&](const bpf_insn& i) { return i.code == code && i.dst_reg == dst; }));
}

bool ends_with_return(const std::vector<bpf_insn>& prog, int32_t value) {
  REQUIRE(prog.size() >= 2);
  const bpf_insn& mov = prog[prog.size() - 2];
  const bpf_insn& exit = prog.back();
  return mov.code == (BPF_ALU64 | BPF_MOV | BPF_K) && mov.dst_reg == BPF_REG_0 && mov.imm == value &&
         exit.code == (BPF_JMP | BPF_EXIT);
}

constexpr size_t kPrologue = 6;  // r2..r5 from the context
constexpr size_t kReturn = 2;    // r0 = N; exit

TEST_SUITE("rt.cgroup.devices") {
  TEST_CASE("the standard rules are runc's character devices, all rwm, and no block device") {
    std::vector<std::string> lines;
    for (const DeviceRule& rule : standard_device_rules()) {
      CHECK(rule.type == 'c');
      CHECK(rule.access == "rwm");
      lines.push_back(v1_device_lines(rule).at(0));
    }
    CHECK(lines == std::vector<std::string>{"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                                            "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"});
    CHECK(validate_device_rules(standard_device_rules(), "standard").ok());
  }

  TEST_CASE("a sandbox's rules are the standard ones followed by the extra ones") {
    auto rules = sandbox_device_rules({{'c', 10, 200, "rw"}});
    REQUIRE(rules.size() == standard_device_rules().size() + 1);
    CHECK(rules.back().major == 10);
    CHECK(rules.back().minor == 200);
  }

  TEST_CASE("v1 lines have '*' for any number, the access in rwm order, and two lines for type a") {
    CHECK(v1_device_lines({'b', 8, 0, "r"}) == std::vector<std::string>{"b 8:0 r"});
    CHECK(v1_device_lines({'c', -1, 7, "mwr"}) == std::vector<std::string>{"c *:7 rwm"});
    CHECK(v1_device_lines({'a', 10, -1, "wm"}) == std::vector<std::string>{"c 10:* wm", "b 10:* wm"});
    CHECK(v1_device_lines({'a', -1, -1, "rwm"}) == std::vector<std::string>{"c *:* rwm", "b *:* rwm"});
  }

  TEST_CASE("validation errors name the rule and its field") {
    CHECK(validate_device_rules({}, "limits.devices").ok());
    CHECK(validate_device_rules({{'b', 4095, 1048575, "r"}, {'a', -1, -1, "m"}}, "limits.devices").ok());
    CHECK(error_of(validate_device_rules({{'c', 1, 3, "rwm"}, {'x', 1, 3, "r"}}, "limits.devices")) ==
          "limits.devices[1].type: 'x' is not c (char), b (block) or a (all)");
    CHECK(error_of(validate_device_rules({{'c', 4096, 0, "r"}}, "d")) ==
          "d[0].major: 4096 is outside 0..4095 (or -1 for any)");
    CHECK(error_of(validate_device_rules({{'c', 1, -2, "r"}}, "d")) ==
          "d[0].minor: -2 is outside 0..1048575 (or -1 for any)");
    CHECK(error_of(validate_device_rules({{'c', 1, 3, ""}}, "d")) == "d[0].access: empty (some of r, w, m)");
    CHECK(error_of(validate_device_rules({{'c', 1, 3, "rx"}}, "d")) == "d[0].access: 'rx' has 'x', not one of r, w, m");
    CHECK(error_of(validate_device_rules({{'c', 1, 3, "rwr"}}, "d")) == "d[0].access: 'rwr' has 'r' twice");
    CHECK(error_of(validate_device_rules(std::vector<DeviceRule>(kMaxDeviceRules + 1), "d")) ==
          "d: 1025 rules, more than 1024");
  }

  TEST_CASE("limit validation checks the device rules") {
    CgroupLimits l;
    l.devices.push_back({'c', 10, 200, "rw"});
    CHECK(validate_cgroup_limits(l).ok());
    CHECK_FALSE(l.empty());
    l.devices.push_back({'c', 10, 200, "q"});
    CHECK(error_of(validate_cgroup_limits(l)).starts_with("limits.devices[1].access:"));
  }

  TEST_CASE("the v1 policy denies everything first, then allows each line with a write of its own") {
    char tmpl[] = "/tmp/device-policy-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    REQUIRE(create_file(dir + "/devices.deny", "").ok());
    // A FIFO keeps every write apart from the next in order; it is held open for reading and writing, so no
    // write blocks.
    REQUIRE(::mkfifo((dir + "/devices.allow").c_str(), 0600) == 0);
    auto fifo = open_at(AT_FDCWD, dir + "/devices.allow", O_RDWR | O_NONBLOCK);
    REQUIRE(fifo.ok());
    auto written = write_v1_device_policy(dir, {{'c', 1, 3, "rwm"}, {'a', 10, -1, "r"}});
    CHECK_MESSAGE(written.ok(), error_text(written));
    auto deny = read_file(dir + "/devices.deny");
    REQUIRE(deny.ok());
    CHECK(*deny == "a");
    char buf[256] = {};
    ssize_t n = ::read(fifo->get(), buf, sizeof buf);
    CHECK(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0) == "c 1:3 rwmc 10:* rb 10:* r");
    fifo->reset();
    CHECK(remove_tree(dir).ok());
  }

  TEST_CASE("a v1 policy that cannot be written fails naming the file") {
    auto r = write_v1_device_policy("/nonexistent-cgroup", standard_device_rules());
    CHECK(error_of(r).starts_with("deny every device: "));
    CHECK(error_of(r).find("/nonexistent-cgroup/devices.deny") != std::string::npos);
  }

  TEST_CASE("without rules the program reads the context and returns 0") {
    auto prog = device_program({});
    CHECK(prog.size() == kPrologue + kReturn);
    CHECK(ends_with_return(prog, 0));
    CHECK(run(prog, 'c', 1, 3, kRead) == 0);
  }

  TEST_CASE("a rule with every field compares type, major and minor, and rwm needs no access compare") {
    auto prog = device_program({{'c', 1, 3, "rwm"}});
    // type, major, minor compares; return 1; then the final return 0.
    CHECK(prog.size() == kPrologue + 3 + kReturn + kReturn);
    CHECK(ends_with_return(prog, 0));
    CHECK(count_if_insn(prog, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2) == 1);
    CHECK(count_if_insn(prog, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4) == 1);
    CHECK(count_if_insn(prog, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5) == 1);
    CHECK(count_if_insn(prog, BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1) == 0);
    // Every jump of the block lands on the instruction right after it.
    for (size_t i = kPrologue; i < kPrologue + 3; ++i) {
      CHECK(i + 1 + static_cast<size_t>(prog[i].off) == kPrologue + 5);
    }
    CHECK(run(prog, 'c', 1, 3, kRead | kWrite) == 1);
    CHECK(run(prog, 'c', 1, 3, kMknod) == 1);
    CHECK(run(prog, 'b', 1, 3, kRead) == 0);
    CHECK(run(prog, 'c', 1, 4, kRead) == 0);
    CHECK(run(prog, 'c', 2, 3, kRead) == 0);
  }

  TEST_CASE("a wildcard minor generates no minor compare, a wildcard major no major compare") {
    auto any_minor = device_program({{'c', 136, -1, "rwm"}});
    CHECK(any_minor.size() == kPrologue + 2 + kReturn + kReturn);
    CHECK(count_if_insn(any_minor, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5) == 0);
    CHECK(run(any_minor, 'c', 136, 0, kRead | kWrite) == 1);
    CHECK(run(any_minor, 'c', 136, 4711, kRead) == 1);
    CHECK(run(any_minor, 'c', 137, 0, kRead) == 0);

    auto any_major = device_program({{'b', -1, 0, "rwm"}});
    CHECK(count_if_insn(any_major, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4) == 0);
    CHECK(run(any_major, 'b', 8, 0, kRead) == 1);
    CHECK(run(any_major, 'b', 8, 1, kRead) == 0);
    CHECK(run(any_major, 'c', 8, 0, kRead) == 0);
  }

  TEST_CASE("a rule with less than rwm allows only requests within its access") {
    auto prog = device_program({{'c', 10, 200, "rw"}});
    CHECK(prog.size() == kPrologue + 6 + kReturn + kReturn);  // type, 3 for the access, major, minor
    CHECK(count_if_insn(prog, BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1) == 1);
    CHECK(run(prog, 'c', 10, 200, kRead) == 1);
    CHECK(run(prog, 'c', 10, 200, kRead | kWrite) == 1);
    CHECK(run(prog, 'c', 10, 200, kMknod) == 0);
    CHECK(run(prog, 'c', 10, 200, kRead | kMknod) == 0);
    auto read_only = device_program({{'c', 1, 11, "r"}});
    CHECK(run(read_only, 'c', 1, 11, kRead) == 1);
    CHECK(run(read_only, 'c', 1, 11, kWrite) == 0);
    CHECK(run(read_only, 'c', 1, 11, kRead | kWrite) == 0);
  }

  TEST_CASE("type a matches char and block devices without a type compare") {
    auto prog = device_program({{'a', 7, -1, "r"}});
    CHECK(count_if_insn(prog, BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2) == 0);
    CHECK(run(prog, 'b', 7, 3, kRead) == 1);
    CHECK(run(prog, 'c', 7, 3, kRead) == 1);
    CHECK(run(prog, 'c', 7, 3, kWrite) == 0);
  }

  TEST_CASE("a rule that matches everything ends the program: nothing after it could run") {
    auto prog = device_program({{'c', 1, 3, "rwm"}, {'a', -1, -1, "rwm"}, {'c', 5, 0, "rwm"}});
    CHECK(prog.size() == kPrologue + 5 + kReturn);
    CHECK(ends_with_return(prog, 1));
    CHECK(run(prog, 'b', 8, 0, kRead | kWrite | kMknod) == 1);
  }

  TEST_CASE("the standard program allows the standard nodes and nothing else") {
    auto prog = device_program(sandbox_device_rules({}));
    CHECK(ends_with_return(prog, 0));
    for (const DeviceRule& rule : standard_device_rules()) {
      const auto minor = static_cast<uint32_t>(rule.minor < 0 ? 3 : rule.minor);
      CHECK(run(prog, 'c', static_cast<uint32_t>(rule.major), minor, kRead | kWrite) == 1);
      CHECK(run(prog, 'c', static_cast<uint32_t>(rule.major), minor, kMknod) == 1);
    }
    CHECK(run(prog, 'c', 1, 11, kRead) == 0);    // /dev/kmsg
    CHECK(run(prog, 'c', 1, 1, kRead) == 0);     // /dev/mem
    CHECK(run(prog, 'c', 10, 200, kRead) == 0);  // /dev/net/tun
    CHECK(run(prog, 'c', 5, 1, kWrite) == 0);    // /dev/console
    CHECK(run(prog, 'b', 1, 3, kRead) == 0);     // a block device with null's numbers
    CHECK(run(prog, 'b', 8, 0, kRead) == 0);
    auto more = device_program(sandbox_device_rules({{'c', 1, 11, "r"}}));
    CHECK(run(more, 'c', 1, 11, kRead) == 1);
    CHECK(run(more, 'c', 1, 11, kWrite) == 0);
  }
}

}  // namespace
}  // namespace sbx::rt
