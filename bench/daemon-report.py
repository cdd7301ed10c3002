#!/usr/bin/env python3
"""Summarises bench/run's daemon part: prints the one-line results and writes the "daemon" section of RESULTS.md.

Input: a directory with
  exec.<runtime>.txt     "run I: X ms" lines of `sbx-bench-daemon exec` (sbx) or crun-exec.py (crun variants)
  oneshot.<runtime>.txt  "run I: X ms [create A exec B remove C]" of `sbx-bench-daemon oneshot` or crun-oneshot.py
  memory.txt             the "memory: {JSON}" line of `sbx-bench-daemon memory`
Warm-up lines are ignored.

Usage: daemon-report.py --data DIR --out FILE [--runs N --warmup N --rounds N] [--note TEXT]...
"""
import argparse
import json
import os
import statistics
import sys

import report

TARGET = 0.50
RUNTIMES = [
    ("sbx", "sbx (sbxd API)"),
    ("crun", "crun"),
    ("crun-bpf", "crun + precompiled seccomp"),
]
CASES = [
    ("exec", "exec /bin/true in a running sandbox", "sbx: `sandbox.exec` call; crun: `crun exec`"),
    ("oneshot", "one-shot /bin/true", "sbx: `sandbox.create` + `sandbox.exec` + `sandbox.remove`; crun: `crun run`"),
]


def read_runs(path):
    """[(total ms, {phase: ms})] of the "run" lines (phases: sbx one-shot's create/exec/remove)."""
    if not os.path.exists(path):
        return []
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("run "):
                continue
            words = line.split(":", 1)[1].split()
            phases = {words[i]: float(words[i + 1]) for i in range(2, len(words) - 1, 2)}
            runs.append((float(words[0]), phases))
    return runs


def stats_of(times):
    return {"n": len(times), "p50": statistics.median(times), "p90": report.percentile(times, 90),
            "p99": report.percentile(times, 99), "mean": statistics.fmean(times), "min": min(times)}


def summarise(data_dir):
    out = {}
    for case, _, _ in CASES:
        out[case] = {}
        for runtime, _ in RUNTIMES:
            runs = read_runs(os.path.join(data_dir, f"{case}.{runtime}.txt"))
            if not runs:
                continue
            s = stats_of([t for t, _ in runs])
            phases = {}
            for _, p in runs:
                for k, v in p.items():
                    phases.setdefault(k, []).append(v)
            s["phases"] = {k: statistics.median(v) for k, v in phases.items()}
            out[case][runtime] = s
    return out


def ratio(stats, a, b, key="p50"):
    if a in stats and b in stats and stats[b][key] > 0:
        return stats[a][key] / stats[b][key]
    return None


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}"


def verdict(r):
    if r is None:
        return "not measured"
    return f"target <= {TARGET:.2f} {'met' if r <= TARGET else 'MISSED'}"


def summary_lines(stats, memory):
    lines = []
    for case, title, _ in CASES:
        s = stats.get(case, {})
        r = ratio(s, "sbx", "crun")
        sbx = s.get("sbx", {}).get("p50")
        crun = s.get("crun", {}).get("p50")
        lines.append(f"{title}: sbx p50 {report.fmt_ms(sbx)} ms, crun p50 {report.fmt_ms(crun)} ms, "
                     f"ratio {fmt_ratio(r)} ({verdict(r)})")
    if memory:
        m = memory_figures(memory)
        lines.append(f"memory: sbxd RSS {m['sbxd_empty']:.1f} MiB empty, {m['sbxd_loaded']:.1f} MiB with "
                     f"{m['count']} idle sandboxes; per idle sandbox {m['accounted']:.2f} MiB of host memory "
                     f"(accounted; MemAvailable drop {m['per_sandbox_avail']:.2f} MiB); one sbx-monitor: RSS "
                     f"{m['monitor_rss']:.1f} MiB, PSS {m['monitor_pss']:.2f} MiB")
    return lines


def latency_table(stats):
    out = ["| case | runtime | runs | p50 ms | p90 ms | p99 ms | mean ms | min ms | p50 / crun's | p99 / crun's |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case, title, _ in CASES:
        s = stats.get(case, {})
        for runtime, label in RUNTIMES:
            if runtime not in s:
                continue
            x = s[runtime]
            out.append(f"| {title} | {label} | {x['n']} | {x['p50']:.2f} | {x['p90']:.2f} | {x['p99']:.2f} | "
                       f"{x['mean']:.2f} | {x['min']:.2f} | {fmt_ratio(ratio(s, runtime, 'crun'))} | "
                       f"{fmt_ratio(ratio(s, runtime, 'crun', 'p99'))} |")
    return out


def ratio_table(stats):
    variants = RUNTIMES[1:]
    out = ["| case | " + " | ".join(f"sbx / {label} (p50)" for _, label in variants) + " | target | met? |",
           "| --- |" + " ---: |" * len(variants) + " ---: | --- |"]
    for case, title, _ in CASES:
        s = stats.get(case, {})
        cells = [fmt_ratio(ratio(s, "sbx", runtime)) for runtime, _ in variants]
        r = ratio(s, "sbx", "crun")
        met = "n/a" if r is None else ("yes" if r <= TARGET else "**no**")
        out.append(f"| {title} | " + " | ".join(cells) + f" | <= {TARGET:.2f} | {met} |")
    return out


def phase_line(stats):
    p = stats.get("oneshot", {}).get("sbx", {}).get("phases", {})
    if not p:
        return []
    return ["", f"sbx one-shot, median of each call: `sandbox.create` {p.get('create', 0):.2f} ms, "
                f"`sandbox.exec` {p.get('exec', 0):.2f} ms, `sandbox.remove` {p.get('remove', 0):.2f} ms."]


def mib(kb):
    return kb / 1024


# The kernel-side /proc/meminfo counters an idle sandbox adds to, and that other processes on a shared machine
# move little (unlike MemAvailable, AnonPages or Cached, which a compiler next to the benchmark swings by hundreds of
# MiB): Shmem holds the sbx-init memfd each monitor keeps, the rest are namespaces, mounts, cgroups, page tables and
# the kernel stacks of the monitor and init.
KERNEL_FIELDS = ("Shmem", "SUnreclaim", "PageTables", "KernelStack")


def delta_per_sandbox(m, field):
    return mib(m["loaded"][field] - m["before"][field]) / m["count"]


def memory_figures(m):
    n = m["count"]
    before, loaded, after = m["before"], m["loaded"], m["after"]
    per = m["per_sandbox"]
    kernel = sum(delta_per_sandbox(m, f) for f in KERNEL_FIELDS)
    handlers = mib(per.get("handlers_private_kb", {"median": 0})["median"])
    anon = mib(per["monitor_anon_kb"]["median"]) + mib(per.get("init_anon_kb", {"median": 0})["median"]) + handlers
    return {
        "count": n,
        "accounted": anon + kernel,
        "kernel": kernel,
        "processes_anon": anon,
        "init_anon": mib(per.get("init_anon_kb", {"median": 0})["median"]),
        "handlers_private": handlers,
        "drift": mib(before["MemAvailable"] - after["MemAvailable"]) / n,
        "anon_pages": delta_per_sandbox(m, "AnonPages"),
        "sbxd_empty": mib(before["sbxd_VmRSS"]),
        "sbxd_loaded": mib(loaded["sbxd_VmRSS"]),
        "sbxd_after": mib(after["sbxd_VmRSS"]),
        "per_sandbox_avail": mib(before["MemAvailable"] - loaded["MemAvailable"]) / n,
        "per_sandbox_freed": mib(after["MemAvailable"] - loaded["MemAvailable"]) / n,
        "monitor_rss": mib(per["monitor_rss_kb"]["median"]),
        "monitor_anon": mib(per["monitor_anon_kb"]["median"]),
        "monitor_pss": mib(per["monitor_pss_kb"]["median"]),
        "init_rss": mib(per["init_rss_kb"]["median"]),
        "init_pss": mib(per["init_pss_kb"]["median"]),
        "cgroup": per["cgroup_memory_bytes"]["median"] / 2**20,
    }


def meminfo_delta_rows(m):
    n = m["count"]
    rows = []
    for field in ("Shmem", "Slab", "SReclaimable", "SUnreclaim", "PageTables", "KernelStack", "AnonPages", "Cached"):
        if field in m["before"] and field in m["loaded"]:
            d = mib(m["loaded"][field] - m["before"][field]) / n
            rows.append(f"| {field} delta / sandbox | {d:.3f} MiB |")
    return rows


def memory_section(m):
    f = memory_figures(m)
    n = f["count"]
    out = ["| | |", "| --- | ---: |",
           f"| sbxd VmRSS, no sandboxes | {f['sbxd_empty']:.1f} MiB |",
           f"| sbxd VmRSS, {n} idle sandboxes | {f['sbxd_loaded']:.1f} MiB |",
           f"| sbxd VmRSS, after removing them | {f['sbxd_after']:.1f} MiB |",
           f"| sbxd VmRSS growth per sandbox | {(f['sbxd_loaded'] - f['sbxd_empty']) * 1024 / n:.1f} KiB |",
           f"| **host memory per idle sandbox, accounted** (monitor + init anonymous memory, the spare exec "
           f"handler's private memory, + Shmem, SUnreclaim, PageTables, KernelStack growth / {n}) | "
           f"**{f['accounted']:.2f} MiB** |",
           f"| of which the three processes' anonymous (private) memory | {f['processes_anon']:.2f} MiB |",
           f"| of which kernel and shared memory (meminfo growth / {n}) | {f['kernel']:.2f} MiB |",
           f"| host memory per idle sandbox, MemAvailable drop / {n} (whole host; other processes move it too) | "
           f"{f['per_sandbox_avail']:.2f} MiB |",
           f"| MemAvailable rise on removal / {n} | {f['per_sandbox_freed']:.2f} MiB |",
           f"| noise check: MemAvailable before - after / {n} (0 on a quiet machine) | {f['drift']:.2f} MiB |",
           f"| one sbx-monitor (sandbox mode): VmRSS / RssAnon / PSS, median | {f['monitor_rss']:.2f} / "
           f"{f['monitor_anon']:.2f} / {f['monitor_pss']:.2f} MiB |",
           f"| the sandbox's init (sbx-init): VmRSS / RssAnon / PSS, median | {f['init_rss']:.2f} / "
           f"{f['init_anon']:.2f} / {f['init_pss']:.2f} MiB |",
           f"| the spare exec handler (a fork of the monitor): private memory, median | "
           f"{f['handlers_private']:.2f} MiB |",
           f"| the sandbox's cgroup: memory usage (`sandbox.stats` memory_current), median | {f['cgroup']:.2f} MiB |"]
    out += meminfo_delta_rows(m)
    out += ["", f"Creating the {n} idle sandboxes one after another took {m['create_all_s']:.1f} s, removing them "
                f"{m['remove_all_s']:.1f} s. Each state is the median of {m['samples']} reads of `/proc/meminfo` and "
                f"sbxd's `/proc/PID/status`, {m['settle_ms']} ms after the last change."]
    return out


def method_lines(args, stats):
    per_round = args.runs // max(args.rounds, 1)
    return [
        f"- {args.rounds} rounds; each runs sbx exec, crun exec (both variants), sbx one-shot, crun one-shot (both "
        f"variants), each with {args.warmup} untimed warm-up runs and {per_round} timed ones, so the sides "
        f"alternate and share the machine's noise: {args.runs} timed runs per case and runtime.",
        "- sbx: `sbx-bench-daemon` (C++, `api::Client`) talks to a private `sbxd` started by `bench/run` (its own "
        "socket, state and run dirs under `/run/sbx-bench.*`, its own cgroup parent name, this build's "
        "`sbx-monitor`, `seccomp-profiles/`). exec: one idle sandbox, `sandbox.exec` of `/bin/true` timed from "
        "sending the request to reading the result. one-shot: `sandbox.create` (idle, started) -> `sandbox.exec` "
        "-> `sandbox.remove {force}`.",
        "- crun: `crun-exec.py` starts one container (`crun run --detach`, pid 1 `sleep`) and times `crun exec "
        "--no-new-privs ID /bin/true` (fork+exec of crun, wait); one-shot is `crun-oneshot.py` (`crun run` of "
        "`/bin/true` on a fresh overlay), as in the runtime section.",
        "- Both: the busybox root filesystem, a fresh overlay upper per sandbox/container, memory 256 MiB, pids "
        "256, 1 vCPU, `seccomp-profiles/default.json`, no capabilities (sbxd is given `[defaults] capabilities = "
        "[]`), no_new_privs, the same mounts and namespaces. Differences: see `bench/README.md`.",
        "- ratio = sbx p50 / crun p50 against stock crun (`linux.seccomp` in config.json); the issue's targets are "
        "exec p50 <= 0.5x crun exec and one-shot <= 0.5x crun run. crun + precompiled seccomp gets sbx's compiled "
        "filter through `run.oci.seccomp_bpf_data`.",
        "- p50 is the median; p90/p99 are nearest-rank percentiles of all timed runs.",
        "- Memory: `sbx-bench-daemon memory` on the same sbxd after the latency rounds (no sandbox left). The "
        "headline, *accounted* host memory per idle sandbox, is the anonymous (private) memory of its processes "
        "(monitor and init, RssAnon; their shared-library pages are shared by all; and the spare exec handler the "
        "monitor forks ahead of each exec, counted by the pages only it maps, since it shares the rest with the "
        "monitor) plus what N idle sandboxes add "
        "to the kernel-side meminfo counters, / N: Shmem (the sbx-init memfd each monitor holds), SUnreclaim "
        "(namespaces, mounts, cgroups), PageTables and KernelStack. Those counters move little with other "
        "processes' work, unlike MemAvailable, whose drop / N would be the complete figure on a quiet machine "
        "but on a shared one swings with whatever else runs (AnonPages and Cached show how much); it is reported "
        "with a noise check (its change from before to after). Reclaimable slab (dentries, inodes) is listed but "
        "not counted.",
    ] + [f"- {n}" for n in args.note]


def write_section(path, stats, memory, args):
    lines = ["## Daemon: exec, one-shot and memory through sbxd (`sbx-bench-daemon` vs `crun exec` / `crun run`)",
             "", f"Measured {report.utc_now()} by `bench/run`.", "", "### Machine", ""]
    lines += report.machine_table()
    lines += ["", "### Results", "", "```"] + summary_lines(stats, memory) + ["```", ""]
    lines += latency_table(stats) + ["", "sbx's p50 as a fraction of each crun variant's:", ""] + ratio_table(stats)
    lines += phase_line(stats)
    if memory:
        lines += ["", "### Memory", ""] + memory_section(memory)
    lines += ["", "### Method", ""] + method_lines(args, stats)
    report.update_section(path, "daemon", lines)


def read_memory(data_dir):
    path = os.path.join(data_dir, "memory.txt")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("memory: "):
                return json.loads(line[len("memory: "):])
    return None


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--runs", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    stats = summarise(args.data)
    memory = read_memory(args.data)
    for line in summary_lines(stats, memory):
        print(line)
    write_section(args.out, stats, memory, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
