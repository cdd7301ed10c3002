// The device policy of sandbox cgroups: the standard allow-list, the v1 devices.allow lines, and the v2
// BPF_PROG_TYPE_CGROUP_DEVICE program (built here, loaded and attached with bpf(2)).
#include "runtime/device_policy.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <set>

#include "base/file.h"

namespace sbx::rt {

namespace {

constexpr int16_t kJumpToNext = 0;  // placeholder offset of a block's jumps, patched once the block is complete

bool is_access_letter(char c) { return c == 'r' || c == 'w' || c == 'm'; }

// The BPF_DEVCG_ACC_* bits of an access string ("rw" -> READ | WRITE).
int32_t access_bits(std::string_view access) {
  int32_t bits = 0;
  for (char c : access) {
    bits |= c == 'r' ? BPF_DEVCG_ACC_READ : c == 'w' ? BPF_DEVCG_ACC_WRITE : c == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
  }
  return bits;
}

constexpr int32_t kAllAccess = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;

// The access in the kernel's order, whatever order the rule gave it in.
std::string canonical_access(std::string_view access) {
  const int32_t bits = access_bits(access);
  std::string out;
  out += (bits & BPF_DEVCG_ACC_READ) != 0 ? "r" : "";
  out += (bits & BPF_DEVCG_ACC_WRITE) != 0 ? "w" : "";
  out += (bits & BPF_DEVCG_ACC_MKNOD) != 0 ? "m" : "";
  return out;
}

std::string device_number(int64_t n) { return n < 0 ? std::string("*") : std::to_string(n); }

Result<void> validate_number(int64_t n, int64_t max, std::string_view field, std::string_view what) {
  if (n < -1 || n > max) {
    return make_error("{}.{}: {} is outside 0..{} (or -1 for any)", field, what, n, max);
  }
  return ok();
}

Result<void> validate_access(std::string_view access, std::string_view field) {
  if (access.empty()) {
    return make_error("{}.access: empty (some of r, w, m)", field);
  }
  std::set<char> seen;
  for (char c : access) {
    if (!is_access_letter(c)) {
      return make_error("{}.access: '{}' has '{}', not one of r, w, m", field, access, c);
    }
    if (!seen.insert(c).second) {
      return make_error("{}.access: '{}' has '{}' twice", field, access, c);
    }
  }
  return ok();
}

Result<void> validate_rule(const DeviceRule& rule, std::string_view field) {
  if (rule.type != 'c' && rule.type != 'b' && rule.type != 'a') {
    return make_error("{}.type: '{}' is not c (char), b (block) or a (all)", field, rule.type);
  }
  SBX_TRY(validate_number(rule.major, kMaxDeviceMajor, field, "major"));
  SBX_TRY(validate_number(rule.minor, kMaxDeviceMinor, field, "minor"));
  return validate_access(rule.access, field);
}

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

// dst = *(u32 *)(src + off)
bpf_insn load_u32(uint8_t dst, uint8_t src, int16_t off) { return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0); }
// 32-bit dst OP= imm (the upper half is zeroed)
bpf_insn alu32_imm(uint8_t op, uint8_t dst, int32_t imm) { return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm); }
bpf_insn mov32_reg(uint8_t dst, uint8_t src) { return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0); }
bpf_insn mov64_imm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
bpf_insn jne_imm(uint8_t dst, int32_t imm) { return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, kJumpToNext, imm); }
bpf_insn jne_reg(uint8_t dst, uint8_t src) { return insn(BPF_JMP | BPF_JNE | BPF_X, dst, src, kJumpToNext, 0); }
bpf_insn exit_insn() { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

bool is_jne(const bpf_insn& i) { return BPF_CLASS(i.code) == BPF_JMP && BPF_OP(i.code) == BPF_JNE; }

// r2 = type, r3 = access, r4 = major, r5 = minor, from struct bpf_cgroup_dev_ctx in r1.
void append_prologue(std::vector<bpf_insn>& out) {
  out.push_back(load_u32(BPF_REG_2, BPF_REG_1, offsetof(bpf_cgroup_dev_ctx, access_type)));
  out.push_back(alu32_imm(BPF_AND, BPF_REG_2, 0xffff));
  out.push_back(load_u32(BPF_REG_3, BPF_REG_1, offsetof(bpf_cgroup_dev_ctx, access_type)));
  out.push_back(alu32_imm(BPF_RSH, BPF_REG_3, 16));
  out.push_back(load_u32(BPF_REG_4, BPF_REG_1, offsetof(bpf_cgroup_dev_ctx, major)));
  out.push_back(load_u32(BPF_REG_5, BPF_REG_1, offsetof(bpf_cgroup_dev_ctx, minor)));
}

// The compares of one rule, each jump still aimed at kJumpToNext. None: the rule matches every device and access.
std::vector<bpf_insn> rule_checks(const DeviceRule& rule) {
  std::vector<bpf_insn> checks;
  if (rule.type != 'a') {
    checks.push_back(jne_imm(BPF_REG_2, rule.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
  }
  const int32_t access = access_bits(rule.access);
  if (access != kAllAccess) {
    checks.push_back(mov32_reg(BPF_REG_1, BPF_REG_3));
    checks.push_back(alu32_imm(BPF_AND, BPF_REG_1, access));
    checks.push_back(jne_reg(BPF_REG_1, BPF_REG_3));
  }
  if (rule.major >= 0) {
    checks.push_back(jne_imm(BPF_REG_4, static_cast<int32_t>(rule.major)));
  }
  if (rule.minor >= 0) {
    checks.push_back(jne_imm(BPF_REG_5, static_cast<int32_t>(rule.minor)));
  }
  return checks;
}

// Appends a rule's block: its checks, then "return 1"; every jump goes to the instruction after the block.
void append_rule(std::vector<bpf_insn>& out, std::vector<bpf_insn> block) {
  block.push_back(mov64_imm(BPF_REG_0, 1));
  block.push_back(exit_insn());
  const auto n = static_cast<int16_t>(block.size());
  for (int16_t i = 0; i < n; ++i) {
    if (is_jne(block[static_cast<size_t>(i)])) {
      block[static_cast<size_t>(i)].off = static_cast<int16_t>(n - i - 1);
    }
  }
  out.insert(out.end(), block.begin(), block.end());
}

long bpf(int cmd, union bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

// The last non-empty line of the verifier's log.
std::string last_line(const std::vector<char>& log) {
  std::string text(log.data(), ::strnlen(log.data(), log.size()));
  while (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

// BPF_PROG_LOAD; with a log buffer, the verifier writes why it refused the program there.
long load_program(const std::vector<bpf_insn>& insns, std::vector<char>* log) {
  static constexpr char kLicense[] = "Apache-2.0";
  union bpf_attr attr {};
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = reinterpret_cast<uint64_t>(insns.data());
  attr.insn_cnt = static_cast<uint32_t>(insns.size());
  attr.license = reinterpret_cast<uint64_t>(kLicense);
  std::strncpy(attr.prog_name, "sbx_devices", sizeof attr.prog_name - 1);
  if (log != nullptr) {
    attr.log_level = 1;
    attr.log_buf = reinterpret_cast<uint64_t>(log->data());
    attr.log_size = static_cast<uint32_t>(log->size());
  }
  return bpf(BPF_PROG_LOAD, attr);
}

}  // namespace

std::vector<DeviceRule> standard_device_rules() {
  // runc's and crun's default allow-list, each "rwm" as there: mknod of these nodes is what the runtime itself does
  // when it populates the sandbox's /dev (and a sandbox without CAP_MKNOD cannot mknod at all). Left out, as runc
  // does since 1.2: tun (10:200); and runc's "c *:* m" / "b *:* m" (mknod of any node), since a node the sandbox
  // cannot open is of no use to it. No block device.
  return {
      {'c', 1, 3, "rwm"},     // /dev/null
      {'c', 1, 5, "rwm"},     // /dev/zero
      {'c', 1, 7, "rwm"},     // /dev/full
      {'c', 1, 8, "rwm"},     // /dev/random
      {'c', 1, 9, "rwm"},     // /dev/urandom
      {'c', 5, 0, "rwm"},     // /dev/tty
      {'c', 5, 2, "rwm"},     // /dev/ptmx (the sandbox's devpts instance's ptmx)
      {'c', 136, -1, "rwm"},  // /dev/pts/N
  };
}

Result<void> validate_device_rules(const std::vector<DeviceRule>& rules, std::string_view field) {
  if (rules.size() > kMaxDeviceRules) {
    return make_error("{}: {} rules, more than {}", field, rules.size(), kMaxDeviceRules);
  }
  for (size_t i = 0; i < rules.size(); ++i) {
    SBX_TRY(validate_rule(rules[i], fmt::format("{}[{}]", field, i)));
  }
  return ok();
}

std::vector<DeviceRule> sandbox_device_rules(const std::vector<DeviceRule>& extra) {
  std::vector<DeviceRule> rules = standard_device_rules();
  rules.insert(rules.end(), extra.begin(), extra.end());
  return rules;
}

std::vector<std::string> v1_device_lines(const DeviceRule& rule) {
  const std::string rest =
      fmt::format("{}:{} {}", device_number(rule.major), device_number(rule.minor), canonical_access(rule.access));
  if (rule.type == 'a') {
    return {"c " + rest, "b " + rest};
  }
  return {std::string(1, rule.type) + " " + rest};
}

Result<void> write_v1_device_policy(const std::string& dir, const std::vector<DeviceRule>& rules) {
  SBX_TRY_CTX(write_file(dir + "/devices.deny", "a"), "deny every device");
  for (const DeviceRule& rule : rules) {
    for (const std::string& line : v1_device_lines(rule)) {
      SBX_TRY_CTX(write_file(dir + "/devices.allow", line), "allow a device");
    }
  }
  return ok();
}

std::vector<bpf_insn> device_program(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> out;
  append_prologue(out);
  for (const DeviceRule& rule : rules) {
    std::vector<bpf_insn> checks = rule_checks(rule);
    const bool matches_all = checks.empty();
    append_rule(out, std::move(checks));
    if (matches_all) {
      return out;  // what follows could never run
    }
  }
  out.push_back(mov64_imm(BPF_REG_0, 0));
  out.push_back(exit_insn());
  return out;
}

Result<Fd> load_device_program(const std::vector<bpf_insn>& insns) {
  long fd = load_program(insns, nullptr);
  if (fd >= 0) {
    return Fd(static_cast<int>(fd));
  }
  const int err = errno;
  if (err == EINVAL || err == EACCES) {
    std::vector<char> log(1 << 16, '\0');
    (void)load_program(insns, &log);
    std::string why = last_line(log);
    if (!why.empty()) {
      return Error::from_errno(fmt::format("load the device cgroup program (verifier: {})", why), err);
    }
  }
  return Error::from_errno("load the device cgroup program", err);
}

Result<void> attach_device_program(int cgroup_fd, int prog_fd, const std::string& shown) {
  union bpf_attr attr {};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf(BPF_PROG_ATTACH, attr) < 0) {
    return sys_error("attach the device cgroup program to '{}'", shown);
  }
  return ok();
}

Result<void> attach_device_policy(int cgroup_fd, const std::vector<DeviceRule>& rules, const std::string& shown) {
  SBX_ASSIGN(Fd prog, load_device_program(device_program(rules)));
  return attach_device_program(cgroup_fd, prog.get(), shown);
}

}  // namespace sbx::rt
