#pragma once
// The device policy of a sandbox's cgroup: which device nodes its processes may open for reading or writing, and
// create (mknod). An allow-list: the standard nodes every sandbox gets (standard_device_rules(), in cgroup.h) and
// those its limits add (CgroupLimits::devices); every other device is refused with EPERM, whatever the node's file
// mode and the caller's capabilities.
//   v1: the devices controller. The sandbox's directory in the devices hierarchy gets "a" in devices.deny (deny all),
//       then one devices.allow line per rule ("c 1:3 rwm", "c 136:* rwm"). The kernel refuses "a" in a cgroup that
//       has children, so this is written right after the directory is made.
//   v2: a BPF_PROG_TYPE_CGROUP_DEVICE program built from the rules (device_program), loaded with BPF_PROG_LOAD and
//       attached to the sandbox's cgroup with BPF_F_ALLOW_MULTI: the programs of its ancestors (systemd's
//       DevicePolicy) still run too, and every child cgroup (the execs') inherits it. A device is allowed only when
//       every program on the path allows it. The attachment holds the program until the cgroup is freed, so its fd
//       is closed at once.
// The pure steps (validation, the v1 lines, the program's instructions) are apart from the syscalls so that they are
// unit tested without root.
#include <linux/bpf.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "runtime/cgroup.h"

namespace sbx::rt {

// The largest device numbers the kernel has (MAJOR: 12 bits, MINOR: 20 bits).
inline constexpr int64_t kMaxDeviceMajor = (1 << 12) - 1;
inline constexpr int64_t kMaxDeviceMinor = (1 << 20) - 1;
// Bound on the rules of one sandbox (each costs at most 8 instructions of the v2 program).
inline constexpr size_t kMaxDeviceRules = 1024;

// Form and range checks; errors name the field: "limits.devices[1].access: 'rx' has 'x', not one of r, w, m".
Result<void> validate_device_rules(const std::vector<DeviceRule>& rules, std::string_view field);

// The allow-list of a sandbox's cgroup: standard_device_rules(), then `extra`.
std::vector<DeviceRule> sandbox_device_rules(const std::vector<DeviceRule>& extra);

// The devices.allow lines of one rule, with the access in the order "rwm": "c 1:3 rwm", "c 136:* rw", "b 8:0 r".
// A rule of type 'a' gives a "c" and a "b" line (a bare "a" written to devices.allow would allow everything, whatever
// the numbers and the access).
std::vector<std::string> v1_device_lines(const DeviceRule& rule);

// Writes the policy into a sandbox's directory of the v1 devices hierarchy: "a" to devices.deny, then every rule's
// lines to devices.allow, one write each.
Result<void> write_v1_device_policy(const std::string& dir, const std::vector<DeviceRule>& rules);

// The v2 program (the context is struct bpf_cgroup_dev_ctx in r1):
//   r2 = type (access_type & 0xffff), r3 = access (access_type >> 16), r4 = major, r5 = minor
//   per rule, a block that jumps to the next block on the first mismatch:
//     if r2 != TYPE goto next                      (left out for type 'a')
//     w1 = w3; w1 &= ACCESS; if r1 != r3 goto next (left out for "rwm": the request must be a subset of the rule's)
//     if r4 != MAJOR goto next                     (left out for a major of -1)
//     if r5 != MINOR goto next                     (left out for a minor of -1)
//     r0 = 1; exit
//   r0 = 0; exit
// A rule that matches everything ends the program with its block (the verifier refuses unreachable instructions).
std::vector<bpf_insn> device_program(const std::vector<DeviceRule>& rules);

// BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE program. Errors: "load the device cgroup program: Operation not
// permitted (EPERM)", with the verifier's last line when it refused the program.
Result<Fd> load_device_program(const std::vector<bpf_insn>& insns);
// BPF_PROG_ATTACH of a loaded program to the cgroup whose directory is `cgroup_fd` (BPF_CGROUP_DEVICE,
// BPF_F_ALLOW_MULTI). `shown` names the cgroup in errors.
Result<void> attach_device_program(int cgroup_fd, int prog_fd, const std::string& shown);
// device_program, load, attach; the program's fd is closed again (the attachment keeps the program).
Result<void> attach_device_policy(int cgroup_fd, const std::vector<DeviceRule>& rules, const std::string& shown);

}  // namespace sbx::rt
