#!/bin/sh
# sbxctl's images and environments end to end against a private sbxd: image import (path, --stream, stdin),
# ls, inspect, rm (refused while in use), build (with a stand-in builder), sandboxes from images and from
# environment versions, env create/update/ls/inspect/rm, and bad input. Cleans up as sbxctl_test.sh does.
#   sbxctl_image_test.sh SBXCTL SBXD SBX_MONITOR BUSYBOX_ROOTFS SECCOMP_DIR SBX_IMAGE
# Run as root.
set -u
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
ctl=$(abs "$1")
sbxd=$2
monitor=$3
rootfs=$(abs "$4")
seccomp_dir=$5
# nobody (65534) is a trusted caller, for imports without root (streamed); the socket is open to it.
daemon_toml="[daemon]
image_tool = \"$(abs "$6")\"
socket_mode = \"0666\"
trusted_uids = [65534]"
. "$(dirname "$0")/lib.sh"
test_setup image
start_daemon

is_image_id() {  # is_image_id NAME VALUE
  case $2 in
    sha256:[0-9a-f][0-9a-f][0-9a-f][0-9a-f]*) check "$1" ok ok ;;
    *) check "$1" "sha256:<hex>" "$2" ;;
  esac
}

tar -C "$rootfs" -cf "$tmp/busybox.tar" .

# --- import -------------------------------------------------------------------------------------------------------
id=$(ctl image import "$tmp/busybox.tar" --name bb --quiet 2>"$tmp/err"); rc=$?
check "import (path mode): exit 0" 0 "$rc"
is_image_id "import prints the image id" "$id"
check "import --quiet: nothing on stderr" "" "$(cat "$tmp/err")"
id2=$(ctl image import --stream "$tmp/busybox.tar" --name bb2 2>"$tmp/err"); rc=$?
check "import --stream: exit 0" 0 "$rc"
is_image_id "import --stream prints the image id" "$id2"
check "progress on a non-tty stderr: plain lines" 1 \
  "$(grep -cE '^(upload|read|verify|unpack|commit) ' "$tmp/err" | awk '{print ($1 > 0)}')"
id3=$(ctl image import - --name bb3 <"$tmp/busybox.tar" 2>/dev/null); rc=$?
check "import from stdin: exit 0" 0 "$rc"
is_image_id "import from stdin prints the image id" "$id3"
id4=$(cd "$tmp" && ctl image import busybox.tar --name bb4 -q); rc=$?
check "import of a relative path: exit 0" 0 "$rc"
check "a relative path is made absolute" "$tmp/busybox.tar" "$(ctl image inspect bb4 | jget 'j["source"]')"
err=$(ctl image import "$tmp/busybox.tar" --name bb -q 2>&1); rc=$?
check "import under a taken name exits 125" 125 "$rc"
contains "and says so" "sbxctl: " "$err"
ctl image import "$tmp/busybox.tar" --name bb4 --replace -q >/dev/null; rc=$?
check "import --replace takes the name" 0 "$rc"
ctl image import "$rootfs" --name bbdir -q >/dev/null; rc=$?
check "import of a directory as root (path mode)" 0 "$rc"
check "its format is directory" directory "$(ctl image inspect bbdir | jget 'j["format"]')"
err=$(ctl image import --stream "$rootfs" --name nope 2>&1); rc=$?
check "a directory cannot be streamed: 125" 125 "$rc"
contains "and the message says to tar it" "tar -C $rootfs -cf - ." "$err"
if command -v setpriv >/dev/null; then
  chmod 0711 "$tmp"
  chmod 0644 "$tmp/busybox.tar"
  as_nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups "$ctl" --socket "$sock" "$@"; }
  nid=$(as_nobody image import "$tmp/busybox.tar" --name bbnobody 2>"$tmp/err"); rc=$?
  check "import without root: exit 0" 0 "$rc"
  is_image_id "import without root prints the image id" "$nid"
  check "import without root streams the file" stream "$(ctl image inspect bbnobody | jget 'j["source"]')"
  err=$(as_nobody image import "$rootfs" --name nope 2>&1); rc=$?
  check "import of a directory without root: 125" 125 "$rc"
  contains "and says why and what to do" "cannot be streamed without root" "$err"
  ctl image rm bbnobody >/dev/null
  chmod 0700 "$tmp"
else
  echo "SKIP import without root: needs setpriv"
fi
json_id=$(ctl --json image import "$tmp/busybox.tar" --name bbjson -q | jget 'j["id"]'); rc=$?
is_image_id "import --json prints the image object" "$json_id"

# --- ls, inspect ---------------------------------------------------------------------------------------------------
out=$(ctl image ls); rc=$?
check "image ls: exit 0" 0 "$rc"
check "image ls: header" "NAME ID SIZE LAYERS FORMAT CREATED" "$(echo $(echo "$out" | head -n 1))"
short=$(echo "$id" | cut -c8-19)
contains "image ls: bb with its short id" "$short" "$(echo "$out" | grep '^bb ')"
contains "image ls: tarball format" "tarball" "$(echo "$out" | grep '^bb ')"
check "image ls -q" "bb bb2 bb3 bb4 bbdir bbjson" "$(echo $(ctl image ls -q | sort))"
check "image ls --json" 6 "$(ctl --json image ls | jget 'len(j["images"])')"
insp=$(ctl image inspect bb); rc=$?
check "image inspect: exit 0" 0 "$rc"
check "image inspect: id" "$id" "$(echo "$insp" | jget 'j["id"]')"
check "image inspect: name" bb "$(echo "$insp" | jget 'j["name"]')"
check "image inspect: format" tarball "$(echo "$insp" | jget 'j["format"]')"
check "image inspect: source" "$tmp/busybox.tar" "$(echo "$insp" | jget 'j["source"]')"
check "image inspect: streamed source" stream "$(ctl image inspect bb2 | jget 'j["source"]')"
check "image inspect: size" True "$(echo "$insp" | jget 'j["size"] > 1000000')"
check "image inspect: layers" True \
  "$(echo "$insp" | jget 'len(j["layers"]) >= 1 and j["layers"][0]["diff_id"].startswith("sha256:")')"
check "image inspect: config" True "$(echo "$insp" | jget 'isinstance(j["config"], dict)')"
check "image inspect: unused" "0 0" \
  "$(echo "$insp" | jget '"%d %d" % (len(j["used_by"]["sandboxes"]), len(j["used_by"]["environments"]))')"
check "image inspect by id" bb "$(ctl image inspect "$id" | jget 'j["name"]')"
check "image inspect of two is an array" 2 "$(ctl image inspect bb bb2 | jget 'len(j)')"
err=$(ctl image inspect no-such-image 2>&1); rc=$?
check "image inspect of a missing image exits 125" 125 "$rc"
contains "and says so" "sbxctl: " "$err"

# --- sandboxes from images -----------------------------------------------------------------------------------------
sid=$(ctl create --name s1 --image bb); rc=$?
check "create --image: exit 0" 0 "$rc"
check "create --image: exec works" "busybox" "$(ctl exec s1 cat /etc/sbx-rootfs | cut -d' ' -f1)"
check "create --image: by id too" 0 "$(ctl create --name s2 --image "$id" >/dev/null; echo $?)"
check "the image knows its sandboxes" True \
  "$(ctl image inspect bb | jget "'$sid' in j['used_by']['sandboxes']")"
err=$(ctl image rm bb 2>&1); rc=$?
check "image rm of an image in use exits 125" 125 "$rc"
contains "and says so" "sbxctl: " "$err"
check "and the image is still there" bb "$(ctl image inspect bb | jget 'j["name"]')"
ctl rm -f s1 s2 >/dev/null
out=$(ctl image rm bb); rc=$?
check "image rm after the sandboxes are gone" 0 "$rc"
contains "image rm prints what it freed" "bb: " "$out"
contains "image rm prints what it freed" " freed" "$out"
lacks "image rm: gone from ls" "bb " "$(ctl image ls -q | sed 's/$/ /')"
check "image rm --json" True "$(ctl --json image rm bbjson | jget 'isinstance(j["freed_bytes"], int)')"
ctl image rm bb3 no-such-image >/dev/null 2>&1; rc=$?
check "image rm: non-zero when one failed" 125 "$rc"
lacks "image rm: the others are still removed" bb3 "$(ctl image ls -q)"
out=$(ctl run --image bb2 -- sh -c 'echo hi from $(cat /etc/sbx-rootfs | cut -d" " -f1)'); rc=$?
check "run --image: output" "hi from busybox" "$out"
check "run --image: removes its sandbox" "" "$(ctl ls -q)"
check "run --entrypoint goes before the command" "a b" "$(ctl run --image bb2 --entrypoint echo -- a b)"
ctl create --name ep --image bb2 --entrypoint '' >/dev/null; rc=$?
check "create --entrypoint '': exit 0" 0 "$rc"
check "create --entrypoint '': idles" running "$(ctl inspect ep | jget 'j["state"]')"
ctl create --name ep2 --image bb2 --entrypoint sh -- -c 'echo from-entrypoint' >/dev/null
i=0
while [ "$(ctl inspect ep2 | jget 'j["state"]')" != exited ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "create --entrypoint CMD -- ARGS: the main command" from-entrypoint "$(ctl logs ep2)"
ctl rm -f ep ep2 >/dev/null

# --- environments --------------------------------------------------------------------------------------------------
out=$(ctl env create py --image bb2 --memory 64M --cpus 0.5 -e A=1 --description first); rc=$?
check "env create: exit 0" 0 "$rc"
check "env create prints the ref" py@1 "$out"
check "env update prints the new ref" py@2 "$(ctl env update py --memory 96M)"
out=$(ctl env ls); rc=$?
check "env ls: exit 0" 0 "$rc"
contains "env ls: header" "NAME   VERSION   IMAGE   MEMORY   CPUS" "$out"
contains "env ls: the latest version" "py     2         bb2     96M      0.5" "$out"
check "env ls -q" py "$(ctl env ls -q)"
check "env ls --json" 2 "$(ctl --json env ls | jget 'j["environments"][0]["version"]')"
v1=$(ctl env inspect py@1)
check "env inspect @1: version" 1 "$(echo "$v1" | jget 'j["version"]')"
check "env inspect @1: memory" 67108864 "$(echo "$v1" | jget 'j["limits"]["memory"]')"
check "env inspect @1: image" bb2 "$(echo "$v1" | jget 'j["image"]["name"]')"
check "env inspect @1: env" "['A=1']" "$(echo "$v1" | jget 'j["env"]')"
check "env inspect @1: description" first "$(echo "$v1" | jget 'j["description"]')"
v2=$(ctl env inspect py@2)
check "env inspect @2: memory" 100663296 "$(echo "$v2" | jget 'j["limits"]["memory"]')"
check "env update keeps the limits not given" 0.5 "$(echo "$v2" | jget 'j["limits"]["vcpus"]')"
latest=$(ctl env inspect py)
check "env inspect NAME: the latest" "2 py@2 [1, 2]" \
  "$(echo "$latest" | jget '"%d %s %s" % (j["version"], j["ref"], j["versions"])')"
check "env inspect of two is an array" 2 "$(ctl env inspect py@1 py | jget 'len(j)')"
ctl create --name e1 -E py@1 >/dev/null; rc=$?
check "create --environment NAME@1: exit 0" 0 "$rc"
check "create --environment NAME@1: v1's memory" 67108864 "$(ctl inspect e1 | jget 'j["limits"]["memory"]')"
check "create --environment: the environment's env" 1 "$(ctl exec e1 sh -c 'echo $A')"
ctl create --name e2 --environment py@1 --memory 32M >/dev/null
check "create --environment with --memory: the option wins" 33554432 "$(ctl inspect e2 | jget 'j["limits"]["memory"]')"
ctl create --name e3 --environment py >/dev/null
check "create --environment NAME: the latest" 100663296 "$(ctl inspect e3 | jget 'j["limits"]["memory"]')"
ctl rm -f e1 e2 e3 >/dev/null
err=$(ctl image rm bb2 2>&1); rc=$?
check "image rm of an image an environment uses exits 125" 125 "$rc"
out=$(ctl env rm py@1); rc=$?
check "env rm NAME@1: exit 0" 0 "$rc"
check "env rm NAME@1: says what it removed" "py@1: removed 1 version" "$out"
ctl env inspect py@1 >/dev/null 2>&1; rc=$?
check "env inspect of a removed version exits 125" 125 "$rc"
check "env rm NAME: the rest" "py: removed 1 version" "$(ctl env rm py)"
check "env ls: empty" "" "$(ctl env ls -q)"
check "env create --json" py2@1 \
  "$(ctl --json env create py2 --image bb2 --network none --ttl 1h | jget 'j["ref"]')"
ctl env rm py2 >/dev/null
ctl image rm bb2 >/dev/null; rc=$?
check "image rm once no environment uses it" 0 "$rc"

# --- image build, with a stand-in for sbx-build-image ---------------------------------------------------------------
cat >"$tmp/fake-builder" <<EOF
#!/bin/sh
echo "\$*" >"$tmp/builder-args"
[ "\$1" = failing ] && exit 3
while [ \$# -gt 0 ]; do
  [ "\$1" = --output ] && cp "$tmp/busybox.tar" "\$2" && echo "\$2" >"$tmp/builder-output"
  shift
done
echo "built"
EOF
chmod +x "$tmp/fake-builder"
out=$(TMPDIR=$tmp SBX_BUILD_IMAGE="$tmp/fake-builder" "$ctl" --socket "$sock" image build mini --cache "$tmp/cache" \
  --sources a.list -q 2>"$tmp/err"); rc=$?
check "image build: exit 0" 0 "$rc"
is_image_id "image build prints the image id" "$out"
contains "image build: the builder's arguments" "mini --output $tmp/sbx-build-" "$(cat "$tmp/builder-args")"
contains "image build: --cache, --sources and --quiet passed on" "--cache $tmp/cache --sources a.list --quiet" \
  "$(cat "$tmp/builder-args")"
contains "image build: the builder's stdout goes to stderr" built "$(cat "$tmp/err")"
check "image build: named after the definition" "$out" "$(ctl image inspect mini | jget 'j["id"]')"
check "image build: the builder's output is removed" no \
  "$(test -e "$(dirname "$(cat "$tmp/builder-output")")" && echo yes || echo no)"
SBX_BUILD_IMAGE="$tmp/fake-builder" "$ctl" --socket "$sock" image build defs/mini.toml --name mini -q >/dev/null 2>&1
check "image build replaces the name" 0 "$?"
err=$(SBX_BUILD_IMAGE="$tmp/fake-builder" "$ctl" --socket "$sock" image build failing 2>&1); rc=$?
check "image build: a failing builder exits 125" 125 "$rc"
contains "and says so" "failed (exit status 3)" "$err"
err=$(SBX_BUILD_IMAGE=/no/such/builder "$ctl" --socket "$sock" image build x 2>&1); rc=$?
check "image build: a missing builder exits 125" 125 "$rc"
contains "and names it" "/no/such/builder" "$err"
if command -v setpriv >/dev/null; then
  err=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$ctl" --socket "$sock" image build x 2>&1); rc=$?
  check "image build as non-root exits 125" 125 "$rc"
  contains "and says root is needed" "image build needs root" "$err"
fi

# --- bad input -----------------------------------------------------------------------------------------------------
err=$(ctl create --image no-such-image 2>&1); rc=$?
check "create with an unknown image exits 125" 125 "$rc"
contains "and says so" "sbxctl: " "$err"
err=$(ctl create -E 'py@x' 2>&1); rc=$?
check "a bad environment ref exits 125" 125 "$rc"
contains "and says why" "'py@x' is not NAME or NAME@VERSION" "$err"
err=$(ctl env inspect 'py@x' 2>&1); rc=$?
check "env inspect of a bad ref exits 125" 125 "$rc"
err=$(ctl create -E nosuchenv 2>&1); rc=$?
check "create with an unknown environment exits 125" 125 "$rc"
err=$(ctl image import "$tmp/busybox.tar" 2>&1); rc=$?
check "import without --name exits 125" 125 "$rc"
contains "and says --name is required" "--name is required" "$err"
err=$(ctl image import "$tmp/no-such.tar" --name x 2>&1); rc=$?
check "import of a missing file exits 125" 125 "$rc"
contains "and says so" "No such file or directory" "$err"
err=$(ctl env create x 2>&1); rc=$?
check "env create without --image exits 125" 125 "$rc"
err=$(ctl env create x --image no-such-image 2>&1); rc=$?
check "env create with an unknown image exits 125" 125 "$rc"
contains "and says so" "sbxctl: " "$err"
err=$(ctl env create x --image mini --memory lots 2>&1); rc=$?
check "env create with a bad size exits 125" 125 "$rc"
contains "and names the option" "--memory: invalid size 'lots'" "$err"
err=$(ctl env update no-such-env --memory 1G 2>&1); rc=$?
check "env update of an unknown environment exits 125" 125 "$rc"
err=$(ctl image 2>&1); rc=$?
check "image without a subcommand exits 125" 125 "$rc"

test_summary
