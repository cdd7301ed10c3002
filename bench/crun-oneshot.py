#!/usr/bin/env python3
"""Times N one-shot `crun run`s, each on a fresh overlay of a root filesystem; the crun side of bench/run.

Each timed run (wall clock, like sbx-bench-oneshot's create..destroy):
    mkdir a fresh upper/work, mount overlay(lower=ROOTFS) on the bundle's rootfs, `crun run` (create, start,
    wait, delete: crun removes the container and its cgroups), unmount, remove upper/work.
Prints "warmup I: X ms" / "run I: X ms" lines; exits non-zero on any error or non-zero exit of the command.

crun 1.8 refuses to run on a hybrid cgroup host ("cgroups in hybrid mode not supported"). So this process first
enters a private mount namespace whose /sys/fs/cgroup is a fresh tmpfs holding bind mounts of the v1 hierarchies
only, each bound from this process's own cgroup in that hierarchy: crun sees a pure v1 host, and its cgroupsPath
"/PARENT/ID" lands at <own cgroup>/PARENT/ID in every hierarchy, never at a root. The host's mounts are untouched.

Usage: crun-oneshot.py --rootfs DIR --config-args "ARGS" --work-dir DIR [--runs N] [--warmup N]
                       [--cgroup-parent NAME] [--crun PATH] -- ARGV...
"""
import argparse
import ctypes
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

CLONE_NEWNS = 0x00020000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
CGROUP_ROOT = "/sys/fs/cgroup"

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]


class BenchError(Exception):
    pass


def os_error(what):
    err = ctypes.get_errno()
    return BenchError(f"{what}: {os.strerror(err)}")


def enc(s):
    return None if s is None else s.encode()


def mount(source, target, fstype, flags, data=None):
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        raise os_error(f"mount {fstype or 'bind'} '{source}' on '{target}'")


def umount(target, flags=0):
    if libc.umount2(enc(target), flags) != 0:
        raise os_error(f"umount '{target}'")


def own_v1_cgroups():
    """{controller-set: own path} for every v1 hierarchy in /proc/self/cgroup (e.g. {"memory": "/a/b"})."""
    own = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls:
                own[ctrls] = path
    return own


def v1_mounts():
    """[(mount point, root in hierarchy, controller-set)] of the v1 cgroup mounts under /sys/fs/cgroup."""
    found = []
    controllers = known_controllers()
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, super_opts = fields[sep + 1], fields[sep + 3].split(",")
            root, mount_point = fields[3], fields[4]
            if fstype != "cgroup" or os.path.dirname(mount_point) != CGROUP_ROOT:
                continue
            ctrls = [o for o in super_opts if o.startswith("name=") or o in controllers]
            found.append((mount_point, root, ",".join(sorted(ctrls))))
    return found


def known_controllers():
    with open("/proc/cgroups", encoding="utf-8") as f:
        return {line.split()[0] for line in f if not line.startswith("#")}


def pure_v1_view(only):
    """Enters a private mount namespace whose /sys/fs/cgroup shows only the v1 hierarchies (those holding one of
    the controllers in `only`, when given), each from our own cgroup down.
    Returns {mount name: host path of our own cgroup there}."""
    own = {",".join(sorted(k.split(","))): v for k, v in own_v1_cgroups().items()}
    bound = []
    for mount_point, root, ctrls in v1_mounts():
        path = own.get(ctrls)
        if path is None or (only and not set(ctrls.split(",")) & only):
            continue
        rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
        source = os.path.normpath(os.path.join(mount_point, rel))
        bound.append((os.path.basename(mount_point), source))
    if not bound:
        raise BenchError(f"no cgroup v1 hierarchies under {CGROUP_ROOT}")
    links = {e: os.readlink(os.path.join(CGROUP_ROOT, e)) for e in os.listdir(CGROUP_ROOT)
             if os.path.islink(os.path.join(CGROUP_ROOT, e))}
    if libc.unshare(CLONE_NEWNS) != 0:
        raise os_error("unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    fds = [(name, source, os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) for name, source in bound]
    mount("tmpfs", CGROUP_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    for name, source, fd in fds:
        target = os.path.join(CGROUP_ROOT, name)
        os.mkdir(target)
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        os.close(fd)
    for name, dest in links.items():
        if os.path.exists(os.path.join(CGROUP_ROOT, dest)):
            os.symlink(dest, os.path.join(CGROUP_ROOT, name))
    return dict((name, source) for name, source, _ in fds)


class CrunBench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work_dir)
        self.state = os.path.join(self.work, "crun-state")
        self.bundle = os.path.join(self.work, "bundle")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        self.layer = os.path.join(self.work, "layer")
        self.mounted = False
        self.proc = None  # the `crun run` in progress
        self.started = []
        self.hierarchies = {}

    def setup(self):
        self.hierarchies = pure_v1_view(set(self.args.hierarchies.split()))
        for d in (self.state, self.rootfs):
            os.makedirs(d, exist_ok=True)
        self.template = self.make_config()

    def make_config(self):
        cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "crun-config.py"),
               "--rootfs", self.rootfs, "--cgroups-path", "/placeholder", *self.args.config_args, "--", *self.args.argv]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, check=False)
        if out.returncode != 0:
            raise BenchError(f"crun-config.py failed (exit {out.returncode})")
        return json.loads(out.stdout)

    def write_config(self, cid):
        self.template["linux"]["cgroupsPath"] = f"/{self.args.cgroup_parent}/{cid}"
        with open(os.path.join(self.bundle, "config.json"), "w", encoding="utf-8") as f:
            json.dump(self.template, f)

    def one_run(self, cid):
        self.write_config(cid)
        start = time.perf_counter_ns()
        os.mkdir(self.layer)
        upper, work = os.path.join(self.layer, "upper"), os.path.join(self.layer, "work")
        os.mkdir(upper)
        os.mkdir(work)
        mount("overlay", self.rootfs, "overlay", 0,
              f"lowerdir={os.path.abspath(self.args.rootfs)},upperdir={upper},workdir={work}")
        self.mounted = True
        self.started.append(cid)
        self.proc = subprocess.Popen([self.args.crun, "--root", self.state, "run", "--bundle", self.bundle, cid],
                                     stdin=subprocess.DEVNULL,
                                     stdout=None if self.args.show_output else subprocess.DEVNULL)
        rc = self.proc.wait()
        self.proc = None
        if rc != 0:
            raise BenchError(f"crun run {cid}: exit status {rc}")
        self.started.pop()
        umount(self.rootfs)
        self.mounted = False
        shutil.rmtree(self.layer)
        return (time.perf_counter_ns() - start) / 1e6

    def cleanup(self):
        """Undoes whatever a failed or interrupted run left: the crun in progress, its container, the overlay, the
        layer dir, and our cgroups (killing what is still in them). Returns what could not be removed."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        for cid in self.started:
            subprocess.run([self.args.crun, "--root", self.state, "delete", "-f", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        problems = []
        if self.mounted:
            try:
                umount(self.rootfs, MNT_DETACH)
            except BenchError as e:
                problems.append(str(e))
        shutil.rmtree(self.layer, ignore_errors=True)
        for name, own in self.hierarchies.items():
            problems += remove_cgroup_tree(os.path.join(CGROUP_ROOT, name, self.args.cgroup_parent),
                                           f"{own}/{self.args.cgroup_parent}")
        shutil.rmtree(self.work, ignore_errors=True)
        return problems


def remove_cgroup_tree(path, host_path):
    """Kills the members of the cgroup `path` and its children (all ours), then removes them, deepest first.
    A missing cgroup is fine. `host_path` names it in messages. Returns what could not be removed."""
    if not os.path.isdir(path):
        return []
    problems = []
    for child in sorted(e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)):
        problems += remove_cgroup_tree(os.path.join(path, child), f"{host_path}/{child}")
    for attempt in range(50):
        with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as f:
            pids = [int(p) for p in f.read().split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(path)
            return problems
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == 49:
                return problems + [f"rmdir cgroup '{host_path}': {e.strerror}"]
            time.sleep(0.02)
    return problems


def parse_args(argv):
    p = argparse.ArgumentParser(description="Time one-shot crun runs on a fresh overlay each.")
    p.add_argument("--rootfs", required=True, help="the read-only lower layer")
    p.add_argument("--work-dir", required=True, help="scratch directory (created, removed at the end)")
    p.add_argument("--config-args", default="", help="extra crun-config.py options, e.g. '--seccomp FILE'")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--cgroup-parent", default="sbx-bench-crun", help="cgroup under our own one, in every hierarchy")
    p.add_argument("--hierarchies", default="",
                   help="only these v1 controllers (e.g. 'memory cpu cpuacct pids freezer'); default: all")
    p.add_argument("--crun", default="crun")
    p.add_argument("--id-prefix", default="sbx-bench")
    p.add_argument("--show-output", action="store_true", help="pass the command's stdout through (for checks)")
    p.add_argument("argv", nargs="+", help="the command, after --")
    args = p.parse_args(argv)
    args.config_args = args.config_args.split()
    return args


def on_signal(signum, _frame):
    raise BenchError(f"interrupted by {signal.Signals(signum).name}")


def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if os.geteuid() != 0:
        print("crun-oneshot: must run as root", file=sys.stderr)
        return 1
    bench = CrunBench(args)
    status = 0
    try:
        bench.setup()
        for i in range(args.warmup + args.runs):
            label = f"warmup {i + 1}" if i < args.warmup else f"run {i - args.warmup + 1}"
            ms = bench.one_run(f"{args.id_prefix}-{os.getpid()}-{i}")
            print(f"{label}: {ms:.3f} ms", flush=True)
    except (BenchError, OSError) as e:
        print(f"crun-oneshot: {e}", file=sys.stderr)
        status = 1
    finally:
        for problem in bench.cleanup():
            print(f"crun-oneshot: cleanup: {problem}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
