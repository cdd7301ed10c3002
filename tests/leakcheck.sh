#!/bin/sh
# Runs after every other test: fails on anything of sbx's tests still on this machine — a mount, a cgroup, a run
# dir, a network link, nft table or network namespace, or a process running our init or probe. Each is a gap in some cleanup path.
set -u
leaks=$(
  {
    awk '$5 ~ /sbx/ { print "mount:   " $5 }' /proc/self/mountinfo
    find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d -name 'sbx-test*' 2>/dev/null | sed 's/^/cgroup:  /'
    find /run -maxdepth 1 -name 'sbx-test*' 2>/dev/null | sed 's/^/run dir: /'
    ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /sbx/ { print "link:    " $2 }'
    nft list tables 2>/dev/null | awk '/sbx/ { print "nft:     " $0 }'
    ip netns list 2>/dev/null | awk '/^sbxt-/ { print "netns:   " $1 }'
    for comm in /proc/[0-9]*/comm; do
      name=$(cat "$comm" 2>/dev/null) || continue
      pid=${comm#/proc/}
      pid=${pid%/comm}
      # A zombie has already exited: a monitor orphaned by a restarted sbxd is reaped by pid 1, which need not be
      # quick about it (on this kind of host, about once a second).
      state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
      case $name in
        sbx-init|sbx-probe|sbx-monitor|sbx-httpd) [ "$state" = Z ] || echo "process: $pid ($name)" ;;
      esac
      # A test's own sbxd (tests/daemon names its cgroup parent sbx-test-daemon-<pid>).
      if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- '--cgroup-parent-name sbx-test'; then
        echo "process: $pid (a test's sbxd)"
      fi
    done
  } 2>/dev/null
)
if [ -n "$leaks" ]; then
  echo "leakcheck: the test suite left these behind:"
  echo "$leaks"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "leakcheck: no mount, cgroup, run dir, link, nft table or process of the tests is left"
echo "1 passed, 0 failed"
exit 0
