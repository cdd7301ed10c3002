#!/usr/bin/env python3
"""Times N `crun exec`s in one running crun container; the crun peer of sbx-bench-daemon's exec mode.

Set-up (untimed): the same pure-v1 cgroup view, bundle and config as crun-oneshot.py (it reuses that code), a fresh
overlay on the bundle's rootfs, and `crun run --detach` of a container whose pid 1 sleeps (--main, default
/bin/sleep 2147483647). Each timed run: `crun exec --no-new-privs ID ARGV...` (--exec-options) started with one
fork+exec, waited for, wall clock, stdin/stdout on /dev/null; a non-zero exit fails the benchmark. At the end:
`crun kill ID KILL`, `crun delete -f`, unmount, remove the cgroups (also on failure or a signal).
Prints "warmup I: X ms" / "run I: X ms" lines.

Usage: crun-exec.py --rootfs DIR --config-args "ARGS" --work-dir DIR [--runs N] [--warmup N]
                    [--cgroup-parent NAME] [--hierarchies "..."] [--crun PATH] [--id-prefix P] [--main "ARGV"]
                    [--exec-options "OPTIONS"]
                    -- ARGV...
"""
import importlib.util
import os
import signal
import subprocess
import sys
import time

_spec = importlib.util.spec_from_file_location(
    "crun_oneshot", os.path.join(os.path.dirname(os.path.abspath(__file__)), "crun-oneshot.py"))
crun_oneshot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crun_oneshot)
BenchError = crun_oneshot.BenchError


class CrunExecBench(crun_oneshot.CrunBench):
    """A CrunBench whose config's process is the long-running --main; the exec'd command is args.exec_argv."""

    def start_container(self, cid):
        self.write_config(cid)
        os.makedirs(self.layer)
        upper, work = os.path.join(self.layer, "upper"), os.path.join(self.layer, "work")
        os.mkdir(upper)
        os.mkdir(work)
        crun_oneshot.mount("overlay", self.rootfs, "overlay", 0,
                           f"lowerdir={os.path.abspath(self.args.rootfs)},upperdir={upper},workdir={work}")
        self.mounted = True
        self.started.append(cid)
        rc = subprocess.run([self.args.crun, "--root", self.state, "run", "--detach", "--bundle", self.bundle, cid],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=False).returncode
        if rc != 0:
            raise BenchError(f"crun run --detach {cid}: exit status {rc}")

    def one_exec(self, cid):
        start = time.perf_counter_ns()
        self.proc = subprocess.Popen([self.args.crun, "--root", self.state, "exec", *self.args.exec_options, cid,
                                      *self.args.exec_argv],
                                     stdin=subprocess.DEVNULL,
                                     stdout=None if self.args.show_output else subprocess.DEVNULL)
        rc = self.proc.wait()
        elapsed = (time.perf_counter_ns() - start) / 1e6
        self.proc = None
        if rc != 0:
            raise BenchError(f"crun exec {cid}: exit status {rc}")
        return elapsed

    def stop_container(self, cid):
        subprocess.run([self.args.crun, "--root", self.state, "kill", cid, "KILL"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        rc = subprocess.run([self.args.crun, "--root", self.state, "delete", "-f", cid],
                            stdout=subprocess.DEVNULL, check=False).returncode
        if rc != 0:
            raise BenchError(f"crun delete -f {cid}: exit status {rc}")
        self.started.remove(cid)
        crun_oneshot.umount(self.rootfs)
        self.mounted = False


def parse_args(argv):
    p = crun_oneshot.argparse.ArgumentParser(description="Time crun exec in one running container.")
    p.add_argument("--rootfs", required=True, help="the read-only lower layer")
    p.add_argument("--work-dir", required=True, help="scratch directory (created, removed at the end)")
    p.add_argument("--config-args", default="", help="extra crun-config.py options, e.g. '--seccomp FILE'")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--cgroup-parent", default="sbx-bench-crun", help="cgroup under our own one, in every hierarchy")
    p.add_argument("--hierarchies", default="", help="only these v1 controllers; default: all")
    p.add_argument("--crun", default="crun")
    p.add_argument("--id-prefix", default="sbx-bench")
    p.add_argument("--main", default="/bin/sleep 2147483647", help="the container's pid 1 (split at spaces)")
    p.add_argument("--exec-options", default="--no-new-privs",
                   help="crun exec options (default --no-new-privs: sbx's execs get no_new_privs, as its sandboxes)")
    p.add_argument("--show-output", action="store_true", help="pass the exec's stdout through (for checks)")
    p.add_argument("exec_argv", nargs="+", help="the command to exec, after --")
    args = p.parse_args(argv)
    args.config_args = args.config_args.split()
    args.exec_options = args.exec_options.split()
    args.argv = args.main.split()  # what CrunBench puts in config.json's process.args
    return args


def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, crun_oneshot.on_signal)
    if os.geteuid() != 0:
        print("crun-exec: must run as root", file=sys.stderr)
        return 1
    bench = CrunExecBench(args)
    status = 0
    cid = f"{args.id_prefix}-exec-{os.getpid()}"
    try:
        bench.setup()
        bench.start_container(cid)
        for i in range(args.warmup + args.runs):
            label = f"warmup {i + 1}" if i < args.warmup else f"run {i - args.warmup + 1}"
            print(f"{label}: {bench.one_exec(cid):.3f} ms", flush=True)
        bench.stop_container(cid)
    except (BenchError, OSError) as e:
        print(f"crun-exec: {e}", file=sys.stderr)
        status = 1
    finally:
        for problem in bench.cleanup():
            print(f"crun-exec: cleanup: {problem}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
