#!/usr/bin/env python3
"""Summarises bench/run's image part (issue 4): prints the one-line results and writes the "image" section of
RESULTS.md.

Input: a directory with
  oneshot.<runtime>.txt   "run I: X ms [create A exec B remove C]": `sbx-bench-daemon run --image python` (sbx:
                          one sandbox.run), `sbx-bench-daemon oneshot --image python` (sbx-calls: sandbox.create,
                          .exec, .remove), or crun-oneshot.py on the image's layer directory (crun, crun-bpf)
  import.<kind>.txt       "run I: X ms" of image-import.py: cold, warm, stream (sbxctl image import) and tar
  disk.txt                the "disk: {JSON}" line of image-import.py
Warm-up lines are ignored.

Usage: image-report.py --data DIR --out FILE [--runs N --warmup N --rounds N --import-rounds N] [--note TEXT]...
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys

import report

_spec = importlib.util.spec_from_file_location("daemon_report",
                                               os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                            "daemon-report.py"))
daemon_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(daemon_report)

TARGET = daemon_report.TARGET
# sbx twice: the API's one-shot call, and the same done with three calls; then daemon_report's crun variants.
CRUNS = [r for r in daemon_report.RUNTIMES if r[0] != "sbx"]
RUNTIMES = [("sbx", "sbx `sandbox.run`"), ("sbx-calls", "sbx `sandbox.create` + `.exec` + `.remove`")] + CRUNS
TITLE = "one-shot python3 print(1) on the python image"
IMPORTS = [
    ("cold", "`sbxctl image import` (path), layer not in the store"),
    ("warm", "`sbxctl image import --replace` (path), layer present (unpacked again, duplicate discarded)"),
    ("stream", "`sbxctl image import --stream --replace`, layer not in the store"),
    ("tar", "`tar -xf` into an empty directory (the peer)"),
]


def summarise(data_dir):
    oneshot = {}
    for runtime, _ in RUNTIMES:
        runs = daemon_report.read_runs(os.path.join(data_dir, f"oneshot.{runtime}.txt"))
        if not runs:
            continue
        s = daemon_report.stats_of([t for t, _ in runs])
        phases = {}
        for _, p in runs:
            for k, v in p.items():
                phases.setdefault(k, []).append(v)
        s["phases"] = {k: (statistics.median(v), report.percentile(v, 90)) for k, v in phases.items()}
        oneshot[runtime] = s
    imports = {}
    for kind, _ in IMPORTS:
        runs = daemon_report.read_runs(os.path.join(data_dir, f"import.{kind}.txt"))
        if runs:
            times = [t for t, _ in runs]
            imports[kind] = dict(daemon_report.stats_of(times), max=max(times))
    return oneshot, imports


def read_disk(data_dir):
    path = os.path.join(data_dir, "disk.txt")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("disk: "):
                return json.loads(line[len("disk: "):])
    return None


def mib(b):
    return b / 2**20


def summary_lines(oneshot, imports, disk):
    r = daemon_report.ratio(oneshot, "sbx", "crun")
    sbx, crun = oneshot.get("sbx", {}), oneshot.get("crun", {})
    calls = oneshot.get("sbx-calls", {})
    lines = [f"{TITLE}: sbx sandbox.run p50 {report.fmt_ms(sbx.get('p50'))} ms (p90 {report.fmt_ms(sbx.get('p90'))}), "
             f"crun p50 {report.fmt_ms(crun.get('p50'))} ms (p90 {report.fmt_ms(crun.get('p90'))}), ratio "
             f"{daemon_report.fmt_ratio(r)} ({daemon_report.verdict(r)}); sbx create+exec+remove p50 "
             f"{report.fmt_ms(calls.get('p50'))} ms, ratio "
             f"{daemon_report.fmt_ratio(daemon_report.ratio(oneshot, 'sbx-calls', 'crun'))}"]
    if imports:
        tar = imports.get("tar", {}).get("p50")
        parts = [f"{k} {imports[k]['p50']:.0f} ms" for k in ("cold", "warm", "stream") if k in imports]
        rel = f" (cold / tar {imports['cold']['p50'] / tar:.2f})" if tar and "cold" in imports else ""
        lines.append(f"import of the python image (p50): {', '.join(parts) or 'sbx n/a'}; tar -xf "
                     f"{'n/a' if tar is None else f'{tar:.0f}'} ms{rel}")
    if disk:
        layer = (f"layer {mib(disk['layer_du_bytes']):.1f} MiB (du -sb), {disk['layer_du_kib'] / 1024:.1f} MiB "
                 f"allocated (du -s), {disk['layer_entries']} entries; " if "layer_du_bytes" in disk else "")
        lines.append(f"disk: {layer}tar -xf's directory {mib(disk['tar_du_bytes']):.1f} MiB / "
                     f"{disk['tar_du_kib'] / 1024:.1f} MiB, {disk['tar_entries']} entries; tarball "
                     f"{mib(disk['tarball_bytes']):.1f} MiB (zstd)")
    return lines


def latency_table(oneshot):
    out = ["| runtime | runs | p50 ms | p90 ms | p99 ms | mean ms | min ms | p50 / crun's | p90 / crun's |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for runtime, label in RUNTIMES:
        if runtime not in oneshot:
            continue
        x = oneshot[runtime]
        out.append(f"| {label} | {x['n']} | {x['p50']:.2f} | {x['p90']:.2f} | {x['p99']:.2f} | {x['mean']:.2f} | "
                   f"{x['min']:.2f} | {daemon_report.fmt_ratio(daemon_report.ratio(oneshot, runtime, 'crun'))} | "
                   f"{daemon_report.fmt_ratio(daemon_report.ratio(oneshot, runtime, 'crun', 'p90'))} |")
    out += ["", "sbx's p50 as a fraction of each crun variant's (the target is for `sandbox.run`, the API's "
            "one-shot call):", "",
            "| sbx | " + " | ".join(f"/ {label} (p50)" for _, label in CRUNS) + " | target | met? |",
            "| --- |" + " ---: |" * len(CRUNS) + " ---: | --- |"]
    for runtime, label in RUNTIMES[:2]:
        if runtime not in oneshot:
            continue
        cells = [daemon_report.fmt_ratio(daemon_report.ratio(oneshot, runtime, rt)) for rt, _ in CRUNS]
        r = daemon_report.ratio(oneshot, runtime, "crun")
        met = "n/a" if r is None else ("yes" if r <= TARGET else "**no**")
        out.append(f"| {label} | " + " | ".join(cells) + f" | <= {TARGET:.2f} | {met} |")
    p = oneshot.get("sbx-calls", {}).get("phases", {})
    if p:
        out += ["", "sbx create + exec + remove, each call's p50 (p90): " + ", ".join(
            f"`sandbox.{k}` {p[k][0]:.2f} ({p[k][1]:.2f}) ms" for k in ("create", "exec", "remove") if k in p) + "."]
    return out


def import_table(imports):
    tar = imports.get("tar", {}).get("p50")
    out = ["| import | runs | p50 ms | p90 ms | min ms | max ms | mean ms | p50 / tar's |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, label in IMPORTS:
        if kind not in imports:
            continue
        x = imports[kind]
        rel = f"{x['p50'] / tar:.2f}" if tar else "n/a"
        out.append(f"| {label} | {x['n']} | {x['p50']:.0f} | {x['p90']:.0f} | {x['min']:.0f} | {x['max']:.0f} | "
                   f"{x['mean']:.0f} | {rel} |")
    return out


def disk_table(disk):
    out = ["| | bytes (`du -sb`) | allocated (`du -s`) | entries |", "| --- | ---: | ---: | ---: |",
           f"| the tarball ({os.path.basename(disk['tarball'])}, zstd) | {disk['tarball_bytes']} "
           f"({mib(disk['tarball_bytes']):.1f} MiB) | | |"]
    if "layer_du_bytes" in disk:
        out.append(f"| the image's layer in the store (`<state_dir>/layers/<hex>`) | {disk['layer_du_bytes']} "
                   f"({mib(disk['layer_du_bytes']):.1f} MiB) | {disk['layer_du_kib']} KiB "
                   f"({disk['layer_du_kib'] / 1024:.1f} MiB) | {disk['layer_entries']} |")
    out.append(f"| `tar -xf` of the tarball | {disk['tar_du_bytes']} ({mib(disk['tar_du_bytes']):.1f} MiB) | "
               f"{disk['tar_du_kib']} KiB ({disk['tar_du_kib'] / 1024:.1f} MiB) | {disk['tar_entries']} |")
    notes = []
    if disk.get("image_size"):
        notes.append(f"sbxd reports the image's size as {disk['image_size']} bytes ({mib(disk['image_size']):.1f} "
                     f"MiB): the length of the uncompressed tar stream, headers and padding included.")
    if "layer_entries" in disk:
        notes.append(f"The layer has {disk['tar_entries'] - disk['layer_entries']} entries fewer than tar's "
                     "directory: sbx-image drops device nodes (the tarball's /dev entries; a sandbox gets a /dev "
                     "tmpfs of its own). Both on " + disk.get("store_fs", "?") + ".")
    return out + ([""] + [" ".join(notes)] if notes else [])


def method_lines(args):
    per_round = args.runs // max(args.rounds, 1)
    return [
        "- The python image: `rootfs-tools/sbx-build-image python` (Debian 12 minbase + python3, python3-pip, "
        "python3-venv; a zstd tarball), cached in the benchmark's cache dir. It is imported into a private `sbxd` "
        "whose state dir (and so its layer store) is new and empty, under `/run/sbx-bench.*`.",
        f"- Import: 1 untimed + {args.import_rounds} timed rounds (`bench/image-import.py`), each: cold (`sbxctl "
        "image import TARBALL --name python`, path mode: sbxd's `sbx-image` reads the file; the image removed and "
        "its layer's background removal finished before), warm (`--replace`, the layer present: a tarball's digest "
        "is known only after reading it, so it is unpacked again and the duplicate discarded), streamed (cold "
        "again, `--stream`: sbxctl sends the bytes over the API connection), and `tar -xf TARBALL -C DIR` (GNU tar, "
        "which runs `zstd -d`) into a fresh directory on the same file system as the store. Each is the wall clock "
        "of the one process (`sbxctl` until the daemon's reply, or `tar`); before each, sbxd's background removals "
        "are waited for. The tarball is in the page cache for all of them (the warm-up round reads it).",
        "- Disk use: `du -sb` (apparent bytes) and `du -s` (allocated) of the layer directory and of tar's "
        "directory, and the tarball's size.",
        f"- One-shot: {args.rounds} rounds; each runs sbx, crun and crun + precompiled seccomp, each with "
        f"{args.warmup} untimed warm-up runs and {per_round} timed ones ({args.runs} timed runs per runtime). sbx "
        "`sandbox.run`: `sbx-bench-daemon run --image python` = one `sandbox.run {image: \"python\", argv: "
        "[\"/usr/bin/python3\", \"-c\", \"print(1)\"], stream: false}` (what `sbxctl run` sends): a new sandbox "
        "whose main command is python, removed before the reply, the output in the reply. sbx create + exec + "
        "remove: `sbx-bench-daemon oneshot --image python` = `sandbox.create {image: \"python\"}` (idle: the "
        "tarball's image has no entrypoint or cmd) -> `sandbox.exec {argv: [...]}` -> `sandbox.remove {force}`, "
        "which `sbxctl run --keep` does (without the remove). crun: `crun-oneshot.py` with the image's layer directory in sbxd's store as the "
        "overlay's lower layer (read-only on both sides: the very same files), `crun run` of the same argv. Both: "
        "a fresh overlay upper per run, memory 256 MiB, pids 256, 1 vCPU, `seccomp-profiles/default.json`, no "
        "capabilities, no_new_privs, the same mounts and namespaces as the daemon section. sbx returns the "
        "output (\"1\\n\") over the API; crun's stdout is /dev/null.",
        "- ratio = sbx `sandbox.run` p50 / crun p50 against stock crun (`linux.seccomp` compiled on every run); the target is "
        "<= 0.50. p90/p99 are nearest-rank percentiles of all timed runs.",
    ] + [f"- {n}" for n in args.note]


def write_section(path, oneshot, imports, disk, args):
    lines = ["## Issue 4: the python image: one-shot `python3 -c 'print(1)'` through sbxd vs `crun run`, and "
             "import time and disk use vs `tar -xf`", "", f"Measured {report.utc_now()} by `bench/run`.", "",
             "### Machine", ""]
    lines += report.machine_table()
    lines += ["", "### Results", "", "```"] + summary_lines(oneshot, imports, disk) + ["```", ""]
    if oneshot:
        lines += ["#### One-shot python3 -c 'print(1)'", ""] + latency_table(oneshot) + [""]
    if imports:
        lines += ["#### Import of the python image", ""] + import_table(imports) + [""]
    if disk:
        lines += ["#### Disk use", ""] + disk_table(disk) + [""]
    lines += ["### Method", ""] + method_lines(args)
    report.update_section(path, "image", lines)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--runs", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--import-rounds", type=int, default=0)
    args = p.parse_args(argv)
    oneshot, imports = summarise(args.data)
    disk = read_disk(args.data)
    for line in summary_lines(oneshot, imports, disk):
        print(line)
    write_section(args.out, oneshot, imports, disk, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
