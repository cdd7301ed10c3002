#!/bin/sh
# Images through a private sbxd, end to end with real content:
#   - the Debian python and node images built by sbx-build-image (from the machine's apt sources, through a cache
#     kept in $SBX_TEST_IMAGE_CACHE, default /var/cache/sbx-test/images) run python3 -c, venv, pip and node -e;
#   - an OCI archive made by podman and a docker-save archive with whiteouts and an opaque directory import, and
#     their config (Env, WorkingDir, User, Cmd) is honoured by the sandboxes made from them;
#   - environments resolve by name and version;
#   - a malicious archive sent through the socket is refused and leaves nothing in the store.
#   images_e2e_test.sh SBXCTL SBXD SBX_MONITOR BUSYBOX_ROOTFS SECCOMP_DIR SBX_IMAGE SBX_BUILD_IMAGE
# Run as root.
set -u
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
here=$(cd "$(dirname "$0")" && pwd)
ctl=$(abs "$1")
sbxd=$2
monitor=$3
rootfs=$(abs "$4")
seccomp_dir=$5
daemon_toml="[daemon]
image_tool = \"$(abs "$6")\""
builder=$(abs "$7")
cache=${SBX_TEST_IMAGE_CACHE:-/var/cache/sbx-test/images}
. "$here/../cli/lib.sh"
test_setup images
start_daemon
mkdir -p "$cache"

store_listing() { ls "$tmp/state/layers" | sort | tr '\n' ' '; }
wait_exited() {  # wait_exited SANDBOX
  i=0
  while [ "$(ctl inspect "$1" | jget 'j["state"]')" != exited ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

# --- the Debian images -------------------------------------------------------------------------------------------
for def in python node; do
  SBX_BUILD_IMAGE=$builder ctl image build "$def" --cache "$cache" -q >"$tmp/build.out" 2>&1; rc=$?
  check "image build $def: exit 0" 0 "$rc"
  [ "$rc" -eq 0 ] || cat "$tmp/build.out"
done
check "python3 -c runs in the python image" 42 "$(ctl run --image python -- python3 -c 'print(6*7)')"
check "a venv works in the python image" /tmp/v \
  "$(ctl run --image python -- sh -c 'python3 -m venv /tmp/v && /tmp/v/bin/python -c "import sys; print(sys.prefix)"')"
contains "pip is there" "pip " "$(ctl run --image python -- python3 -m pip --version)"
check "node -e runs in the node image" 42 "$(ctl run --image node -- node -e 'console.log(6*7)')"
contains "npm is there" . "$(ctl run --image node -- npm --version)"
check "the python image is one layer" 1 "$(ctl image inspect python | jget 'len(j["layers"])')"

# --- environments --------------------------------------------------------------------------------------------------
ctl env create py --image python --memory 128M -e GREETING=v1 >/dev/null; rc=$?
check "env create: exit 0" 0 "$rc"
ctl env update py --memory 256M -e GREETING=v2 >/dev/null
ctl create --name e1 -E py@1 >/dev/null
ctl create --name e2 -E py >/dev/null
ctl create --name e3 -E py@1 --memory 64M >/dev/null
check "py@1 gives version 1's memory limit" 134217728 "$(ctl inspect e1 | jget 'j["limits"]["memory"]')"
check "py is the latest version" 268435456 "$(ctl inspect e2 | jget 'j["limits"]["memory"]')"
check "an explicit limit overrides the environment's" 67108864 "$(ctl inspect e3 | jget 'j["limits"]["memory"]')"
check "the sandbox records its environment version" "py@1 py@2" \
  "$(ctl inspect e1 | jget 'j["environment"]') $(ctl inspect e2 | jget 'j["environment"]')"
check "an environment's env reaches execs" v1 "$(ctl exec e1 python3 -c 'import os; print(os.environ["GREETING"])')"
check "and the next version's" v2 "$(ctl exec e2 sh -c 'echo $GREETING')"
err=$(ctl image rm python 2>&1); rc=$?
check "an image in use cannot be removed" 125 "$rc"
contains "the refusal names a sandbox" "sandbox " "$err"
ctl rm -f e1 e2 e3 >/dev/null
err=$(ctl image rm python 2>&1); rc=$?
check "nor while an environment uses it" 125 "$rc"
contains "the refusal names the environment" "py@1" "$err"
err=$(ctl create -E py@9 2>&1); rc=$?
check "a missing version is refused" 125 "$rc"
contains "and named" "py@9" "$err"
ctl env rm py >/dev/null

# --- an OCI archive made by podman ---------------------------------------------------------------------------------
pod() { podman --root "$tmp/podman/root" --runroot "$tmp/podman/run" --storage-driver vfs "$@"; }
tar -C "$rootfs" -cf "$tmp/busybox.tar" .
pod import --change 'ENV FOO=bar' --change 'WORKDIR /tmp' --change 'USER nobody' \
  --change 'CMD ["/bin/sh", "-c", "echo from-cmd $FOO"]' "$tmp/busybox.tar" localhost/sbx-test:1 >/dev/null 2>&1
pod save --format oci-archive -o "$tmp/oci.tar" localhost/sbx-test:1 >/dev/null 2>&1; rc=$?
check "podman made an OCI archive" 0 "$rc"
pod rmi -a >/dev/null 2>&1
ctl image import "$tmp/oci.tar" --name pod -q >/dev/null; rc=$?
check "import of podman's OCI archive: exit 0" 0 "$rc"
check "its format is oci" oci "$(ctl image inspect pod | jget 'j["format"]')"
check "its user resolved through the image's /etc/passwd" "65534:65534" \
  "$(ctl image inspect pod | jget '"%d:%d" % (j["user"]["uid"], j["user"]["gid"])')"
ctl create --name p1 --image pod >/dev/null
wait_exited p1
check "the image's Cmd runs as the main command, with its Env" "from-cmd bar" "$(ctl logs p1)"
ctl create --name p2 --image pod --entrypoint '' >/dev/null
check "Env, WorkingDir and User reach execs" "bar /tmp 65534" "$(ctl exec p2 sh -c 'echo $FOO $(pwd) $(id -u)')"
ctl rm -f p1 p2 >/dev/null
ctl image import --stream "$tmp/oci.tar" --name pod2 -q >/dev/null; rc=$?
check "the same archive streamed through the socket" 0 "$rc"
check "gives the same image id" "$(ctl image inspect pod | jget 'j["id"]')" "$(ctl image inspect pod2 | jget 'j["id"]')"

# --- a docker-save archive with whiteouts ----------------------------------------------------------------------------
FIXTURES=$here "$py" - "$tmp/busybox.tar" "$tmp/docker.tar" <<'EOF'
import hashlib, json, os, sys, tarfile
sys.path.insert(0, os.environ["FIXTURES"])
import make_docker_save as m
d, f = tarfile.DIRTYPE, tarfile.REGTYPE
base = open(sys.argv[1], "rb").read()
lower = m.make_tar([("etc", d, b"", 0o755), ("etc/deleteme", f, b"x\n"), ("opt", d, b"", 0o755),
                    ("opt/data", d, b"", 0o755), ("opt/data/lower.txt", f, b"lower\n")])
upper = m.make_tar([("etc", d, b"", 0o755), ("etc/.wh.deleteme", f, b""), ("opt", d, b"", 0o755),
                    ("opt/data", d, b"", 0o755), ("opt/data/.wh..wh..opq", f, b""),
                    ("opt/data/upper.txt", f, b"upper\n")])
blobs = [base, lower, upper]
hexes = [hashlib.sha256(b).hexdigest() for b in blobs]
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Env": ["PATH=/bin:/usr/bin", "FOO=docker"], "WorkingDir": "/opt/data",
                                "User": "nobody", "Cmd": ["/bin/sh"]},
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + h for h in hexes]}}).encode()
chex = hashlib.sha256(config).hexdigest()
with tarfile.open(sys.argv[2], "w", format=tarfile.PAX_FORMAT) as tar:
    for h, b in zip(hexes, blobs):
        m._add(tar, h + "/layer.tar", b)
    m._add(tar, chex + ".json", config)
    m._add(tar, "manifest.json", json.dumps([{"Config": chex + ".json", "RepoTags": ["sbx/test:1"],
                                              "Layers": [h + "/layer.tar" for h in hexes]}]).encode())
EOF
ctl image import "$tmp/docker.tar" --name dock -q >/dev/null; rc=$?
check "import of a docker-save archive: exit 0" 0 "$rc"
check "three layers" 3 "$(ctl image inspect dock | jget 'len(j["layers"])')"
check "its ref is the repo tag" sbx/test:1 "$(ctl image inspect dock | jget 'j["ref"]')"
ctl create --name d1 --image dock --entrypoint '' >/dev/null
check "a whiteout hides the lower layer's file" gone "$(ctl exec d1 sh -c 'test -e /etc/deleteme || echo gone')"
check "an opaque directory hides the lower layer's entries" upper.txt "$(ctl exec d1 ls /opt/data)"
check "the image's working directory, user and env" "/opt/data 65534 docker" \
  "$(ctl exec d1 sh -c 'echo $(pwd) $(id -u) $FOO')"
check "layers are shared: the busybox layer is stored once" 1 \
  "$(ls "$tmp/state/layers" | grep -c "$(ctl image inspect dock | jget 'j["layers"][0]["diff_id"][7:]')")"
ctl rm -f d1 >/dev/null

# --- refused archives leave nothing behind --------------------------------------------------------------------------
before=$(store_listing)
"$py" - "$tmp/evil.tar" "$tmp/trunc.tar.gz" "$tmp/busybox.tar" <<'EOF'
import gzip, io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as tar:
    ti = tarfile.TarInfo("etc/passwd"); ti.size = 3; tar.addfile(ti, io.BytesIO(b"ok\n"))
    ti = tarfile.TarInfo("../../escaped"); ti.size = 3; tar.addfile(ti, io.BytesIO(b"no\n"))
data = gzip.compress(open(sys.argv[3], "rb").read())
open(sys.argv[2], "wb").write(data[: len(data) // 2])
EOF
err=$(ctl image import --stream "$tmp/evil.tar" --name evil -q 2>&1); rc=$?
check "a path traversal is refused" 125 "$rc"
contains "and the message names the entry" "../../escaped" "$err"
err=$(ctl image import "$tmp/trunc.tar.gz" --name trunc -q 2>&1); rc=$?
check "a truncated gzip is refused" 125 "$rc"
contains "with a message from the importer" "import 'trunc'" "$err"
check "neither is listed" "" "$(ctl image ls -q | grep -E '^(evil|trunc)$')"
check "the layer store is as before" "$before" "$(store_listing)"
i=0
while [ -n "$(ls "$tmp/state/images/tmp")" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "no work directory is left" "" "$(ls "$tmp/state/images/tmp")"

# --- removal frees the layers --------------------------------------------------------------------------------------
for img in pod pod2 dock python node; do
  ctl image rm "$img" >/dev/null || check "image rm $img" 0 1
done
check "with every image gone, the layer store is empty" "" "$(store_listing)"

test_summary
