#!/usr/bin/env python3
"""Builds a docker-save archive with three layers for the sbx-image tests (python3 stdlib only).

    make_docker_save.py OUT.tar [--layout legacy|blobs] [--bad-diff-id] [--second-tag NAME]

Layer 1 (base): etc/passwd (app = 1000), etc/group (staff = 50), etc/deleteme, opt/data/lower.txt, bin/tool with
                user.note and security.selinux xattrs.
Layer 2:        deletes etc/deleteme (.wh.deleteme), makes opt/data opaque (.wh..wh..opq), adds opt/data/upper.txt.
Layer 3:        replaces etc/passwd (app = 2000), so User "app:staff" resolves to 2000:50 only through the top layer.
--layout blobs writes the newer docker layout (blobs/sha256/<hex>, no oci-layout); --bad-diff-id makes the config's
diff_id of layer 2 wrong; --second-tag adds a second image (same layers) under another tag.
"""
import hashlib
import io
import json
import sys
import tarfile

TAG = "test/docker:1"
MTIME = 1700000000


def _info(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, xattrs=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    return ti, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_tar(entries):
    """A layer tar from [(name, kind, data, mode, xattrs)], as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            ti, f = _info(*e)
            tar.addfile(ti, f)
    return buf.getvalue()


def layers():
    d = tarfile.DIRTYPE
    base = make_tar([
        ("etc", d, b"", 0o755),
        ("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
        ("etc/group", tarfile.REGTYPE, b"root:x:0:\nstaff:x:50:app\n"),
        ("etc/deleteme", tarfile.REGTYPE, b"to be deleted\n"),
        ("opt", d, b"", 0o755),
        ("opt/data", d, b"", 0o755),
        ("opt/data/lower.txt", tarfile.REGTYPE, b"lower\n"),
        ("bin", d, b"", 0o755),
        ("bin/tool", tarfile.REGTYPE, b"#!/bin/sh\n", 0o755, {"user.note": "kept", "security.selinux": "dropped"}),
    ])
    upper = make_tar([
        ("etc", d, b"", 0o755),
        ("etc/.wh.deleteme", tarfile.REGTYPE, b""),
        ("opt", d, b"", 0o755),
        ("opt/data", d, b"", 0o755),
        ("opt/data/.wh..wh..opq", tarfile.REGTYPE, b""),
        ("opt/data/upper.txt", tarfile.REGTYPE, b"upper\n"),
    ])
    top = make_tar([
        ("etc", d, b"", 0o755),
        ("etc/passwd", tarfile.REGTYPE, b"root:x:0:0:root:/root:/bin/sh\napp:x:2000:2000::/home/app:/bin/sh\n"),
    ])
    return [base, upper, top]


def config_for(diff_ids):
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"User": "app:staff", "Env": ["PATH=/bin"], "Cmd": ["/bin/tool"], "WorkingDir": "/opt"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }, sort_keys=True).encode()


def _add(tar, name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = MTIME
    tar.addfile(ti, io.BytesIO(data))


def build(out, layout="legacy", bad_diff_id=False, second_tag=None):
    """Writes the archive to `out` and returns {"diff_ids": [...hex], "config_hex": hex}."""
    blobs = layers()
    diff_ids = [hashlib.sha256(b).hexdigest() for b in blobs]
    listed = ["sha256:" + h for h in diff_ids]
    if bad_diff_id:
        listed[1] = "sha256:" + hashlib.sha256(b"not this layer").hexdigest()
    config = config_for(listed)
    config_hex = hashlib.sha256(config).hexdigest()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        if layout == "blobs":
            paths = ["blobs/sha256/" + h for h in diff_ids]
            config_path = "blobs/sha256/" + config_hex
        else:
            paths = [h + "/layer.tar" for h in diff_ids]
            config_path = config_hex + ".json"
        for path, blob, hex_ in zip(paths, blobs, diff_ids):
            if layout == "legacy":
                _add(tar, hex_ + "/VERSION", b"1.0")
                _add(tar, hex_ + "/json", json.dumps({"id": hex_}).encode())
            _add(tar, path, blob)
        _add(tar, config_path, config)
        manifest = [{"Config": config_path, "RepoTags": [TAG], "Layers": paths}]
        if second_tag:
            manifest.append({"Config": config_path, "RepoTags": [second_tag], "Layers": paths})
        _add(tar, "manifest.json", json.dumps(manifest).encode())
        _add(tar, "repositories", json.dumps({"test/docker": {"1": diff_ids[-1]}}).encode())
    return {"diff_ids": diff_ids, "config_hex": config_hex}


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    args = argv[2:]
    layout = "blobs" if "--layout" in args and args[args.index("--layout") + 1] == "blobs" else "legacy"
    second = args[args.index("--second-tag") + 1] if "--second-tag" in args else None
    print(json.dumps(build(argv[1], layout, "--bad-diff-id" in args, second)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
