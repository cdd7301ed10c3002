#!/bin/sh
# sbx-run as a user meets it: output passes through, exit codes and signals come back the shell's way, bad input
# gets a message and 125, and nothing is left behind.
#   sbx_run_test.sh SBX_RUN BUSYBOX_ROOTFS
set -u
run=$1
rootfs=$2
root=/run/sbx-test-run-$$
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

sbx() { "$run" --run-root "$root" --rootfs "$rootfs" "$@"; }

out=$(sbx --hostname box -- /bin/sh -c 'echo "$(hostname) $(id -u)"; exit 3'); rc=$?
check "output passes through" "box 0" "$out"
check "exit code comes back" 3 "$rc"

sbx -- /bin/sh -c 'kill -TERM $$'; rc=$?
check "a signal comes back as 128+N" 143 "$rc"

sbx --memory 32M -- /bin/sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived' >/dev/null; rc=$?
check "an OOM kill comes back as 137" 137 "$rc"

# Killing sbx-run stops the sandbox through init and still destroys it: nothing keeps running.
"$run" --run-root "$root" --rootfs "$rootfs" --id sbx-run-sigterm -- /bin/sh -c 'trap "exit 9" TERM; while :; do sleep 0.05; done' &
pid=$!
i=0
while [ ! -d "$root/sbx-run-sigterm" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
kill -TERM $pid
wait $pid; rc=$?
check "SIGTERM to sbx-run reaches the command" 9 "$rc"
check "and its sandbox is destroyed" "" "$(ls "$root" 2>/dev/null)"

out=$(sbx --user 1000:1000 --cwd /home/user --env GREETING=hi -- /bin/sh -c 'echo "$(id -u):$(id -g) $(pwd) $GREETING"')
check "user, cwd and env apply" "1000:1000 /home/user hi" "$out"

err=$(sbx --memory 1K -- /bin/true 2>&1); rc=$?
check "an out-of-range limit exits 125" 125 "$rc"
case $err in *limits.memory*) check "and names the field" ok ok ;; *) check "and names the field" "limits.memory" "$err" ;; esac

err=$("$run" --run-root "$root" --rootfs /no/such/rootfs -- /bin/true 2>&1); rc=$?
check "a missing rootfs exits 125" 125 "$rc"
case $err in *"root.lower_dirs[0]"*ENOENT*) check "and says which and why" ok ok ;;
  *) check "and says which and why" "root.lower_dirs[0] ... ENOENT" "$err" ;; esac

err=$("$run" --bogus 2>&1); rc=$?
check "an unknown option exits 125" 125 "$rc"

out=$(sbx --userns 1900000000 -- /bin/sh -c 'cat /proc/self/uid_map; touch /mine; stat -c %u /mine')
check "--userns: root inside is host uid 1900000000, and owns what it makes" \
  "0 1900000000 65536 0" "$(echo $out)"
out=$(sbx --uidmap 0:1900000000:1000 --uidmap 1000:1900065536:1 -- /bin/sh -c 'cat /proc/self/gid_map')
check "--uidmap alone: the gid map is the uid map" "0 1900000000 1000 1000 1900065536 1" "$(echo $out)"
err=$(sbx --uidmap 0:0:65536 -- /bin/true 2>&1); rc=$?
check "a map holding the host's root exits 125" 125 "$rc"
case $err in *"maps the host's id 0"*) check "and says why" ok ok ;; *) check "and says why" "maps the host's id 0" "$err" ;; esac
err=$(sbx --userns 1900000000 --bind /proc/self:/hostproc -- /bin/true 2>&1); rc=$?
check "a bind source that cannot be idmapped exits 125" 125 "$rc"
case $err in *"needs idmapped mounts"*) check "and names the requirement" ok ok ;;
  *) check "and names the requirement" "needs idmapped mounts" "$err" ;; esac
own=$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)
check "and leaves no parent cgroup behind" "" "$(ls -d "/sys/fs/cgroup/memory$own/sbx" 2>/dev/null)"
closed=$(mktemp -d); chmod 700 "$closed"
err=$("$run" --run-root "$closed/run" --rootfs "$rootfs" --userns 1900000000 -- /bin/true 2>&1); rc=$?
check "a run root others cannot search exits 125 with --userns" 125 "$rc"
case $err in *"searchable by others"*) check "and says so" ok ok ;; *) check "and says so" "searchable by others" "$err" ;; esac
rm -rf "$closed"

left=$(find "$root" -mindepth 1 2>/dev/null | head -n 3)
check "no run dir is left" "" "$left"
rmdir "$root" 2>/dev/null

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
