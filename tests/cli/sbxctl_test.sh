#!/bin/sh
# sbxctl end to end against a real sbxd of its own (temp state dir, own run dir, socket and cgroup parent): every
# subcommand, its output and its exit status. Always cleans up: sandboxes removed, sbxd stopped, cgroup parent gone.
#   sbxctl_test.sh SBXCTL SBXD SBX_MONITOR BUSYBOX_ROOTFS SECCOMP_DIR
# Run as root.
set -u
ctl=$1
sbxd=$2
monitor=$3
rootfs=$4
seccomp_dir=$5
. "$(dirname "$0")/lib.sh"
test_setup cli
start_daemon

# --- info ---------------------------------------------------------------------------------------------------------
out=$(ctl info); rc=$?
check "info exits 0" 0 "$rc"
contains "info shows the version" "Version:" "$out"
contains "info shows the caller" "role root" "$out"
check "info --json is daemon.info" 1 "$(ctl --json info | jget 'j["api_version"]')"

# --- create, inspect, ls ------------------------------------------------------------------------------------------
id=$(ctl create --name c1 --rootfs "$rootfs" --label app=web --label tier=db --memory 64M --pids 64 --cpus 0.5 \
  -e FOO=bar --hostname hb); rc=$?
check "create exits 0" 0 "$rc"
case $id in
  [0-9a-f][0-9a-f]*) check "create prints the id" ok ok ;;
  *) check "create prints the id" "an id" "$id" ;;
esac
insp=$(ctl inspect c1)
check "inspect: state" running "$(echo "$insp" | jget 'j["state"]')"
check "inspect: id" "$id" "$(echo "$insp" | jget 'j["id"]')"
check "inspect: labels" "web db" "$(echo "$insp" | jget 'j["labels"]["app"] + " " + j["labels"]["tier"]')"
check "inspect: memory from 64M" 67108864 "$(echo "$insp" | jget 'j["limits"]["memory"]')"
check "inspect: pids" 64 "$(echo "$insp" | jget 'j["limits"]["pids"]')"
check "inspect: vcpus" 0.5 "$(echo "$insp" | jget 'j["limits"]["vcpus"]')"
check "inspect: rootfs made absolute" "$rootfs" "$(echo "$insp" | jget 'j["rootfs"]')"
check "inspect: hostname" hb "$(echo "$insp" | jget 'j["hostname"]')"
check "inspect by id is the same" c1 "$(ctl inspect "$id" | jget 'j["name"]')"
check "inspect of two is an array" 2 "$(ctl inspect c1 "$id" | jget 'len(j)')"
err=$(ctl inspect no-such-box 2>&1); rc=$?
check "inspect of a missing sandbox exits 125" 125 "$rc"
contains "and says so" "sbxctl: " "$err"
err=$(ctl create --name c1 --rootfs "$rootfs" 2>&1); rc=$?
check "a duplicate name exits 125" 125 "$rc"

out=$(ctl ls)
contains "ls has a header" "ID   " "$out"
contains "ls shows c1 running" "c1     running" "$out"
contains "ls shows the labels" "app=web,tier=db" "$out"
check "ls --label" "$id" "$(ctl ls -q --label app=web)"
check "ls --label with another value" "" "$(ctl ls -q --label app=db)"
check "ls two labels" "$id" "$(ctl ls -q --label app=web --label tier=db)"
check "ls two labels, one not matching" "" "$(ctl ls -q --label app=web --label tier=x)"
check "ls --state exited" "" "$(ctl ls -q --state exited)"
check "ls --json" c1 "$(ctl --json ls | jget 'j["sandboxes"][0]["name"]')"

# --- exec ---------------------------------------------------------------------------------------------------------
out=$(ctl exec c1 sh -c 'echo "$FOO $(hostname)"; echo to-stderr >&2' 2>"$tmp/err"); rc=$?
check "exec: stdout and sandbox env" "bar hb" "$out"
check "exec: stderr to stderr" "to-stderr" "$(cat "$tmp/err")"
check "exec: exit 0" 0 "$rc"
ctl exec c1 -- sh -c 'exit 3'; rc=$?
check "exec: exit code comes back" 3 "$rc"
ctl exec c1 sh -c 'kill -TERM $$'; rc=$?
check "exec: a signal comes back as 128+N" 143 "$rc"
err=$(ctl exec c1 /no/such/program 2>&1); rc=$?
check "exec: a missing program exits 127" 127 "$rc"
contains "exec: and says so" "sbxctl: " "$err"
err=$(ctl exec --timeout 0.5 c1 sleep 30 2>&1); rc=$?
check "exec: a timeout exits 124" 124 "$rc"
contains "exec: and notes it" "timed out" "$err"
out=$(printf 'line1\nline2\n' | ctl exec -i c1 wc -l); rc=$?
check "exec -i passes stdin" 2 "$(echo $out)"
out=$(ctl exec -e FOO=baz -e NEW=1 --cwd /tmp --user 1000:1000 c1 sh -c 'echo "$FOO $NEW $(pwd) $(id -u):$(id -g)"')
check "exec: env, cwd and user" "baz 1 /tmp 1000:1000" "$out"
out=$(ctl exec --output-limit 1000 c1 sh -c 'head -c 10000 /dev/zero | tr "\0" x' 2>"$tmp/err" | wc -c)
check "exec: --output-limit caps the output" 1000 "$(echo $out)"
contains "exec: and notes the truncation" "truncated" "$(cat "$tmp/err")"
out=$(ctl exec c1 sh -c 'head -c 5000000 /dev/zero' | wc -c)
check "exec: 5 MB of output arrive whole" 5000000 "$(echo $out)"
ctl exec c1 sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived' >/dev/null 2>"$tmp/err"; rc=$?
check "exec: an OOM kill exits 137" 137 "$rc"
contains "exec: and notes the OOM kill" "out-of-memory" "$(cat "$tmp/err")"
res=$(ctl --json exec c1 sh -c 'printf abc; exit 4'); rc=$?
check "exec --json: status" 4 "$rc"
check "exec --json: output in the result" abc \
  "$(echo "$res" | jget '__import__("base64").b64decode(j["stdout_b64"]).decode()')"
err=$(ctl exec no-such-box true 2>&1); rc=$?
check "exec in a missing sandbox exits 125" 125 "$rc"
out=$(sh -c "\"$ctl\" --socket \"$sock\" exec c1 yes; echo \$? >\"$tmp/rc\"" | head -n 2)
check "exec into a closed pipe: the output up to it" "y y" "$(echo $out)"
check "exec into a closed pipe: exits 141 as SIGPIPE would" 141 "$(cat "$tmp/rc")"
lacks "exec into a closed pipe: the command is gone" yes "$(ctl exec c1 ps -o comm)"
"$ctl" --socket "$sock" exec c1 sleep 60 &
exec_pid=$!
i=0
while ! ctl exec c1 ps -o comm | grep -q sleep && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -INT $exec_pid
wait $exec_pid; rc=$?
check "exec: Ctrl-C exits 130" 130 "$rc"
sleep 0.2
lacks "exec: Ctrl-C ends the command in the sandbox" sleep "$(ctl exec c1 ps -o comm)"

# --- cp -----------------------------------------------------------------------------------------------------------
head -c 3000000 /dev/urandom >"$tmp/blob"
ctl cp "$tmp/blob" c1:/tmp/blob; rc=$?
check "cp in: exit 0" 0 "$rc"
check "cp in: content arrives (binary)" "$(md5sum <"$tmp/blob")" "$(ctl exec c1 cat /tmp/blob | md5sum)"
ctl cp c1:/tmp/blob "$tmp/blob.back"; rc=$?
check "cp out: exit 0" 0 "$rc"
cmp -s "$tmp/blob" "$tmp/blob.back"; check "cp out: same bytes" 0 "$?"
mkdir -p "$tmp/tree/a/b" "$tmp/tree/empty"
echo one >"$tmp/tree/one"
echo two >"$tmp/tree/a/b/two"
chmod 0750 "$tmp/tree/a/b/two"
ctl cp "$tmp/tree" c1:/home/; rc=$?
check "cp in a directory: exit 0" 0 "$rc"
check "cp in a directory: files and modes" "two 750 one dir" \
  "$(ctl exec c1 sh -c 'echo $(cat /home/tree/a/b/two) $(stat -c %a /home/tree/a/b/two) $(cat /home/tree/one) \
    $(test -d /home/tree/empty && echo dir)')"
mkdir "$tmp/out"
ctl cp c1:/home/tree "$tmp/out"; rc=$?
check "cp out a directory: exit 0" 0 "$rc"
check "cp out a directory: files and modes" "two 750 one" \
  "$(cat "$tmp/out/tree/a/b/two") $(stat -c %a "$tmp/out/tree/a/b/two") $(cat "$tmp/out/tree/one")"
check "cp out a directory: empty directories too" yes "$(test -d "$tmp/out/tree/empty" && echo yes)"
echo piped | ctl cp - c1:/tmp/piped
check "cp from stdin and to stdout" piped "$(ctl cp c1:/tmp/piped -)"
err=$(ctl cp c1:/no/such/file "$tmp/x" 2>&1); rc=$?
check "cp of a missing file exits 125" 125 "$rc"
contains "and says so" "no such file" "$err"

# --- stats, execs -------------------------------------------------------------------------------------------------
out=$(ctl stats c1); rc=$?
check "stats exits 0" 0 "$rc"
contains "stats has a header" "MEMORY PEAK" "$out"
contains "stats shows c1" "c1" "$out"
check "stats --json has numbers" True "$(ctl --json stats c1 | jget 'isinstance(j["memory_current"], int)')"
contains "stats without arguments covers running sandboxes" "c1" "$(ctl stats)"
out=$(ctl execs c1); rc=$?
check "execs exits 0" 0 "$rc"
contains "execs lists commands" "kill -TERM" "$out"
contains "execs shows timeouts" "timed out" "$out"
check "execs --json -n 2" 2 "$(ctl --json execs -n 2 c1 | jget 'len(j["execs"])')"

# --- lifecycle ----------------------------------------------------------------------------------------------------
check "stop prints the sandbox" c1 "$(ctl stop -t 1 c1)"
check "stop: exited" exited "$(ctl inspect c1 | jget 'j["state"]')"
err=$(ctl exec c1 true 2>&1); rc=$?
check "exec in a stopped sandbox exits 125" 125 "$rc"
check "start" c1 "$(ctl start c1)"
check "start: running" running "$(ctl inspect c1 | jget 'j["state"]')"
check "restart" c1 "$(ctl restart -t 1 c1)"
check "restart: running" running "$(ctl inspect c1 | jget 'j["state"]')"
ctl kill -s TERM c1 >/dev/null; rc=$?
check "kill exits 0" 0 "$rc"
i=0
while [ "$(ctl inspect c1 | jget 'j["state"]')" != exited ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "kill -s TERM ends an idle sandbox" exited "$(ctl inspect c1 | jget 'j["state"]')"
ctl start c1 >/dev/null
err=$(ctl rm c1 2>&1); rc=$?
check "rm of a running sandbox exits 125" 125 "$rc"
check "rm -f" c1 "$(ctl rm -f c1)"
check "rm: gone" "" "$(ctl ls -q)"

# --- a main command and its logs ----------------------------------------------------------------------------------
ctl create --name logger --rootfs "$rootfs" -- sh -c 'for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done' >/dev/null
out=$(timeout 30 "$ctl" --socket "$sock" logs -f logger); rc=$?
check "logs -f ends with the main command" 0 "$rc"
check "logs -f has it all" "line 1 line 2 line 3 line 4 line 5" "$(echo $out)"
check "logs --tail" "line 4 line 5" "$(echo $(ctl logs --tail 2 logger))"
check "a main command's end: exited (0)" "exited 0" \
  "$(ctl inspect logger | jget 'j["state"] + " " + str(j["exit_code"])')"
contains "ls shows the command" "sh -c 'for i in" "$(ctl ls)"
ctl rm logger >/dev/null

# --- run ----------------------------------------------------------------------------------------------------------
out=$(ctl run --rootfs "$rootfs" --name r1 --memory 32M -e GREETING=hi -- sh -c 'echo "$GREETING $(hostname)"; exit 7')
rc=$?
check "run: output" "hi r1" "$out"
check "run: exit code" 7 "$rc"
check "run: the sandbox is removed" "" "$(ctl ls -q)"
out=$(ctl run --rootfs "$rootfs" ls /no/such/dir 2>/dev/null); rc=$?
check "run: a failing command's status" 1 "$rc"
check "run: removed after a failure too" "" "$(ctl ls -q)"
out=$(echo in | ctl run --rootfs "$rootfs" --keep --name kept -i cat 2>"$tmp/err"); rc=$?
check "run -i --keep: output" in "$out"
check "run --keep keeps it" kept "$(ctl ls --json | jget 'j["sandboxes"][0]["name"]')"
ctl rm -f kept >/dev/null
"$ctl" --socket "$sock" run --rootfs "$rootfs" --name r2 -- sleep 60 &
run_pid=$!
i=0
# run is one sandbox.run: the sandbox is listed while the command runs, and no exec is recorded.
while [ "$(ctl ls --json | jget 'len(j["sandboxes"]) and j["sandboxes"][0]["state"]')" != running ] && [ $i -lt 100 ]; do
  sleep 0.1; i=$((i + 1))
done
check "run: no exec is recorded" 0 "$(ctl --json execs r2 | jget 'len(j["execs"])')"
kill -INT $run_pid
wait $run_pid; rc=$?
check "run: Ctrl-C exits 130" 130 "$rc"
# The connection's end makes sbxd kill the sandbox and remove it once it has ended.
i=0
while [ -n "$(ctl ls -q)" ] && [ $i -lt 100 ]; do
  sleep 0.1; i=$((i + 1))
done
check "run: and still removes the sandbox" "" "$(ctl ls -q)"

# --- mounts, disk, ttl, seccomp ----------------------------------------------------------------------------------
mkdir -p "$tmp/share"
echo shared >"$tmp/share/f"
ctl create --name m1 --rootfs "$rootfs" --mount "$tmp/share:/ro" --mount "$tmp/share:/rw:rw" --disk 16M \
  --seccomp unconfined --ttl 3 >/dev/null; rc=$?
check "create with mounts, disk, seccomp and ttl" 0 "$rc"
check "a mount is read-only by default" "shared fail" \
  "$(echo $(ctl exec m1 sh -c 'cat /ro/f; { echo x > /ro/g; } 2>/dev/null && echo ok || echo fail'))"
ctl exec m1 sh -c 'echo written > /rw/g'
check "a :rw mount is writable" written "$(cat "$tmp/share/g" 2>/dev/null)"
ctl exec m1 sh -c 'head -c 33554432 /dev/zero > /big' 2>/dev/null; rc=$?
check "--disk bounds the writable layer" 1 "$rc"
i=0
while [ -n "$(ctl ls -q)" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "--ttl removes the sandbox" "" "$(ctl ls -q)"

# --- events -------------------------------------------------------------------------------------------------------
"$ctl" --socket "$sock" --json events >"$tmp/events" 2>&1 &
ev_pid=$!
bg_pids="$bg_pids $ev_pid"
sleep 0.3
eid=$(ctl create --rootfs "$rootfs" --name ev)
ctl rm -f ev >/dev/null
i=0
while ! grep -q destroyed "$tmp/events" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill $ev_pid
types=$("$py" -c '
import json, sys
print(" ".join(e["type"] for e in map(json.loads, open(sys.argv[1])) if e["id"] == sys.argv[2]))' "$tmp/events" "$eid")
check "events: created, started, exited, destroyed" "created started exited destroyed" "$types"
out=$(ctl events --no-follow --history 2)
check "events --no-follow --history 2: two lines" 2 "$(echo "$out" | wc -l)"
contains "events --no-follow: the last one" "destroyed" "$out"

# --- apikey -------------------------------------------------------------------------------------------------------
out=$(ctl apikey create --tenant acme --name "ci key"); rc=$?
check "apikey create exits 0" 0 "$rc"
contains "apikey create says the key is shown once" "shown only this once" "$out"
key=$(echo "$out" | tail -n 1)
case $key in
  sbx_???????????????????????????????????????????) check "apikey create prints the key" ok ok ;;
  *) check "apikey create prints the key" "sbx_ and 43 characters" "$key" ;;
esac
kid=$(ctl --json apikey ls | jget '[k["id"] for k in j["keys"] if k["name"] == "ci key"][0]')
contains "apikey create names the id" "$kid" "$out"
check "the key verifies as its tenant" acme \
  "$("$py" -c 'import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": "apikey.verify", "params": {"key": sys.argv[2]}}) + "\n").encode())
print(json.loads(s.makefile().readline())["result"]["tenant"])' "$sock" "$key")"
qkey=$(ctl apikey create --tenant other -q); rc=$?
check "apikey create -q exits 0" 0 "$rc"
check "apikey create -q prints only the key" 1 "$(echo "$qkey" | wc -l)"
case $qkey in sbx_*) check "apikey create -q: the key" ok ok ;; *) check "apikey create -q: the key" "sbx_..." "$qkey" ;; esac
check "apikey create --json has the key" 47 "$(ctl --json apikey create --tenant acme | jget 'len(j["key"])')"
err=$(ctl apikey create 2>&1); rc=$?
check "apikey create without --tenant exits 125" 125 "$rc"
contains "and says --tenant is required" "--tenant is required" "$err"
out=$(ctl apikey ls)
contains "apikey ls has a header" "LAST USED" "$out"
contains "apikey ls shows the key's id" "$kid" "$out"
contains "apikey ls shows the name" "ci key" "$out"
lacks "apikey ls does not show the key" "$key" "$out"
lacks "apikey ls does not show the other key" "$qkey" "$out"
lacks "apikey ls --json does not show the key" "${key#sbx_}" "$(ctl --json apikey ls)"
check "apikey ls -q: three ids" 3 "$(ctl apikey ls -q | wc -l)"
check "apikey ls --tenant acme" 2 "$(ctl apikey ls -q --tenant acme | wc -l)"
contains "apikey ls --tenant acme has the key" "$kid" "$(ctl apikey ls -q --tenant acme)"
check "apikey ls --tenant nobody" "" "$(ctl apikey ls -q --tenant nobody)"
out=$(ctl apikey revoke "$kid"); rc=$?
check "apikey revoke exits 0" 0 "$rc"
check "apikey revoke says so" "$kid: revoked" "$out"
lacks "a revoked key is not listed" "$kid" "$(ctl apikey ls -q)"
err=$(ctl apikey revoke "$kid" 2>&1); rc=$?
check "apikey revoke of a revoked key exits 125" 125 "$rc"
check "and says there is no such key" "sbxctl: no API key '$kid'" "$err"
err=$(ctl apikey revoke 000000000000 2>&1); rc=$?
check "apikey revoke of an unknown id exits 125" 125 "$rc"
check "and names it" "sbxctl: no API key '000000000000'" "$err"
for id in $(ctl apikey ls -q); do ctl apikey revoke "$id" >/dev/null; done
check "apikey revoke of every key leaves none" "" "$(ctl apikey ls -q)"
types=$(ctl --json events --no-follow --history 100 | "$py" -c '
import json, sys
print(" ".join(e["type"] for e in map(json.loads, sys.stdin) if e["id"] == sys.argv[1]))' "$kid")
check "apikey: created and revoked are events" "apikey.created apikey.revoked" "$types"

# --- isolation options --------------------------------------------------------------------------------------------
map=$(ctl run --rootfs "$rootfs" -- cat /proc/self/uid_map)
case "$(echo "$map" | awk '{print $1 " " ($2 > 0) " " $3}')" in
  "0 1 65536") check "run: root inside is an unprivileged host uid" ok ok ;;
  *) check "run: root inside is an unprivileged host uid" "0 <host uid> 65536" "$map" ;;
esac
check "run -u 1000: no capabilities" "CapEff:	0000000000000000" "$(ctl run -u 1000 --rootfs "$rootfs" -- grep CapEff /proc/self/status)"
check "run --cap-drop ALL: root has none" "CapEff:	0000000000000000" \
  "$(ctl run --cap-drop ALL --rootfs "$rootfs" -- grep CapEff /proc/self/status)"
check "run --cap-drop NET_BIND_SERVICE" "CapEff:	00000000a00401fb" \
  "$(ctl run --cap-drop NET_BIND_SERVICE --rootfs "$rootfs" -- grep CapEff /proc/self/status)"
err=$(ctl run --read-only --rootfs "$rootfs" -- touch /etc/x 2>&1); rc=$?
check "run --read-only: a write fails" 1 "$rc"
contains "run --read-only: read-only file system" "Read-only file system" "$err"
check "run --userns host (root): the host's map" "0 0 4294967295" \
  "$(ctl run --userns host --rootfs "$rootfs" -- cat /proc/self/uid_map | awk '{print $1, $2, $3}')"
err=$(ctl run --userns shared --rootfs "$rootfs" -- true 2>&1); rc=$?
check "run --userns shared: usage error" 125 "$rc"
contains "run --userns shared: names the option" "--userns" "$err"
err=$(ctl run --device nope.example/x=y --rootfs "$rootfs" -- true 2>&1); rc=$?
check "run --device of an unknown CDI device exits 125" 125 "$rc"
contains "run --device: names the device" "nope.example/x=y" "$err"

# --- the daemon going away ----------------------------------------------------------------------------------------
stop_daemon
err=$(ctl ls 2>&1); rc=$?
check "daemon gone: 125" 125 "$rc"
contains "daemon gone: message" "sbxctl: cannot connect to sbxd at $sock: is the daemon running?" "$err"

test_summary
