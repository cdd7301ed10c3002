#!/usr/bin/env python3
"""sbx-image end to end, run as root the way sbxd runs it: a store and an empty work directory per case, the real
program, JSON lines on stdout.

    sbx_image_test.py SBX_IMAGE BUSYBOX_ROOTFS

Formats: an OCI archive made by podman, docker-save archives (legacy and blobs layouts, tests/image/
make_docker_save.py) whose layers delete a file and make a directory opaque (checked on disk and through a real
overlay mount in a private mount namespace), rootfs tarballs (gzip, zstd, xz, bzip2: one diff_id), a directory
(symlinks not followed, mount points not crossed), reuse of layers already in the store.
Refusals, each leaving the store as it was and the work directory empty: path traversal, absolute paths, symlink
and hardlink escapes, a million entries, oversized content, truncated archives, digest and diff_id mismatches,
foreign layers, unresolvable users, several images without --ref, bad options. Device nodes are dropped, not
refused. Ends with "N passed, N failed" like the other suites.
"""
import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zlib

SBX_IMAGE, ROOTFS = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_docker_save  # noqa: E402

TMP = None  # made by main()
PHASES = {"read", "verify", "unpack", "commit"}
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x",
             "riscv64": "riscv64"}.get(os.uname().machine, os.uname().machine)
passed = 0
failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what} {detail}", flush=True)
    return cond


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        self.events = []
        for line in proc.stdout.splitlines():
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.events.append({"event": "unparsable", "line": line})
        self.last = self.events[-1] if self.events else {}


class Case:
    """A directory of its own with store/ and work/, removed when the case ends."""

    def __init__(self, name, base=None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=base or TMP)
        self.store = os.path.join(self.dir, "store")
        self.work = os.path.join(self.dir, "work")
        os.mkdir(self.store)
        os.mkdir(self.work)

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def run(self, source, *extra, prefix=()):
        cmd = [*prefix, SBX_IMAGE, "import", "--source", source, "--store", self.store, "--work", self.work, *extra]
        return Run(subprocess.run(cmd, capture_output=True, text=True, timeout=600))

    def layer(self, hex_):
        return os.path.join(self.store, hex_)

    def done(self, run, what):
        """Checks a successful import and returns its done event ({} on failure)."""
        ok = check(run.rc == 0 and run.last.get("event") == "done", f"{self.name}: {what} succeeds",
                   f"rc={run.rc} last={run.last} stderr={run.stderr.strip()}")
        check("Sanitizer" not in run.stderr and "runtime error" not in run.stderr, f"{self.name}: {what}: no sanitizer "
              "report", run.stderr)
        check(os.listdir(self.work) == [], f"{self.name}: {what} leaves the work directory empty",
              str(os.listdir(self.work)))
        progress = run.events[:-1]
        check(all(e.get("event") == "progress" and e.get("phase") in PHASES and
                  {"layer", "layers", "bytes", "total"} <= e.keys() for e in progress),
              f"{self.name}: {what} reports only well-formed progress before done", str(progress[:3]))
        for layer in run.last.get("layers", []):
            check(os.path.isdir(self.layer(layer["diff_id"][7:])), f"{self.name}: {what} layer in the store",
                  layer["diff_id"])
        return run.last if ok else {}

    def refused(self, run, what, needle, store_before=None):
        """Checks a refused import: clear message, store unchanged, work directory empty."""
        message = run.last.get("message", "")
        check(run.rc == 1 and run.last.get("event") == "error", f"{self.name}: {what} is refused",
              f"rc={run.rc} last={run.last}")
        check(needle in message, f"{self.name}: {what}: message names the cause ({needle!r})", repr(message))
        check(message and message in run.stderr, f"{self.name}: {what}: message on stderr too", repr(run.stderr))
        check("Sanitizer" not in run.stderr and "runtime error" not in run.stderr, f"{self.name}: {what}: no sanitizer "
              "report", run.stderr)
        check(sorted(os.listdir(self.store)) == sorted(store_before or []),
              f"{self.name}: {what}: store unchanged", str(os.listdir(self.store)))
        check(os.listdir(self.work) == [], f"{self.name}: {what}: work directory emptied", str(os.listdir(self.work)))
        return message

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- archive builders ----

def tar_entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644, major=0, minor=0, uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = 1700000000
    ti.linkname = link
    ti.devmajor, ti.devminor = major, minor
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            tar.addfile(*tar_entry(*e))
    return buf.getvalue()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def small_rootfs_tar():
    d, r, s, h = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
    return make_tar([
        ("./", d, b"", "", 0o755),
        ("./etc", d, b"", "", 0o755),
        ("./etc/hostname", r, b"box\n"),
        ("./etc/passwd", r, b"root:x:0:0::/root:/bin/sh\n"),
        ("./usr/bin/tool", r, b"#!/bin/sh\necho hi\n", "", 0o4755, 0, 0, 1000, 1000),
        ("./usr/bin/tool2", h, b"", "./usr/bin/tool"),
        ("./bin", s, b"", "usr/bin"),
        ("./tmp", d, b"", "", 0o1777),
        ("./run/fifo", tarfile.FIFOTYPE, b"", "", 0o600),
    ])


def many_entries_tar_gz(path, count):
    """`count` empty files as a gzip'd ustar archive, written header by header (tarfile would take minutes)."""
    tmpl = tarfile.TarInfo("f0000000")
    tmpl.mtime = 1700000000
    tmpl = bytearray(tmpl.tobuf(format=tarfile.USTAR_FORMAT))
    tmpl[148:156] = b" " * 8
    base = sum(tmpl) - sum(b"0000000")
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        chunk = []
        for i in range(count):
            digits = b"%07d" % i
            chunk.append(bytes(tmpl[:1]) + digits + bytes(tmpl[8:148]) + b"%06o\0 " % (base + sum(digits)) +
                         bytes(tmpl[156:]))
            if len(chunk) == 20000:
                out.write(comp.compress(b"".join(chunk)))
                chunk = []
        out.write(comp.compress(b"".join(chunk) + b"\0" * 1024))
        out.write(comp.flush())
    return path


def oci_rewrite(src, dst, edit_index=None, edit_manifest=None, edit_config=None, edit_layer=None, fix_digests=True,
                edit_manifest_bytes=None, nest=False):
    """Copies an OCI archive, editing its documents; the digests of edited documents are updated when
    fix_digests, so only what a case means to break is broken."""
    with tarfile.open(src) as t:
        files = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}

    def blob(desc):
        return "blobs/sha256/" + desc["digest"][7:]

    def store(desc, data, old_name):
        if fix_digests:
            del files[old_name]
            desc["digest"] = "sha256:" + hashlib.sha256(data).hexdigest()
            desc["size"] = len(data)
        files[blob(desc)] = data

    index = json.loads(files["index.json"])
    mdesc = index["manifests"][0]
    manifest = json.loads(files[blob(mdesc)])
    old_manifest = blob(mdesc)
    if edit_config:
        cdesc = manifest["config"]
        config = json.loads(files[blob(cdesc)])
        edit_config(config)
        store(cdesc, json.dumps(config).encode(), blob(cdesc))
    if edit_layer:
        ldesc = manifest["layers"][0]
        files[blob(ldesc)] = edit_layer(files[blob(ldesc)])
    if edit_manifest:
        edit_manifest(manifest)
    if edit_config or edit_manifest:
        store(mdesc, json.dumps(manifest).encode(), old_manifest)
    if edit_manifest_bytes:
        files[blob(mdesc)] = edit_manifest_bytes(files[blob(mdesc)])
    if nest:  # the manifest behind a nested index, next to one for another platform that is never read
        ref = mdesc.pop("annotations")
        other = dict(mdesc, digest="sha256:" + "1" * 64, platform={"os": "linux", "architecture": "riscv64"})
        mine = dict(mdesc, platform={"os": "linux", "architecture": HOST_ARCH})
        nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                             "manifests": [other, mine]}).encode()
        ndesc = {"mediaType": "application/vnd.oci.image.index.v1+json", "annotations": ref}
        ndesc["digest"] = "sha256:" + hashlib.sha256(nested).hexdigest()
        ndesc["size"] = len(nested)
        files[blob(ndesc)] = nested
        index["manifests"][0] = ndesc
    if edit_index:
        edit_index(index)
    files["index.json"] = json.dumps(index).encode()
    with tarfile.open(dst, "w") as t:
        for name, data in sorted(files.items()):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return dst


def stat_of(path):
    st = os.lstat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


# ---- podman ----

def podman_oci_archive(case):
    """localhost/x:1 from the busybox rootfs (ENV, WORKDIR, USER nobody), saved as an OCI archive by podman."""
    root = tempfile.mkdtemp(prefix="sbxp-", dir="/tmp")  # podman wants a runroot under 50 characters
    podman = ["podman", "--root", root + "/root", "--runroot", root + "/run", "--storage-driver", "vfs"]
    rootfs_tar = case.path("busybox.tar")
    with tarfile.open(rootfs_tar, "w") as t:
        t.add(ROOTFS, arcname=".")
    archive = case.path("oci.tar")
    lock = "/dev/shm/libpod_lock"  # podman's lock segment: removed afterwards if this test made it
    had_lock = os.path.exists(lock)
    try:
        subprocess.run(podman + ["import", "--change", "ENV FOO=bar", "--change", "WORKDIR /srv",
                                 "--change", "USER nobody", rootfs_tar, "localhost/x:1"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(podman + ["save", "--format", "oci-archive", "-o", archive, "localhost/x:1"],
                       check=True, capture_output=True, timeout=120)
    finally:
        subprocess.run(podman + ["rmi", "-a", "-f"], capture_output=True, timeout=120)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if line.split()[4].startswith(root)]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        if not had_lock and os.path.exists(lock):
            os.unlink(lock)
    return archive


def test_podman_oci():
    if not check(shutil.which("podman") is not None, "podman is installed (apt-get install podman)"):
        return
    case = Case("oci")
    try:
        archive = podman_oci_archive(case)
        done = case.done(case.run(archive), "podman's OCI archive")
        check(done.get("format") == "oci", "oci: format", str(done.get("format")))
        check(done.get("ref") == "localhost/x:1", "oci: ref from the index annotation", str(done.get("ref")))
        config = done.get("config", {})
        check(config.get("Env") == ["FOO=bar"] and config.get("WorkingDir") == "/srv" and config.get("User") == "nobody",
              "oci: config object", str(config))
        check(done.get("user") == {"uid": 65534, "gid": 65534}, "oci: USER nobody resolved through /etc/passwd",
              str(done.get("user")))
        layers = done.get("layers", [])
        check(len(layers) == 1 and not layers[0]["reused"] and layers[0]["entries"] > 100, "oci: one new layer",
              str(layers))
        if not layers:
            return
        hex_ = layers[0]["diff_id"][7:]
        check(os.path.isfile(os.path.join(case.layer(hex_), "bin/busybox")), "oci: busybox in the layer")
        check(os.path.islink(os.path.join(case.layer(hex_), "bin/sh")), "oci: applet symlinks kept")
        before = stat_of(case.layer(hex_))
        again = case.done(case.run(archive, "--ref", "localhost/x:1"), "the same archive again")
        check([l["reused"] for l in again.get("layers", [])] == [True], "oci: a known layer is reused",
              str(again.get("layers")))
        check(stat_of(case.layer(hex_)) == before, "oci: the reused layer is not rewritten")
        check(again.get("config_digest") == done.get("config_digest"), "oci: same config digest")
        store = os.listdir(case.store)
        case.refused(case.run(archive, "--ref", "nope:1"), "a ref the archive lacks",
                     "no image named 'nope:1' in the archive (it holds: localhost/x:1)", store)
        nested = case.done(case.run(oci_rewrite(archive, case.path("nested.tar"), nest=True)),
                           "the image behind a nested index")
        check(nested.get("ref") == "localhost/x:1" and nested.get("layers", [{}])[0].get("reused") is True,
              "oci: nested index resolved to the host's platform", str(nested)[:300])
        fresh = Case("oci-bad")
        try:
            oci_cases(fresh, archive)
        finally:
            fresh.close()
    finally:
        case.close()


def oci_cases(case, archive):
    """Broken variants of podman's archive, each refused against an empty store."""
    def flip_gzip_mtime(data):  # same size, same content, another digest
        return data[:4] + bytes([data[4] ^ 0xff]) + data[5:]

    def two_images(index):
        other = json.loads(json.dumps(index["manifests"][0]))
        other["annotations"]["org.opencontainers.image.ref.name"] = "localhost/y:2"
        index["manifests"].append(other)

    variants = [
        ("a layer blob that does not match its digest", dict(edit_layer=flip_gzip_mtime),
         "does not match its digest"),
        ("a manifest that does not match its digest", dict(edit_manifest_bytes=lambda b: b.replace(b"vnd.oci", b"vnd.ocj", 1)),
         "manifest blob does not match its digest"),
        ("a foreign layer", dict(edit_manifest=lambda m: m["layers"][0].update(
            mediaType="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")), "foreign (non-distributable)"),
        ("an unknown layer media type", dict(edit_manifest=lambda m: m["layers"][0].update(
            mediaType="application/x-rar")), "unsupported layer media type"),
        ("a user the image does not have", dict(edit_config=lambda c: c["config"].update(User="ghost")),
         "user 'ghost' not found in the image's /etc/passwd"),
        ("a diff_id that is not the layer's", dict(edit_config=lambda c: c["rootfs"].update(
            diff_ids=["sha256:" + "0" * 64])), "diff_id mismatch"),
        ("two images without --ref", dict(edit_index=two_images),
         "the archive holds several images (localhost/x:1, localhost/y:2): choose one with --ref"),
    ]
    for what, edits, needle in variants:
        bad = oci_rewrite(archive, case.path("bad.tar"), **edits)
        case.refused(case.run(bad), what, needle)


# ---- docker-save ----

def overlay_view(case, lower_hexes_top_first, script):
    """Runs `script` (with $M the mount point) on a read-only overlay of the layers, in a private mount namespace."""
    mnt = case.path("mnt")
    os.makedirs(mnt, exist_ok=True)
    lower = ":".join(case.layer(h) for h in lower_hexes_top_first)
    sh = f"set -e; mount --make-rprivate /; mount -t overlay overlay -o lowerdir={lower} {mnt}; M={mnt}; {script}"
    return subprocess.run(["unshare", "-m", "sh", "-c", sh], capture_output=True, text=True, timeout=60)


def test_docker_save():
    case = Case("docker")
    try:
        info = make_docker_save.build(case.path("ds.tar"))
        done = case.done(case.run(case.path("ds.tar")), "a docker-save archive")
        check(done.get("format") == "docker" and done.get("ref") == make_docker_save.TAG, "docker: format and ref",
              f"{done.get('format')} {done.get('ref')}")
        check(done.get("config_digest") == "sha256:" + info["config_hex"], "docker: config digest")
        check([l["diff_id"][7:] for l in done.get("layers", [])] == info["diff_ids"], "docker: layers bottom first")
        check(done.get("user") == {"uid": 2000, "gid": 50}, "docker: User app:staff from the top layer's passwd",
              str(done.get("user")))
        check(done.get("config", {}).get("Cmd") == ["/bin/tool"], "docker: config object")
        check(done.get("dropped", {}).get("xattrs") == 1, "docker: security.selinux dropped", str(done.get("dropped")))
        if not done:
            return
        base, upper, top = (case.layer(h) for h in info["diff_ids"])
        check(os.getxattr(os.path.join(base, "bin/tool"), "user.note") == b"kept", "docker: user.* xattr kept")
        wh = os.lstat(os.path.join(upper, "etc/deleteme"))
        check(stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0, "docker: .wh.deleteme is a 0/0 char device")
        check(not os.path.exists(os.path.join(upper, "etc/.wh.deleteme")), "docker: no .wh. file left")
        check(os.getxattr(os.path.join(upper, "opt/data"), "trusted.overlay.opaque") == b"y",
              "docker: .wh..wh..opq made opt/data opaque")
        check(not os.path.exists(os.path.join(upper, "opt/data/.wh..wh..opq")), "docker: no opaque marker file left")
        view = overlay_view(case, list(reversed(info["diff_ids"])),
                            "test ! -e $M/etc/deleteme; test ! -e $M/opt/data/lower.txt; cat $M/opt/data/upper.txt; "
                            "grep app: $M/etc/passwd; cat $M/etc/group")
        check(view.returncode == 0 and "upper" in view.stdout and "app:x:2000" in view.stdout,
              "docker: the overlay hides the deleted file and the opaque directory's lower contents",
              view.stdout + view.stderr)
        docker_variants(case, info)
    finally:
        case.close()


def docker_variants(case, info):
    store = sorted(os.listdir(case.store))
    blobs = make_docker_save.build(case.path("blobs.tar"), layout="blobs")
    again = case.done(case.run(case.path("blobs.tar")), "the blobs layout of the same image")
    check([l["reused"] for l in again.get("layers", [])] == [True, True, True], "docker: known layers skipped",
          str(again.get("layers")))
    check(blobs["config_hex"] == info["config_hex"], "docker: the same config in both layouts")
    fresh = Case("docker-bad")
    try:
        make_docker_save.build(fresh.path("bad.tar"), bad_diff_id=True)
        fresh.refused(fresh.run(fresh.path("bad.tar")), "a config whose diff_id is not the layer's",
                      "layer 2: diff_id mismatch")
        make_docker_save.build(fresh.path("two.tar"), second_tag="test/other:2")
        fresh.refused(fresh.run(fresh.path("two.tar")), "two images without --ref",
                      "several images (test/docker:1, test/other:2): choose one with --ref")
        picked = fresh.done(fresh.run(fresh.path("two.tar"), "--ref", "test/other:2"), "two images with --ref")
        check(picked.get("ref") == "test/other:2", "docker: --ref picks the image", str(picked.get("ref")))
    finally:
        fresh.close()
    check(sorted(os.listdir(case.store)) == store, "docker: nothing new in the store")


# ---- tarballs and directories ----

def test_tarballs():
    case = Case("tarball")
    try:
        raw = small_rootfs_tar()
        diff = "sha256:" + hashlib.sha256(raw).hexdigest()
        write(case.path("r.tar"), raw)
        subprocess.run(["zstd", "-q", "-f", case.path("r.tar"), "-o", case.path("r.tar.zst")], check=True)
        sources = [("gzip", write(case.path("r.tar.gz"), gzip.compress(raw))),
                   ("zstd", case.path("r.tar.zst")),
                   ("xz", write(case.path("r.tar.xz"), lzma.compress(raw))),
                   ("bzip2", write(case.path("r.tar.bz2"), bz2.compress(raw))),
                   ("uncompressed", case.path("r.tar"))]
        first = None
        for what, src in sources:
            done = case.done(case.run(src), f"a {what} tarball")
            layers = done.get("layers", [{}])
            check(done.get("format") == "tarball" and layers[0].get("diff_id") == diff,
                  f"tarball: {what}: diff_id is the sha256 of the uncompressed tar", str(layers))
            check(layers[0].get("reused") == (first is not None), f"tarball: {what}: reused after the first",
                  str(layers))
            if first is None:
                first = (done, stat_of(case.layer(diff[7:])), stat_of(case.layer(diff[7:]) + "/etc/hostname"))
            else:
                check(done.get("config_digest") == first[0].get("config_digest"), f"tarball: {what}: same config id")
        layer = case.layer(diff[7:])
        check(stat_of(layer) == first[1] and stat_of(layer + "/etc/hostname") == first[2],
              "tarball: the reused layer's directory is not rewritten")
        st = os.lstat(layer + "/usr/bin/tool")
        check(st.st_mode & 0o7777 == 0o4755 and st.st_uid == 1000, "tarball: setuid mode after chown",
              oct(st.st_mode))
        check(st.st_ino == os.lstat(layer + "/usr/bin/tool2").st_ino, "tarball: hardlink kept")
        check(os.readlink(layer + "/bin") == "usr/bin", "tarball: symlink kept as is")
        check(os.lstat(layer + "/tmp").st_mode & 0o7777 == 0o1777, "tarball: sticky directory")
        check(stat.S_ISFIFO(os.lstat(layer + "/run/fifo").st_mode), "tarball: fifo kept")
        check(os.lstat(layer).st_mode & 0o7777 == 0o755, "tarball: ./ sets the layer root's mode")
    finally:
        case.close()


def test_devices_dropped():
    case = Case("devices")
    try:
        src = write(case.path("dev.tar"), make_tar([
            ("dev/null", tarfile.CHRTYPE, b"", "", 0o666, 1, 3),
            ("dev/sda", tarfile.BLKTYPE, b"", "", 0o660, 8, 0),
            ("dev/fifo", tarfile.FIFOTYPE),
            ("etc/ok", tarfile.REGTYPE, b"ok"),
        ]))
        done = case.done(case.run(src), "an archive with device nodes")
        check(done.get("dropped") == {"devices": 2, "xattrs": 0, "other": 0}, "devices: dropped and counted",
              str(done.get("dropped")))
        if done:
            layer = case.layer(done["layers"][0]["diff_id"][7:])
            check(not os.path.lexists(layer + "/dev/null") and not os.path.lexists(layer + "/dev/sda"),
                  "devices: no device node made")
            check(stat.S_ISFIFO(os.lstat(layer + "/dev/fifo").st_mode), "devices: the fifo is kept")
    finally:
        case.close()


def test_directory():
    case = Case("directory")
    try:
        tree = case.path("tree")
        outside = case.path("outside")
        os.makedirs(tree + "/etc")
        os.makedirs(tree + "/mnt")
        os.makedirs(outside)
        write(outside + "/secret", b"host secret")
        write(tree + "/etc/hostname", b"dir\n")
        os.symlink(outside, tree + "/out")
        os.link(tree + "/etc/hostname", tree + "/etc/hostname2")
        # A tmpfs on tree/mnt, mounted only in the namespace sbx-image runs in: it must not be crossed.
        prefix = ["unshare", "-m", "sh", "-c",
                  f'mount --make-rprivate / && mount -t tmpfs tmpfs {tree}/mnt && echo x > {tree}/mnt/hidden && '
                  f'exec "$@"', "sh"]
        done = case.done(case.run(tree, prefix=prefix), "a directory")
        check(done.get("format") == "directory" and done.get("config") == {}, "directory: format")
        if not done:
            return
        hex_ = done["layers"][0]["diff_id"][7:]
        layer = case.layer(hex_)
        with open(layer + "/etc/hostname") as f:
            check(f.read() == "dir\n", "directory: file content")
        check(os.readlink(layer + "/out") == outside and not os.path.exists(layer + "/secret"),
              "directory: symlinks are not followed")
        check(os.path.isdir(layer + "/mnt") and os.listdir(layer + "/mnt") == [],
              "directory: a mount point is not crossed", str(os.listdir(layer + "/mnt")))
        check(os.lstat(layer + "/etc/hostname").st_ino == os.lstat(layer + "/etc/hostname2").st_ino,
              "directory: hardlinks kept")
        plain = case.done(case.run(tree), "the directory without the mount")
        plain_layer = case.layer(plain.get("layers", [{}])[0].get("diff_id", "sha256:")[7:])
        before = stat_of(plain_layer)
        again = case.done(case.run(tree), "the same directory again")
        check(again.get("layers", [{}])[0] == dict(plain.get("layers", [{}])[0], reused=True) and
              stat_of(plain_layer) == before, "directory: same content, same layer, reused", str(again.get("layers")))
        busybox = case.done(case.run(ROOTFS), "the busybox rootfs directory")
        if busybox:
            check(os.path.isfile(case.layer(busybox["layers"][0]["diff_id"][7:]) + "/bin/busybox"),
                  "directory: busybox rootfs imported")
    finally:
        case.close()


# ---- malicious archives ----

def test_escapes():
    case = Case("escape")
    try:
        victim_dir = case.path("victim")
        os.mkdir(victim_dir)
        shadow_links = os.stat("/etc/shadow").st_nlink
        d, r, s, h = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
        cases = [
            ("../ traversal", [("ok", r, b"x"), ("../../victim/trav", r, b"owned")], "'..' component in path"),
            ("an absolute path", [(victim_dir + "/abs", r, b"owned")], "absolute path"),
            ("a symlink to an absolute directory", [("evil", s, b"", victim_dir), ("evil/passwd", r, b"owned")],
             "entry 'evil/passwd': symlink escape: 'evil' is a symlink"),
            ("a symlink up the tree", [("evil", s, b"", "../../.."), ("evil/victim/up", r, b"owned")],
             "symlink escape"),
            ("a symlinked directory replaced under an entry", [("a", d), ("a/b", s, b"", victim_dir),
                                                               ("a/b/c", d)], "symlink escape"),
            ("a hardlink to /etc/shadow", [("shadow", h, b"", "/etc/shadow")], "hardlink escape"),
            ("a hardlink out of the layer", [("x", h, b"", "../x")], "hardlink escape"),
            ("a hardlink through a symlink", [("evil", s, b"", "/etc"), ("x", h, b"", "evil/shadow")],
             "hardlink escape: target 'evil/shadow' goes through a symlink"),
            ("an odd whiteout", [("d/.wh..wh.plnk", r)], "unsupported whiteout"),
        ]
        for what, entries, needle in cases:
            src = write(case.path("evil.tar"), make_tar(entries))
            case.refused(case.run(src), what, needle)
        check(os.listdir(victim_dir) == [], "escape: nothing written to the escape targets", str(os.listdir(victim_dir)))
        check(not os.path.exists(case.path("trav")), "escape: nothing next to the work directory")
        check(os.stat("/etc/shadow").st_nlink == shadow_links, "escape: /etc/shadow gained no link")
        long_name = "a/" * 2100 + "x"
        src = write(case.path("long.tar"), make_tar([(long_name, r, b"x")]))
        case.refused(case.run(src), "a path longer than PATH_MAX", "longer than PATH_MAX")
    finally:
        case.close()


def test_limits():
    # On tmpfs when there is one: the 300000 files made before the limit trips take half a minute on a slow disk.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.statvfs("/dev/shm").f_bavail > 0 else None
    case = Case("sbx-image-limits", base=shm)
    try:
        start = time.monotonic()
        bomb = many_entries_tar_gz(case.path("many.tar.gz"), 1000000)
        case.refused(case.run(bomb), "a million entries", "more than 300000 entries (max_entries)")
        check(time.monotonic() - start < 60, "limits: the million-entry archive is refused quickly",
              f"{time.monotonic() - start:.1f}s")
        small = write(case.path("small.tar"), small_rootfs_tar())
        case.refused(case.run(small, "--max-entries", "3"), "more entries than --max-entries",
                     "more than 3 entries (max_entries)")
        case.refused(case.run(small, "--max-bytes", "10"), "more content than --max-bytes",
                     "more than 10 bytes of content (max_bytes)")
        case.refused(case.run(small, "--max-archive-bytes", "1000"), "a bigger source than --max-archive-bytes",
                     "max_archive_bytes")
        # A header announcing 1 GiB is refused before any of it is read.
        ti = tarfile.TarInfo("huge")
        ti.size = 1 << 30
        huge = write(case.path("huge.tar.gz"), gzip.compress(ti.tobuf(format=tarfile.USTAR_FORMAT) + b"x" * 4096))
        case.refused(case.run(huge, "--max-bytes", str(100 << 20)), "a file bigger than --max-bytes",
                     "entry 'huge': more than 104857600 bytes of content (max_bytes)")
    finally:
        case.close()


def test_truncated():
    case = Case("truncated")
    try:
        raw = small_rootfs_tar() + make_tar([("big", tarfile.REGTYPE, os.urandom(200000))])
        gz = gzip.compress(raw)
        for what, data in [("a gzip cut in half", gz[:len(gz) // 2]), ("a gzip without its trailer", gz[:-8]),
                           ("a tar cut in a file", raw[:len(raw) // 2]),
                           ("a tar cut at an entry without its end", raw[:2048]),
                           ("garbage", b"not an archive at all" * 100), ("an empty file", b"")]:
            src = write(case.path("cut"), data)
            msg = case.refused(case.run(src), what, "archive '")
            print(f"  {what}: {msg}", flush=True)
    finally:
        case.close()


def test_usage():
    case = Case("usage")
    try:
        p = subprocess.run([SBX_IMAGE, "--help"], capture_output=True, text=True)
        check(p.returncode == 0 and "--max-archive-bytes" in p.stdout, "usage: --help")
        for args, needle in [(["import", "--bogus", "x"], "unknown option '--bogus'"),
                             (["export"], "unknown command 'export'"),
                             (["import", "--source", "/nonexistent", "--store", case.store], "missing --work"),
                             (["import", "--source", case.path("none"), "--store", case.store, "--work", case.work],
                              "stat source"),
                             (["import", "--source", "/dev/null", "--store", case.store, "--work", case.work],
                              "neither a regular file nor a directory"),
                             (["import", "--source", "/", "--store", case.store, "--work", case.work,
                               "--max-entries", "x"], "not a positive integer")]:
            p = subprocess.run([SBX_IMAGE, *args], capture_output=True, text=True)
            last = json.loads(p.stdout.splitlines()[-1]) if p.stdout else {}
            check(p.returncode == 1 and last.get("event") == "error" and needle in last.get("message", ""),
                  f"usage: {args} refused", f"{p.returncode} {p.stdout}")
        write(case.path("work/leftover"), b"x")
        p = subprocess.run([SBX_IMAGE, "import", "--source", "/", "--store", case.store, "--work", case.work],
                           capture_output=True, text=True)
        check(p.returncode == 1 and "is not empty" in p.stdout, "usage: a work directory in use is refused")
    finally:
        case.close()


def main():
    if os.geteuid() != 0:
        print("sbx_image_test: must run as root")
        return 1
    global TMP
    TMP = tempfile.mkdtemp(prefix="sbx-image-test-")
    tests = [test_usage, test_tarballs, test_devices_dropped, test_directory, test_docker_save, test_podman_oci,
             test_escapes, test_truncated, test_limits]
    global failed
    try:
        for t in tests:
            start = time.monotonic()
            try:
                t()
            except Exception:  # noqa: BLE001 - a crashed test is a failed test
                failed += 1
                print(f"FAIL: {t.__name__} raised:\n{traceback.format_exc()}", flush=True)
            print(f"{t.__name__}: {time.monotonic() - start:.1f}s", flush=True)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
