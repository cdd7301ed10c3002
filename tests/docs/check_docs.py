#!/usr/bin/env python3
"""Checks that the manual pages say what the code does.

  check_docs.py --source-root DIR --schema SBX_RPC_SCHEMA [--config-defaults SBXD_CONFIG_DEFAULTS]

1. man/sbx-rpc.7 against api::methods(), as printed by api/sbx-rpc-schema: every method has a subsection (.SS
   NAME) under METHODS and the page has no method the table lacks; every parameter has an entry in its method's
   subsection whose tag names its type and says "required" or "optional" as the table does, and no entry documents
   a parameter the table lacks; every notification a method sends is named in its subsection; every error code is
   listed under ERRORS with its name.
2. man/sbxd.toml.5 and etc/sbxd.toml against the keys daemon/config.cc reads (the TableReader calls in each
   read_<table> function): both documents hold every key in the right table, and no key the code does not read.
   With --config-defaults, etc/sbxd.toml must also parse with sbxd's reader and set every key to its default.
3. man/sbxd.8 against daemon/main.cc: every long option is documented under OPTIONS.

Page conventions this relies on (see the pages): a parameter is a .TP entry whose tag line is
`.BR name " (type, required|optional...)"`; a config key is a .TP entry `.BR key " (type, default ...)"` under
`.SH [table]`; an error is a .TP entry `.BR \\-CODE " name"` under `.SH ERRORS`.
Exit status 0 when everything matches, 1 with one line per problem otherwise.
"""
import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path


def roff_text(s):
    """The plain text of a roff fragment: escapes resolved as far as the checks need."""
    s = s.replace("\\-", "-").replace("\\(dq", '"').replace("\\(aq", "'").replace("\\e", "\\")
    s = re.sub(r"\\f[BIRP]", "", s)
    return s.replace("\\&", "").replace("\\%", "")


def macro_args(line):
    """The arguments of a macro line such as `.BR name " (string, required)"`, quotes honoured."""
    rest = line.split(None, 1)[1] if " " in line else ""
    return [a if not a.startswith('"') else a[1:-1] for a in re.findall(r'"[^"]*"|\S+', rest)]


def sections(lines, macro):
    """{title: [lines]} for each `macro` (.SH or .SS) header; a section runs to the next header of its level or above
    (the lines given to an .SS split are those of one .SH section)."""
    out, title = {}, None
    for line in lines:
        if line.startswith(macro + " "):
            title = roff_text(" ".join(macro_args(line)))
            out[title] = []
        elif title is not None:
            out[title].append(line)
    return out


def tp_tags(lines):
    """The tag line of every .TP entry, as (first argument, whole tag text)."""
    tags = []
    for i, line in enumerate(lines[:-1]):
        if line.strip() == ".TP" and lines[i + 1].startswith("."):
            args = [roff_text(a) for a in macro_args(lines[i + 1])]
            if args:
                tags.append((args[0], " ".join(args)))
    return tags


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


def short_type(type_name):
    """'size (bytes, or a string such as "512M")' -> 'size'."""
    return type_name.split(" (")[0]


def multi_param_tags(body):
    """Entries such as `.BR uid ", " gid " (integer, optional)"` document several parameters at once."""
    out = {}
    for i, line in enumerate(body[:-1]):
        if line.strip() != ".TP" or not body[i + 1].startswith(".BR"):
            continue
        args = [roff_text(a) for a in macro_args(body[i + 1])]
        if len(args) < 2:
            continue
        m = re.match(r"^ \((.*)\)$", args[-1])
        if not m or not re.search(r"\b(required|optional)\b", m.group(1)):
            continue
        for name in args[:-1]:
            if name.strip() not in (",", ""):
                out[name.strip().strip(",").strip()] = m.group(1)
    return out


def check_rpc_page(page, schema, problems):
    where = str(page)
    lines = page.read_text().splitlines()
    top = sections(lines, ".SH")
    if "METHODS" not in top:
        problems.add(where, "no METHODS section")
        return
    methods = sections(top["METHODS"], ".SS")
    table = {m["name"]: m for m in schema["methods"]}
    for name in table:
        if name not in methods:
            problems.add(where, f"method '{name}' of api::methods() has no subsection under METHODS")
    for name in methods:
        if name not in table:
            problems.add(where, f"documents method '{name}', which api::methods() does not have")
    for name, spec in table.items():
        if name in methods:
            check_method_entries(name, spec, methods[name], problems, where)
    check_errors(top.get("ERRORS", []), schema["errors"], problems, where)


def check_method_entries(name, spec, body, problems, where):
    documented = multi_param_tags(body)
    for p in spec["params"]:
        desc = documented.get(p["name"])
        if desc is None:
            problems.add(where, f"{name}: parameter '{p['name']}' is not documented")
            continue
        want = "required" if p["required"] else "optional"
        if not re.search(rf"\b{want}\b", desc):
            problems.add(where, f"{name}: parameter '{p['name']}' is {want} in api::methods(), the page says ({desc})")
        if not desc.startswith(short_type(p["type"]) + ","):
            problems.add(where, f"{name}: parameter '{p['name']}' is of type '{short_type(p['type'])}' in "
                         f"api::methods(), the page says ({desc})")
    for pname in sorted(set(documented) - {p["name"] for p in spec["params"]}):
        problems.add(where, f"{name}: documents parameter '{pname}', which api::methods() does not have")
    note = spec["notifications"].split(" ")[0] if spec["notifications"] else ""
    if note and not re.search(rf"^\.B {re.escape(note)}$", "\n".join(body), re.M):
        problems.add(where, f"{name}: does not name its notification '{note}' (as `.B {note}`)")


def check_errors(body, errors, problems, where):
    documented = {}
    for first, tag in tp_tags(body):
        m = re.match(r"^(-\d+) (\w+)$", tag.replace("  ", " "))
        if m:
            documented[int(m.group(1))] = m.group(2)
    for e in errors:
        if e["code"] not in documented:
            problems.add(where, f"error code {e['code']} ({e['name']}) is not listed under ERRORS")
        elif documented[e["code"]] != e["name"]:
            problems.add(where, f"error code {e['code']} is named '{documented[e['code']]}', the code says "
                         f"'{e['name']}'")
    for code in sorted(set(documented) - {e["code"] for e in errors}):
        problems.add(where, f"lists error code {code}, which the code does not have")


def config_keys(config_cc):
    """{table: [keys]} from daemon/config.cc: which read_<fn> serves which table, and the keys each one reads."""
    text = config_cc.read_text()
    tables = dict((fn, table) for table, fn in re.findall(r'\{"(\w+)",\s*(read_\w+)\}', text))
    keys = {}
    for fn, body in re.findall(r"^Result<void> (read_\w+)\(TableReader& t, DaemonConfig\* c\) \{\n(.*?)^\}",
                               text, re.S | re.M):
        if fn in tables:
            keys[tables[fn]] = re.findall(r'\bt\.\w+\("(\w+)"', body)
    return keys


def check_config_docs(root, problems):
    keys = config_keys(root / "daemon/config.cc")
    if len(keys) < 4 or sum(len(v) for v in keys.values()) < 20 or not all(keys.values()):
        problems.add("daemon/config.cc", f"found too few tables or keys ({keys}): has the reader changed shape? "
                     "Update config_keys() in tests/docs/check_docs.py")
        return
    page = root / "man/sbxd.toml.5"
    top = sections(page.read_text().splitlines(), ".SH")
    sample = tomllib.loads((root / "etc/sbxd.toml").read_text())
    for table in sorted(set(keys) | {t[1:-1] for t in top if re.fullmatch(r"\[\w+\]", t)} | set(sample)):
        code = set(keys.get(table, []))
        in_page = {first for first, _ in tp_tags(top.get(f"[{table}]", []))}
        in_sample = set(sample.get(table, {}))
        for key in sorted(code - in_page):
            problems.add(str(page), f"[{table}] {key} is read by daemon/config.cc but not documented")
        for key in sorted(in_page - code):
            problems.add(str(page), f"documents [{table}] {key}, which daemon/config.cc does not read")
        for key in sorted(code - in_sample):
            problems.add("etc/sbxd.toml", f"[{table}] {key} is read by daemon/config.cc but missing")
        for key in sorted(in_sample - code):
            problems.add("etc/sbxd.toml", f"sets [{table}] {key}, which daemon/config.cc does not read")


def check_daemon_flags(root, problems):
    flags = re.findall(r'\{"([\w-]+)", (?:required|no)_argument', (root / "daemon/main.cc").read_text())
    page = root / "man/sbxd.8"
    options = roff_text("\n".join(sections(page.read_text().splitlines(), ".SH").get("OPTIONS", [])))
    if len(flags) < 5:
        problems.add("daemon/main.cc", f"found too few long options ({flags}); update check_daemon_flags()")
    for flag in flags:
        if not re.search(rf"--{re.escape(flag)}\b", options):
            problems.add(str(page), f"option --{flag} of daemon/main.cc is not documented under OPTIONS")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source-root", required=True, type=Path)
    ap.add_argument("--schema", required=True, help="the sbx-rpc-schema program")
    ap.add_argument("--config-defaults", help="the sbxd-config-defaults program")
    args = ap.parse_args()
    root = args.source_root.resolve()
    problems = Problems()
    schema = json.loads(subprocess.run([args.schema], check=True, capture_output=True, text=True).stdout)
    check_rpc_page(root / "man/sbx-rpc.7", schema, problems)
    check_config_docs(root, problems)
    check_daemon_flags(root, problems)
    if args.config_defaults:
        r = subprocess.run([args.config_defaults, str(root / "etc/sbxd.toml")], capture_output=True, text=True)
        if r.returncode != 0:
            problems.add("etc/sbxd.toml", "does not parse to the defaults of daemon/config.h:\n" + r.stderr.strip())
    for p in problems.items:
        print(p)
    params = sum(len(m["params"]) for m in schema["methods"])
    keys = sum(len(v) for v in config_keys(root / "daemon/config.cc").values())
    print(f"check_docs: {len(problems.items)} problem(s); checked {len(schema['methods'])} methods, {params} "
          f"parameters, {len(schema['errors'])} error codes, {keys} config keys, sbxd's options")
    return 1 if problems.items else 0


if __name__ == "__main__":
    sys.exit(main())
