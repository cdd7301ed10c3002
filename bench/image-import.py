#!/usr/bin/env python3
"""Times importing an image tarball into a private sbxd's store, against GNU tar unpacking the same tarball.

The image part of bench/run. Per round (after the untimed warm-up rounds, which do the same):
    cold    `sbxctl image import TARBALL --name NAME` (path mode: sbxd's sbx-image reads the file itself) into a
            store without the image's layer (the image is removed, untimed, and the daemon's background removal
            of its layer waited for, before the timing starts);
    warm    the same with `--replace`, the layer now present: a tarball's layer digest is only known once it is
            read, so sbx-image unpacks it again and discards the duplicate;
    stream  cold again (image removed first), `--stream --replace`: sbxctl sends the file's bytes over the API
            connection (image.data notifications) instead of the daemon reading the path;
    tar     `tar -xf TARBALL -C DIR` (GNU tar; it runs zstd for a .zst) into a fresh DIR on the same file
            system as the store, removed (untimed) afterwards.
Each timing is the wall clock of the one process (sbxctl or tar), from fork to exit; before each, the driver waits
until sbxd's background removals (images/trash, images/tmp) are done, so none runs during a timing.
Writes "warmup I: X ms" / "run I: X ms" lines to DATA/import.{cold,warm,stream,tar}.txt and, at the end, one line
"disk: {JSON}" to DATA/disk.txt: the tarball's size, the layer directory's `du -sb` / `du -s` and entry count, the
same of tar's directory, and the image's size as sbxd reports it. The image stays imported (the latency rounds
that follow use it); the layer's path is in the JSON ("layer_dir").

With --tar-only (bench/run --crun-only: no sbx build) only tar is timed, and disk.txt describes tar's directory.

Usage: image-import.py --sbxctl PATH --socket S --state-dir DIR --tarball FILE --work-dir DIR --data DIR
                       [--name NAME] [--rounds N] [--warmup N]
       image-import.py --tar-only --tarball FILE --work-dir DIR --data DIR [--rounds N] [--warmup N]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time


class BenchError(Exception):
    pass


def run(cmd, what, capture=False):
    out = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                         stderr=subprocess.PIPE, check=False)
    if out.returncode != 0:
        raise BenchError(f"{what}: exit status {out.returncode}: {out.stderr.decode(errors='replace').strip()}")
    return out.stdout.decode() if capture else ""


def timed(cmd, what):
    start = time.perf_counter_ns()
    run(cmd, what)
    return (time.perf_counter_ns() - start) / 1e6


def du(path):
    """(apparent bytes `du -sb`, allocated KiB `du -s`, entries) of a directory tree."""
    apparent = int(run(["du", "-sb", path], "du -sb", capture=True).split()[0])
    allocated = int(run(["du", "-s", "--block-size=1K", path], "du -s", capture=True).split()[0])
    entries = sum(1 + len(dirs) + len(files) for _, dirs, files in os.walk(path)) - 1
    return apparent, allocated, entries


class ImportBench:
    def __init__(self, args):
        self.args = args
        self.sbxctl = [args.sbxctl, "--socket", args.socket]
        state = args.state_dir or ""
        self.layers = os.path.join(state, "layers")
        self.busy = [os.path.join(state, "images", d) for d in ("trash", "tmp")]
        self.tar_dir = os.path.join(os.path.abspath(args.work_dir), "tar")
        kinds = ("tar",) if args.tar_only else ("cold", "warm", "stream", "tar")
        self.files = {k: open(os.path.join(args.data, f"import.{k}.txt"), "a", encoding="utf-8") for k in kinds}

    def settle(self):
        """Waits until sbxd has no background removal (a removed image's layer, a discarded duplicate) going."""
        if self.args.tar_only:
            return
        deadline = time.monotonic() + 120
        while any(os.path.isdir(d) and os.listdir(d) for d in self.busy):
            if time.monotonic() > deadline:
                raise BenchError(f"sbxd's background removals in {self.busy} did not finish in 120 s")
            time.sleep(0.01)

    def image(self):
        text = run(self.sbxctl + ["image", "inspect", self.args.name], "sbxctl image inspect", capture=True)
        return json.loads(text)

    def exists(self):
        names = run(self.sbxctl + ["image", "ls", "-q"], "sbxctl image ls", capture=True).split()
        return self.args.name in names

    def make_cold(self):
        if self.exists():
            run(self.sbxctl + ["image", "rm", self.args.name], "sbxctl image rm")
        self.settle()
        left = os.listdir(self.layers)
        if left:
            raise BenchError(f"the store still holds layers {left} after removing the image (used elsewhere?)")

    def import_(self, *flags):
        self.settle()
        return timed(self.sbxctl + ["image", "import", self.args.tarball, "--name", self.args.name, "-q", *flags],
                     f"sbxctl image import {' '.join(flags)}")

    def tar(self):
        shutil.rmtree(self.tar_dir, ignore_errors=True)
        os.makedirs(self.tar_dir)
        self.settle()
        return timed(["tar", "-xf", self.args.tarball, "-C", self.tar_dir], "tar -xf")

    def one_round(self, label):
        if self.args.tar_only:
            times = {"tar": self.tar()}
            print(f"{label}: {times['tar']:.3f} ms", file=self.files["tar"], flush=True)
            print(f"{label}: tar {times['tar']:.0f} ms", flush=True)
            return
        self.make_cold()
        times = {"cold": self.import_()}
        if len(os.listdir(self.layers)) != 1:
            raise BenchError(f"after the import the store holds {os.listdir(self.layers)}, not one layer")
        times["warm"] = self.import_("--replace")
        self.make_cold()
        times["stream"] = self.import_("--stream", "--replace")
        times["tar"] = self.tar()
        for key, ms in times.items():
            print(f"{label}: {ms:.3f} ms", file=self.files[key], flush=True)
        print(f"{label}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in times.items()), flush=True)

    def disk(self):
        t_bytes, t_kib, t_entries = du(self.tar_dir)
        out = {"tarball": os.path.abspath(self.args.tarball), "tarball_bytes": os.path.getsize(self.args.tarball),
               "tar_du_bytes": t_bytes, "tar_du_kib": t_kib, "tar_entries": t_entries,
               "store_fs": run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.tar_dir], "findmnt", capture=True).strip()}
        if self.args.tar_only:
            return out
        self.settle()
        image = self.image()
        layers = image.get("layers", [])
        if len(layers) != 1:
            raise BenchError(f"image '{self.args.name}' has {len(layers)} layers, not 1")
        layer_dir = os.path.join(self.layers, layers[0]["diff_id"].split(":", 1)[1])
        l_bytes, l_kib, l_entries = du(layer_dir)
        out.update({"image_id": image.get("id"), "image_size": image.get("size"), "layer_dir": layer_dir,
                    "layer_du_bytes": l_bytes, "layer_du_kib": l_kib, "layer_entries": l_entries})
        return out

    def close(self):
        shutil.rmtree(self.tar_dir, ignore_errors=True)
        for f in self.files.values():
            f.close()


def parse_args(argv):
    p = argparse.ArgumentParser(description="Time sbxctl image import (cold, warm, streamed) against tar -xf.")
    p.add_argument("--sbxctl")
    p.add_argument("--socket")
    p.add_argument("--state-dir", help="the private sbxd's state dir (its store: DIR/layers)")
    p.add_argument("--tar-only", action="store_true", help="time only tar -xf (no sbx build)")
    p.add_argument("--tarball", required=True)
    p.add_argument("--work-dir", required=True, help="where tar unpacks (same file system as the store)")
    p.add_argument("--data", required=True, help="where the timing files go")
    p.add_argument("--name", default="python")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    args = p.parse_args(argv)
    if not args.tar_only and not (args.sbxctl and args.socket and args.state_dir):
        p.error("--sbxctl, --socket and --state-dir are required (unless --tar-only)")
    return args


def on_signal(signum, _frame):
    raise BenchError(f"interrupted by {signal.Signals(signum).name}")


def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    os.makedirs(args.data, exist_ok=True)
    bench = ImportBench(args)
    try:
        for i in range(args.warmup + args.rounds):
            bench.one_round(f"warmup {i + 1}" if i < args.warmup else f"run {i - args.warmup + 1}")
        with open(os.path.join(args.data, "disk.txt"), "w", encoding="utf-8") as f:
            f.write("disk: " + json.dumps(bench.disk()) + "\n")
    except (BenchError, OSError, ValueError) as e:
        print(f"image-import: {e}", file=sys.stderr)
        return 1
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
