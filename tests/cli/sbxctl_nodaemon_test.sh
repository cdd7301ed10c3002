#!/bin/sh
# sbxctl without a daemon: a clear message and status 125 when sbxd is not there or its socket is not ours to use,
# and usage errors caught before any connection.
#   sbxctl_nodaemon_test.sh SBXCTL
set -u
ctl=$1
dir=$(mktemp -d /tmp/sbxctl-nodaemon-XXXXXX)
listener=
cleanup() {
  [ -n "$listener" ] && kill "$listener" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
passed=0
failed=0

check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    printf 'FAIL %s\n  expected: %s\n  actual:   %s\n' "$1" "$2" "$3"
  fi
}

contains() {  # contains NAME NEEDLE HAYSTACK
  case $3 in *"$2"*) check "$1" ok ok ;; *) check "$1" "...$2..." "$3" ;; esac
}

err=$("$ctl" --socket "$dir/sbxd.sock" ls 2>&1); rc=$?
check "no daemon: status 125" 125 "$rc"
check "no daemon: the message says where and what to check" \
  "sbxctl: cannot connect to sbxd at $dir/sbxd.sock: is the daemon running? (ENOENT)" "$err"

err=$(SBX_SOCKET="$dir/env.sock" "$ctl" info 2>&1); rc=$?
check "SBX_SOCKET is used" "sbxctl: cannot connect to sbxd at $dir/env.sock: is the daemon running? (ENOENT)" "$err"

for cmd in "create --rootfs /" "run --rootfs / -- true" "exec box true" "inspect box" "logs box" "start box" \
    "stop box" "restart box" "kill box" "rm box" "stats" "cp box:/a $dir/a" "events" "info" "execs" \
    "image ls" "image inspect img" "image rm img" "env ls" "env inspect py" "env rm py@1" "env create py --image img" \
    "env update py --memory 1G" "apikey create --tenant acme" "apikey ls" "apikey revoke 0123456789ab"; do
  # shellcheck disable=SC2086
  "$ctl" --socket "$dir/sbxd.sock" $cmd >/dev/null 2>&1; rc=$?
  check "no daemon: '$cmd' exits 125" 125 "$rc"
done

# A socket file nobody listens on: ECONNREFUSED.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$dir/stale.sock"
err=$("$ctl" --socket "$dir/stale.sock" ls 2>&1); rc=$?
check "stale socket: status 125" 125 "$rc"
check "stale socket: ECONNREFUSED" \
  "sbxctl: cannot connect to sbxd at $dir/stale.sock: is the daemon running? (ECONNREFUSED)" "$err"

# A socket the caller may not use: as nobody against a root-owned 0660 socket.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
time.sleep(60)' "$dir/priv.sock" &
  listener=$!
  i=0
  while [ ! -S "$dir/priv.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  chmod 0660 "$dir/priv.sock"
  chmod 0755 "$dir"
  group=$(stat -c %G "$dir/priv.sock")
  err=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$ctl" --socket "$dir/priv.sock" ls 2>&1); rc=$?
  check "permission denied: status 125" 125 "$rc"
  want="sbxctl: cannot connect to sbxd at $dir/priv.sock: permission denied (EACCES): you need to be root or"
  want="$want in group '$group', the socket's group"
  check "permission denied: the message says which socket and what is needed" "$want" "$err"
else
  echo "SKIP permission denied: needs root and setpriv"
fi

# Usage errors: 125 and a message, before any connection is tried.
err=$("$ctl" --socket "$dir/sbxd.sock" frobnicate 2>&1); rc=$?
check "unknown command: 125" 125 "$rc"
contains "unknown command: named" "sbxctl: unknown command 'frobnicate'" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" create --rootfs / --memory lots 2>&1); rc=$?
check "bad --memory: 125" 125 "$rc"
contains "bad --memory: names the option" "sbxctl: --memory: invalid size 'lots'" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" run --rootfs / --mount /a 2>&1); rc=$?
check "run without a command: 125" 125 "$rc"
err=$("$ctl" --socket "$dir/sbxd.sock" run --rootfs / --mount /a -- true 2>&1); rc=$?
contains "bad --mount: names the option" "sbxctl: --mount: '/a'" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" exec --timeout soon box true 2>&1); rc=$?
check "bad --timeout: 125" 125 "$rc"
contains "bad --timeout: names the option" "sbxctl: --timeout:" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" exec 2>&1); rc=$?
check "exec without a sandbox: 125" 125 "$rc"
err=$("$ctl" --socket "$dir/sbxd.sock" cp a b 2>&1); rc=$?
check "cp between two host paths: 125" 125 "$rc"
contains "cp between two host paths: says why" "exactly one of SRC and DEST must be SANDBOX:PATH" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" ls --bogus 2>&1); rc=$?
check "unknown option: 125" 125 "$rc"
err=$("$ctl" --socket "$dir/sbxd.sock" image lss 2>&1); rc=$?
check "unknown image subcommand: 125" 125 "$rc"
contains "unknown image subcommand: named" "sbxctl: unknown command 'image lss'" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" image import /dev/null 2>&1); rc=$?
check "image import without --name: 125" 125 "$rc"
contains "image import without --name: says so" "--name is required" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" create --rootfs / -E py@x 2>&1); rc=$?
check "bad --environment: 125" 125 "$rc"
contains "bad --environment: names the option" "sbxctl: --environment: 'py@x' is not NAME or NAME@VERSION" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" env rm py@0 2>&1); rc=$?
check "env rm of a bad ref: 125" 125 "$rc"
err=$("$ctl" --socket "$dir/sbxd.sock" env create py 2>&1); rc=$?
check "env create without --image: 125" 125 "$rc"
err=$("$ctl" --socket "$dir/sbxd.sock" apikey create 2>&1); rc=$?
check "apikey create without --tenant: 125" 125 "$rc"
check "apikey create without --tenant: says so before connecting" \
  "sbxctl: apikey create: --tenant is required (the tenant the key acts for)" "$err"
err=$("$ctl" --socket "$dir/sbxd.sock" apikey revoke 2>&1); rc=$?
check "apikey revoke without an id: 125" 125 "$rc"
err=$("$ctl" --socket "$dir/sbxd.sock" image import --stream "$dir" --name x 2>&1); rc=$?
check "streaming a directory: 125" 125 "$rc"
contains "streaming a directory: says to tar it" "make a tarball of it" "$err"

"$ctl" --help >/dev/null 2>&1; rc=$?
check "--help exits 0" 0 "$rc"
"$ctl" exec --help >/dev/null 2>&1; rc=$?
check "exec --help exits 0" 0 "$rc"
out=$("$ctl" --version 2>&1); rc=$?
check "--version exits 0" 0 "$rc"
contains "--version prints a version" "." "$out"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
