#!/usr/bin/env python3
"""Summarises the timings bench/run collected: prints the one-line results and writes RESULTS.md.

Input: a directory with one file per (case, runtime), "<case>.<runtime>.txt", each holding the "run I: X ms" lines
of sbx-bench-oneshot or crun-oneshot.py (warmup lines are ignored). Cases and their titles come from --case (sbx and
the three crun variants of RUNTIMES) and --userns-case (sbx in a user namespace of its own, crun as it comes and crun
with the same uidMappings: USERNS_RUNTIMES).

Usage: report.py --data DIR --out FILE --case KEY=TITLE... [--userns-case KEY=TITLE --userns-first ID]
                 [--note TEXT]... [--runs N --warmup N --rounds N]

RESULTS.md holds one section per part of the benchmark (this runtime one, daemon-report.py's and image-report.py's),
each between "<!-- NAME: begin -->" and "<!-- NAME: end -->" lines; a report replaces only its own section
(update_section).
"""
import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys

RESULTS_TITLE = "# sbx vs crun: benchmark results"
RESULTS_INTRO = ("Written by `bench/run` (see `bench/README.md` for the methods and how the two sides are kept "
                 "equivalent). Each section is rewritten only when its part of the benchmark runs again, so the "
                 "sections may date from different runs: each says when it was measured.")
SECTION_ORDER = ["runtime", "daemon", "image"]

RUNTIMES = [
    ("sbx", "sbx"),
    ("crun", "crun"),
    ("crun-bpf", "crun + precompiled seccomp"),
    ("crun-bpf-5", "crun + precompiled seccomp + sbx's 5 hierarchies"),
]

# A user-namespace case: "<case>.sbx.txt" is sbx-bench-oneshot --userns, "<case>.crun-userns.txt" crun given the same
# linux.uidMappings/gidMappings, "<case>.crun.txt" stock crun (the headline's denominator, no user namespace).
USERNS_RUNTIMES = [
    ("sbx", "sbx, user namespace"),
    ("crun", "crun (no user namespace)"),
    ("crun-userns", "crun + the same uidMappings/gidMappings"),
]
USERNS_TARGET = 0.30  # the target: sbx in a user namespace <= 0.30x stock crun


def read_times(path):
    if not os.path.exists(path):
        return []
    times = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("run "):
                times.append(float(line.split(":")[1].split()[0]))
    return times


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def fmt_ms(v):
    return "n/a" if v is None else f"{v:.2f}"


def first_line(cmd, fallback="unknown"):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    except OSError:
        return fallback
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else fallback


def cgroup_mode():
    fstypes = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            fstypes[fields[4]] = fields[fields.index("-") + 1]
    root = fstypes.get("/sys/fs/cgroup")
    if root == "cgroup2":
        return "unified (cgroup v2 only)"
    if fstypes.get("/sys/fs/cgroup/unified") == "cgroup2":
        return "hybrid (v1 controllers, cgroup2 without controllers at /sys/fs/cgroup/unified)"
    return "legacy (cgroup v1 only)"


def machine():
    with open("/proc/meminfo", encoding="utf-8") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    try:
        with open("/etc/debian_version", encoding="utf-8") as f:
            debian = f.read().strip()
    except OSError:
        debian = "unknown"
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        ("CPUs (nproc)", str(os.cpu_count())),
        ("CPU model", cpu),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("Debian", debian),
        ("cgroup mode", cgroup_mode()),
        ("load average (1, 5, 15 min) at the end", " ".join(load_average())),
        ("crun", first_line(["crun", "--version"])),
        ("sbx", revision()),
    ]


def revision():
    """$SBX_BENCH_REVISION when set (e.g. where git must not touch the work tree's index), else `git describe`."""
    given = os.environ.get("SBX_BENCH_REVISION", "")
    if given:
        return given
    return first_line(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "describe", "--always", "--dirty"],
                      "working tree (no commit yet)")


def load_average():
    with open("/proc/loadavg", encoding="utf-8") as f:
        return f.read().split()[:3]


def summarise(data_dir, cases, runtimes=RUNTIMES):
    rows = []
    for key, title in cases:
        stats = {}
        for runtime, _ in runtimes:
            times = read_times(os.path.join(data_dir, f"{key}.{runtime}.txt"))
            if times:
                stats[runtime] = {"n": len(times), "median": statistics.median(times), "min": min(times),
                                  "p90": percentile(times, 90)}
        rows.append((key, title, stats))
    return rows


def ratio(stats, a, b):
    if a in stats and b in stats:
        return stats[a]["median"] / stats[b]["median"]
    return None


def summary_line(title, stats):
    sbx = stats.get("sbx", {}).get("median")
    crun = stats.get("crun", {}).get("median")
    r = ratio(stats, "sbx", "crun")
    return f"one-shot {title}: sbx {fmt_ms(sbx)} ms, crun {fmt_ms(crun)} ms, ratio {'n/a' if r is None else f'{r:.2f}'}"


def userns_summary_line(title, stats):
    """The user-namespace case: sbx against stock crun (the target) and against crun with the same mappings."""
    sbx = stats.get("sbx", {}).get("median")
    crun = stats.get("crun", {}).get("median")
    crun_userns = stats.get("crun-userns", {}).get("median")
    r = ratio(stats, "sbx", "crun")
    r_userns = ratio(stats, "sbx", "crun-userns")
    verdict = "" if r is None else f" (target <= {USERNS_TARGET:.2f} {'met' if r <= USERNS_TARGET else 'MISSED'})"
    return (f"one-shot {title}: sbx {fmt_ms(sbx)} ms, crun {fmt_ms(crun)} ms, ratio {fmt_ratio(r)}{verdict}; "
            f"crun with the same uidMappings {fmt_ms(crun_userns)} ms, ratio {fmt_ratio(r_userns)}")


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}"


def table(rows, userns_rows=()):
    out = ["| case | runtime | runs | median ms | min ms | p90 ms | median / crun's |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    out += table_rows(rows, RUNTIMES) + table_rows(userns_rows, USERNS_RUNTIMES)
    return out


def table_rows(rows, runtimes):
    out = []
    for _, title, stats in rows:
        for runtime, label in runtimes:
            if runtime not in stats:
                continue
            s = stats[runtime]
            r = ratio(stats, runtime, "crun")
            out.append(f"| {title} | {label} | {s['n']} | {s['median']:.2f} | {s['min']:.2f} | {s['p90']:.2f} | "
                       f"{'n/a' if r is None else f'{r:.2f}'} |")
    return out


def userns_ratio_table(rows):
    """sbx in a user namespace over stock crun (the target) and over crun with the same mappings, per case."""
    out = ["| case | sbx, user namespace / crun | sbx, user namespace / crun + the same uidMappings | target | met? |",
           "| --- | ---: | ---: | ---: | --- |"]
    for _, title, stats in rows:
        r = ratio(stats, "sbx", "crun")
        met = "n/a" if r is None else ("yes" if r <= USERNS_TARGET else "**no**")
        out.append(f"| {title} | {fmt_ratio(r)} | {fmt_ratio(ratio(stats, 'sbx', 'crun-userns'))} | "
                   f"<= {USERNS_TARGET:.2f} | {met} |")
    return out


def ratio_table(rows):
    """sbx's median over each crun variant's, per case."""
    variants = RUNTIMES[1:]
    out = ["| case | " + " | ".join(f"sbx / {label}" for _, label in variants) + " |",
           "| --- |" + " ---: |" * len(variants)]
    for _, title, stats in rows:
        cells = []
        for runtime, _ in variants:
            r = ratio(stats, "sbx", runtime)
            cells.append("n/a" if r is None else f"{r:.2f}")
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    return out


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine_table():
    return ["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in machine()]


def read_sections(path):
    """{name: [lines]} of the marked sections in an existing RESULTS.md (none when absent or unmarked)."""
    sections = {}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return sections
    for m in re.finditer(r"^<!-- (\w+): begin -->\n(.*?)^<!-- \1: end -->$", text, re.S | re.M):
        sections[m.group(1)] = m.group(2).rstrip("\n").split("\n")
    return sections


def update_section(path, name, lines):
    """Writes RESULTS.md with section `name` replaced by `lines`, keeping the other sections as they are: the parts'
    sections first (SECTION_ORDER), then the others in the order the file has them (a new one last)."""
    sections = read_sections(path)
    sections[name] = lines
    out = [RESULTS_TITLE, "", RESULTS_INTRO]
    for key in SECTION_ORDER + [k for k in sections if k not in SECTION_ORDER]:
        if key in sections:
            out += ["", f"<!-- {key}: begin -->"] + sections[key] + [f"<!-- {key}: end -->"]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    os.replace(path + ".tmp", path)


def summary_lines(rows, userns_rows):
    return ([summary_line(title, stats) for _, title, stats in rows] +
            [userns_summary_line(title, stats) for _, title, stats in userns_rows])


def write_results(path, rows, userns_rows, args):
    lines = ["## Runtime library: one-shot sandbox latency (`sbx-bench-oneshot` vs `crun run`)", "",
             f"Measured {utc_now()} by `bench/run`.", "", "### Machine", ""]
    lines += machine_table()
    lines += ["", "### Results", "", "```"] + summary_lines(rows, userns_rows) + ["```", ""]
    lines += table(rows, userns_rows)
    lines += ["", "sbx's median as a fraction of each crun variant's:", ""] + ratio_table(rows)
    if userns_rows:
        lines += ["", "In a user namespace, sbx's median as a fraction of stock crun's (the target) and of crun's "
                  "with the same mappings:", ""] + userns_ratio_table(userns_rows)
    lines += ["", "### Method", "",
              f"- Each case runs {args.rounds} rounds; each round runs sbx, then the three crun variants, "
              f"each with {args.warmup} untimed warm-up runs and then "
              f"{args.runs // max(args.rounds, 1)} timed runs, so the sides alternate and drift hits all alike. "
              f"{args.runs} timed runs per case and runtime in all.",
              "- One run, sbx: `create(plan)` -> `sandbox.wait()` -> `destroy(id)` through the runtime library "
              "(`sbx-bench-oneshot`).",
              "- One run, crun: mkdir a fresh upper/work, mount the overlay, `crun run` (create, start, wait, "
              "delete), unmount, remove upper/work (`bench/crun-oneshot.py`).",
              "- ratio = sbx median / crun median (the target is <= 0.50), crun as it comes: `linux.seccomp` in "
              "config.json, compiled by crun on every run, and a cgroup in every v1 hierarchy.",
              "- crun + precompiled seccomp: crun gets the very BPF program sbx compiles from the same profile "
              "(`sbx-bench-oneshot --dump-seccomp-bpf`) through its `run.oci.seccomp_bpf_data` annotation, so it "
              "skips compiling, as sbx does after its first sandbox.",
              "- ... + sbx's 5 hierarchies: crun is shown only the memory, cpu, cpuacct, pids and freezer "
              "hierarchies, the ones sbx's v1 back end uses.",
              "- Equivalent isolation on both sides (namespaces, limits, seccomp profile, no capabilities, "
              "no_new_privs, mounts, masked paths, fresh overlay upper); what still differs is listed in "
              "`bench/README.md`."]
    if userns_rows:
        first = args.userns_first
        lines.append(
            f"- User namespace ({', '.join(title for _, title, _ in userns_rows)}): its rounds run sbx with every "
            f"sandbox in a user namespace of its own (`sbx-bench-oneshot --userns {first}`: ids 0..65535 inside are "
            f"host ids {first}..{first + 65535}, the layers idmapped), then stock crun (no user namespace, measured "
            "again in these rounds), then crun with a `user` namespace and the same `linux.uidMappings`/"
            "`gidMappings` (`crun-config.py --userns`; crun neither idmaps nor chowns the root, whose files show as "
            f"the overflow uid inside). The target is sbx <= {USERNS_TARGET:.2f}x stock crun.")
    for note in args.note:
        lines.append(f"- {note}")
    update_section(path, "runtime", lines)


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--case", action="append", default=[], help="KEY=TITLE")
    p.add_argument("--userns-case", action="append", default=[], help="KEY=TITLE of a user-namespace case")
    p.add_argument("--userns-first", type=int, default=0, help="the host id that is root in the user namespace")
    p.add_argument("--note", action="append", default=[])
    p.add_argument("--runs", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    cases = [tuple(c.split("=", 1)) for c in args.case]
    rows = summarise(args.data, cases)
    userns_rows = summarise(args.data, [tuple(c.split("=", 1)) for c in args.userns_case], USERNS_RUNTIMES)
    for line in summary_lines(rows, userns_rows):
        print(line)
    write_results(args.out, rows, userns_rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
