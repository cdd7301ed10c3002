#!/usr/bin/env python3
"""Writes an OCI config.json for crun that isolates a one-shot command the way an sbx sandbox does.

What it sets, and why (each item mirrors what runtime::default_plan() + the benchmark's limits give sbx):
  namespaces      mount, pid, uts, ipc, network, cgroup (no user namespace: both run as real root); with
                  --userns HOST_FIRST also user, with linux.uidMappings and gidMappings [{containerID: 0, hostID:
                  HOST_FIRST, size: 65536}] (sbx-bench-oneshot --userns's map; crun neither idmaps nor chowns the
                  root, so its files show as the overflow uid inside)
  resources       memory 256 MiB, pids 256, cpu quota = vcpus x 100000 us per 100000 us
  cgroupsPath     given on the command line (a path under the benchmark's own cgroup)
  capabilities    none in any set; noNewPrivileges
  seccomp         the OCI-format profile sbx uses, with Docker-style "includes"/"excludes" resolved for a process
                  that keeps no capabilities on this machine's architecture, as sbx resolves them
  mounts          /proc, /dev (tmpfs), /dev/pts, /dev/shm (64 MiB), /sys (read-only), /tmp (256 MiB tmpfs)
  masked/readonly the runc defaults
  rlimits         RLIMIT_CORE 0 (sbx's default)
  root            a writable directory: the caller mounts a fresh overlay there before each run

Usage: crun-config.py --rootfs DIR (--seccomp FILE | --seccomp-bpf FILE) --cgroups-path PATH [--memory BYTES] [--pids N] [--vcpus N]
                      [--hostname NAME] [--userns HOST_FIRST] [--out FILE] -- ARGV...
"""
import argparse
import base64
import json
import os
import platform
import sys

DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

# runc's (and crun's `crun spec`) default masked and read-only paths.
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

CPU_PERIOD_US = 100000

# Ids inside a --userns container: 0..USERNS_SIZE-1, as sbx-bench-oneshot --userns maps them.
USERNS_SIZE = 65536
MAX_HOST_ID = 2**32 - 2  # (uid_t)-1 is no id

# Names one architecture goes by: the kernel's (uname -m), Go's (Docker profiles) and libseccomp's.
ARCH_ALIASES = {
    "x86_64": {"x86_64", "amd64", "SCMP_ARCH_X86_64"},
    "aarch64": {"aarch64", "arm64", "SCMP_ARCH_AARCH64"},
    "i686": {"i686", "x86", "386", "SCMP_ARCH_X86"},
    "armv7l": {"armv7l", "arm", "SCMP_ARCH_ARM"},
    "ppc64le": {"ppc64le", "SCMP_ARCH_PPC64LE"},
    "s390x": {"s390x", "SCMP_ARCH_S390X"},
    "riscv64": {"riscv64", "SCMP_ARCH_RISCV64"},
}


def fail(message):
    print(f"crun-config: {message}", file=sys.stderr)
    sys.exit(1)


def native_arch_names():
    machine = platform.machine()
    return ARCH_ALIASES.get(machine, {machine})


def kernel_version():
    parts = platform.release().split("-")[0].split(".")
    return tuple(int(p) for p in parts[:2] if p.isdigit())


def included(cond, kept_caps, arches, where):
    """Docker's "includes": every listed capability is kept, and the architecture is one of those listed."""
    for key, value in cond.items():
        if key == "caps" and not all(c in kept_caps for c in value):
            return False
        if key == "arches" and not any(a in arches for a in value):
            return False
        if key == "minKernel" and kernel_version() < tuple(int(p) for p in str(value).split(".")[:2]):
            return False
        if key not in ("caps", "arches", "minKernel"):
            fail(f"{where}.{key}: unsupported condition")
    return True


def excluded(cond, kept_caps, arches, where):
    """Docker's "excludes": any listed capability is kept, or the architecture is one of those listed."""
    for key, value in cond.items():
        if key == "caps" and any(c in kept_caps for c in value):
            return True
        if key == "arches" and any(a in arches for a in value):
            return True
        if key not in ("caps", "arches"):
            fail(f"{where}.{key}: unsupported condition")
    return False


def rule_applies(rule, kept_caps, arches, where):
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if not isinstance(includes, dict) or not isinstance(excludes, dict):
        fail(f"{where}: includes/excludes must be objects")
    if not included(includes, kept_caps, arches, f"{where}.includes"):
        return False
    return not excluded(excludes, kept_caps, arches, f"{where}.excludes")


def resolve_architectures(profile, arches):
    if "architectures" in profile:
        return list(profile["architectures"])
    for entry in profile.get("archMap", []):
        if entry.get("architecture") in arches:
            return [entry["architecture"], *entry.get("subArchitectures", [])]
    return []


def oci_seccomp(path, kept_caps):
    """Turns the profile file into a linux.seccomp object crun takes, resolving includes/excludes."""
    try:
        with open(path, encoding="utf-8") as f:
            profile = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"read seccomp profile '{path}': {e}")
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        fail(f"seccomp profile '{path}': not an OCI profile (no defaultAction)")
    arches = native_arch_names()
    out = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures = resolve_architectures(profile, arches)
    if architectures:
        out["architectures"] = architectures
    if "flags" in profile:
        out["flags"] = profile["flags"]
    syscalls = []
    for i, rule in enumerate(profile.get("syscalls", [])):
        if not rule_applies(rule, kept_caps, arches, f"syscalls[{i}]"):
            continue
        names = rule.get("names") or ([rule["name"]] if "name" in rule else [])
        entry = {"names": names, "action": rule["action"]}
        for key in ("errnoRet", "args"):
            if key in rule:
                entry[key] = rule[key]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


def mounts():
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "noexec", "mode=755", "size=64k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=64m"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=256m"]},
    ]


def build_config(args):
    caps = {"bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []}
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args.argv,
            "env": DEFAULT_ENV,
            "cwd": "/",
            "capabilities": caps,
            "rlimits": [{"type": "RLIMIT_CORE", "hard": 0, "soft": 0}],
            "noNewPrivileges": True,
        },
        "root": {"path": os.path.abspath(args.rootfs), "readonly": False},
        "hostname": args.hostname,
        "mounts": mounts(),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "cgroupsPath": args.cgroups_path,
            "resources": {
                "memory": {"limit": args.memory},
                "pids": {"limit": args.pids},
                "cpu": {"quota": int(args.vcpus * CPU_PERIOD_US), "period": CPU_PERIOD_US},
            },
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }
    if args.userns is not None:
        id_map = [{"containerID": 0, "hostID": args.userns, "size": USERNS_SIZE}]
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = id_map
        config["linux"]["gidMappings"] = [dict(m) for m in id_map]
    if args.seccomp_bpf:
        # crun installs these bytes with seccomp(SECCOMP_SET_MODE_FILTER) as they are and ignores linux.seccomp.
        try:
            with open(args.seccomp_bpf, "rb") as f:
                bpf = f.read()
        except OSError as e:
            fail(f"read seccomp BPF '{args.seccomp_bpf}': {e.strerror}")
        config["annotations"] = {"run.oci.seccomp_bpf_data": base64.b64encode(bpf).decode("ascii")}
    else:
        config["linux"]["seccomp"] = oci_seccomp(args.seccomp, kept_caps=set())
    return config


def host_first(text):
    """--userns's value: a host id such that HOST_FIRST..HOST_FIRST+65535 are all ids, none the host's root."""
    try:
        first = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 1 <= first <= MAX_HOST_ID - USERNS_SIZE + 1:
        raise argparse.ArgumentTypeError(f"host id {first} out of range (1..{MAX_HOST_ID - USERNS_SIZE + 1})")
    return first


def parse_args(argv):
    p = argparse.ArgumentParser(description="Write a crun config.json equivalent to an sbx one-shot sandbox.")
    p.add_argument("--rootfs", required=True, help="root directory (the per-run overlay mount point)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--seccomp", help="OCI-format seccomp profile (seccomp-profiles/default.json)")
    g.add_argument("--seccomp-bpf", help="a compiled filter (sbx-bench-oneshot --dump-seccomp-bpf), passed to crun "
                   "precompiled through the run.oci.seccomp_bpf_data annotation")
    p.add_argument("--cgroups-path", required=True, help="linux.cgroupsPath")
    p.add_argument("--memory", type=int, default=256 << 20, help="memory limit in bytes")
    p.add_argument("--pids", type=int, default=256, help="pids limit")
    p.add_argument("--vcpus", type=float, default=1.0, help="CPU bandwidth in CPUs")
    p.add_argument("--hostname", default="sbx")
    p.add_argument("--userns", type=host_first, metavar="HOST_FIRST",
                   help=f"a user namespace whose ids 0..{USERNS_SIZE - 1} are host ids HOST_FIRST.. (uid and gid)")
    p.add_argument("--out", default="-", help="where to write (default: stdout)")
    p.add_argument("argv", nargs="+", help="the command, after --")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    text = json.dumps(build_config(args), indent=2) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
