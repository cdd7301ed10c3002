# Sourced by the sbxctl end-to-end tests: a private sbxd (temp state dir, own run dir, socket and cgroup parent),
# its cleanup, and the check helpers. The caller sets ctl, sbxd, monitor, rootfs and seccomp_dir (and optionally
# daemon_toml, the text of sbxd's config file), then:
#   . "$(dirname "$0")/lib.sh"
#   test_setup NAME       # NAME: a short word for the temp and run dirs and the cgroup parent
#   start_daemon          # exits (after "0 passed, 1 failed") when sbxd does not come up
#   ... checks ...
#   test_summary          # prints "N passed, M failed" last; exits non-zero on a failure
# Always cleans up on exit: sandboxes removed, sbxd stopped, cgroup parent gone, temp dirs removed. Background
# processes listed in bg_pids are killed first.

daemon_pid=
daemon_toml=${daemon_toml:-}
bg_pids=
passed=0
failed=0
py=/usr/bin/python3  # not a version-manager shim: it is called often
[ -x "$py" ] || py=python3

test_setup() {  # test_setup NAME
  if [ "$(id -u)" -ne 0 ]; then
    echo "$1: creates sandboxes through sbxd: run as root" >&2
    exit 1
  fi
  tmp=$(mktemp -d "/tmp/sbx-test-$1-XXXXXX")
  run_dir=/run/sbx-test-$1-$$
  cg_name=sbx-test-$1-$$
  sock=$tmp/sbxd.sock
  trap cleanup EXIT
  trap 'exit 130' INT TERM HUP
}

cleanup() {
  for p in $bg_pids; do kill "$p" 2>/dev/null; done
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    for id in $("$ctl" --socket "$sock" ls -q 2>/dev/null); do
      "$ctl" --socket "$sock" rm -f "$id" >/dev/null 2>&1
    done
    kill -TERM "$daemon_pid"
    i=0
    while kill -0 "$daemon_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$daemon_pid" 2>/dev/null
  fi
  # The cgroup parent sbxd made for us: empty directories only, deepest first.
  find /sys/fs/cgroup -mindepth 1 -maxdepth 7 -depth -type d -name "$cg_name" -exec rmdir {} \; 2>/dev/null
  rm -rf "$tmp" "$run_dir"
}

start_daemon() {
  # A user-namespace pool of its own, away from a system sbxd's.
  printf '%s\n[userns]\nfirst = 1610000000\ncount = 64\n' "$daemon_toml" >"$tmp/sbxd.toml"
  "$sbxd" --config "$tmp/sbxd.toml" --socket "$sock" --state-dir "$tmp/state" --run-dir "$run_dir" \
    --cgroup-parent-name "$cg_name" --monitor "$monitor" --seccomp-dir "$seccomp_dir" --rootfs-dir "$rootfs" \
    >"$tmp/sbxd.log" 2>&1 &
  daemon_pid=$!
  i=0
  while [ ! -S "$sock" ] && [ $i -lt 100 ] && kill -0 "$daemon_pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
  if [ ! -S "$sock" ]; then
    echo "sbxd did not come up:"
    cat "$tmp/sbxd.log"
    echo "0 passed, 1 failed"
    exit 1
  fi
}

# Stops our sbxd (to test sbxctl without it); cleanup then leaves it alone.
stop_daemon() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" 2>/dev/null
  daemon_pid=
}

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

lacks() {  # lacks NAME NEEDLE HAYSTACK
  case $3 in *"$2"*) check "$1" "no $2" "$3" ;; *) check "$1" ok ok ;; esac
}

# jq-like: jget EXPRESSION (python, over `j`) < JSON
jget() { "$py" -c "import json,sys; j=json.load(sys.stdin); print($1)"; }

ctl() { "$ctl" --socket "$sock" "$@"; }

test_summary() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
