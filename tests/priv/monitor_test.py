#!/usr/bin/env python3
"""sbx-monitor end to end, driven the way sbxd drives it: fork+exec with fd 3 a socketpair, the spec as the first
line, JSON lines back. Runs as root on the busybox rootfs.

    monitor_test.py SBX_MONITOR BUSYBOX_ROOTFS SOURCE_ROOT

Sandbox mode: the main command's output in the log file (and its rotation), the exit file, nothing left behind.
Exec mode: stdio, exit codes, CPU usage, signals and kill_tree requests from sbxd, the timeout killing a whole tree
(a daemonized descendant included), EOF on fd 3 killing the exec, background processes outliving a normal end.
The same again through a running sandbox monitor's exec socket (how sbxd starts execs), plus what only the socket has:
the request's fds list, its permissions, and an exec that runs while its sandbox ends.
Ends with "N passed, N failed" like the other suites.
"""
import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

MONITOR, ROOTFS, SOURCE = sys.argv[1], sys.argv[2], sys.argv[3]
PID = os.getpid()
RUN_ROOT = f"/run/sbx-test-mon-{PID}"
PARENT_NAME = f"sbx-test-mon-{PID}"
RUNTIME = {"run_root": RUN_ROOT,
           "cgroup": {"mode": "auto", "root": "/sys/fs/cgroup", "parent": "", "parent_name": PARENT_NAME},
           "setup_timeout_ms": 30000}
ENV = ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"]

passed = 0
failed = 0


def check(cond, what, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what} {detail}", flush=True)


def plan(sandbox_id, main=None):
    return {"id": sandbox_id, "hostname": sandbox_id, "root": {"lower_dirs": [ROOTFS]},
            "masked_paths": ["/proc/kcore", "/proc/keys"], "readonly_paths": ["/proc/sys"],
            "security": {"seccomp_profile": f"{SOURCE}/seccomp-profiles/default.json",
                         "rlimits": {"nofile": 1024}},
            "main": main}


def shell(script):
    return {"argv": ["/bin/sh", "-c", script], "env": ENV}


class Monitor:
    """One sbx-monitor child with its end of the socket."""

    def __init__(self, mode, spec, stdio=(None, None, None), args=()):
        """spec None: nothing is sent yet (a spare's prelude and spec are sent by the test)."""
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                for target, fd in enumerate(stdio):
                    if fd is not None:
                        os.dup2(fd, target)
                os.dup2(child.fileno(), 3) if child.fileno() != 3 else os.set_inheritable(3, True)
                os.closerange(4, 4096)
                os.execv(MONITOR, [MONITOR, mode, *args])
            finally:
                os._exit(127)
        child.close()
        self.buf = b""
        self.status = None
        if spec is not None:
            self.sock.sendall((json.dumps(spec) + "\n").encode())

    def line(self, timeout=30):
        """The next JSON line from the monitor, or None at EOF / timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        raw, self.buf = self.buf.split(b"\n", 1)
        return json.loads(raw)

    def send(self, obj):
        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def wait(self, timeout=30):
        """The monitor's exit status, or None if it is still running after `timeout`."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(st)
            elif time.monotonic() > deadline:
                return None
            else:
                time.sleep(0.01)
        return self.status

    def kill(self):
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()


class SocketExec:
    """One exec through a running sandbox monitor's exec socket, the way sbxd starts execs: the request line with the
    stdio fds attached (SCM_RIGHTS). Looks like a Monitor to the tests; wait() is the handler's exit status as the
    contract defines it: 0 once it has reported the end, 1 when it closed the connection without."""

    def __init__(self, sandbox_id, request, stdio=(None, None, None)):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(f"{RUN_ROOT}/{sandbox_id}/monitor.sock")
        names = [n for n, fd in zip(("stdin", "stdout", "stderr"), stdio) if fd is not None]
        request = dict(request, fds=names)
        socket.send_fds(self.sock, [(json.dumps(request) + "\n").encode()], [fd for fd in stdio if fd is not None])
        self.buf = b""
        self.status = None
        self.ended = False

    def line(self, timeout=30):
        msg = Monitor.line(self, timeout)
        if msg is not None and "exit_code" in msg:
            self.ended = True
        return msg

    def send(self, obj):
        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def wait(self, timeout=30):
        while self.status is None:
            try:
                msg = self.line(timeout)
            except OSError:
                msg = None
            if msg is None:
                self.status = 0 if self.ended else 1
        return self.status

    def kill(self):
        self.sock.close()


VIA = "exec monitor"  # or "exec socket": how start_exec reaches the sandbox


def start_exec(sandbox_id, process, timeout_ms=0, stdio=(None, None, None)):
    if VIA == "exec socket":
        return SocketExec(sandbox_id, {"process": process, "timeout_ms": timeout_ms}, stdio)
    return Monitor("exec", {"runtime": RUNTIME, "id": sandbox_id, "process": process, "timeout_ms": timeout_ms},
                   stdio)


def read_all(fd):
    out = b""
    while True:
        data = os.read(fd, 65536)
        if not data:
            return out.decode(errors="replace")
        out += data


def run_exec(sandbox_id, process, timeout_ms=0, stdin_data=None):
    """One exec through a monitor with stdio on pipes: (started line, end line, stdout, stderr, monitor status)."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    mon = start_exec(sandbox_id, process, timeout_ms, (in_r, out_w, err_w))
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    if stdin_data is not None:
        os.write(in_w, stdin_data)
    os.close(in_w)
    started = mon.line()
    end = mon.line(60) if started and started.get("started") else None
    out, err = read_all(out_r), read_all(err_r)
    os.close(out_r)
    os.close(err_r)
    status = mon.wait()
    return started, end, out, err, status


def sandbox_spec(sandbox_id, main=None, log_max=1 << 20, workdir=""):
    return {"runtime": RUNTIME, "plan": plan(sandbox_id, main), "log_path": f"{workdir}/{sandbox_id}.log",
            "log_max_bytes": log_max, "exit_path": f"{workdir}/{sandbox_id}.exit.json",
            "exec_socket": f"{RUN_ROOT}/{sandbox_id}/monitor.sock"}


def start_sandbox(sandbox_id, main=None, log_max=1 << 20, workdir=""):
    mon = Monitor("sandbox", sandbox_spec(sandbox_id, main, log_max, workdir))
    return mon, mon.line()


def cgroup_dirs(name):
    found = []
    for top in ("/sys/fs/cgroup",):
        for root, dirs, _ in os.walk(top):
            if os.path.basename(root) == name:
                found.append(root)
                dirs[:] = []
            elif root.count("/") > 8:
                dirs[:] = []
    return found


def test_sandbox_log_and_exit(workdir):
    script = "echo hello; echo oops >&2; exit 3"
    mon, ok = start_sandbox("mon-log", shell(script), workdir=workdir)
    check(ok is not None and ok.get("ok") is True, "sandbox mode reports ok", ok)
    if not ok or not ok.get("ok"):
        mon.kill()
        return
    check(ok["monitor_pid"] == mon.pid and ok["init_pid"] > 0 and ok["init_start_time"] > 0, "ok line fields", ok)
    check(mon.line(5) is None, "fd 3 is closed after the report")
    check(mon.wait(30) == 0, "sandbox monitor exits 0 when the main command ends", mon.status)
    with open(f"{workdir}/mon-log.log") as f:
        log = f.read()
    check(log == "hello\noops\n", "log holds stdout and stderr", repr(log))
    with open(f"{workdir}/mon-log.exit.json") as f:
        exit_info = json.load(f)
    check(exit_info["exit_code"] == 3 and exit_info["signal"] is None and exit_info["oom_killed"] is False,
          "exit file", exit_info)
    check(abs(exit_info["finished_at_ms"] - time.time() * 1000) < 60000, "exit file time", exit_info)
    check(not os.path.exists(f"{RUN_ROOT}/mon-log"), "run dir removed")
    check(not cgroup_dirs("mon-log"), "cgroup removed", cgroup_dirs("mon-log"))


def test_sandbox_log_rotation(workdir):
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i-abcdefghijklmnopqrstuvwxyz; i=$((i+1)); done"
    mon, ok = start_sandbox("mon-rot", shell(script), log_max=4096, workdir=workdir)
    check(ok is not None and ok.get("ok") is True, "rotation sandbox starts", ok)
    check(mon.wait(30) == 0, "rotation sandbox monitor exits 0", mon.status)
    log = open(f"{workdir}/mon-rot.log").read()
    old = open(f"{workdir}/mon-rot.log.1").read()
    check(len(log) <= 2048 and len(old) <= 2048, "each log file is at most half the cap", (len(log), len(old)))
    check(log.endswith("line-399-abcdefghijklmnopqrstuvwxyz\n"), "the newest output is kept", log[-60:])
    # Rotation happens between writes, so the two files hold whole lines, the previous file those just before.
    old_lines, new_lines = old.splitlines(), log.splitlines()
    number = lambda line: int(line.split("-")[1])  # noqa: E731
    check(old_lines and new_lines and number(old_lines[-1]) + 1 == number(new_lines[0]),
          "the previous file holds the lines just before", (old_lines[-1:], new_lines[:1]))
    with open(f"{workdir}/mon-rot.exit.json") as f:
        check(json.load(f)["exit_code"] == 0, "rotation sandbox exit code")


def test_sandbox_create_error(workdir):
    spec_plan = plan("mon-bad", shell("true"))
    spec_plan["root"]["lower_dirs"] = ["/nonexistent/rootfs"]
    spec = {"runtime": RUNTIME, "plan": spec_plan, "log_path": f"{workdir}/bad.log", "exit_path": f"{workdir}/x"}
    mon = Monitor("sandbox", spec)
    reply = mon.line()
    check(reply is not None and reply.get("ok") is False and "root.lower_dirs[0]" in reply["error"]["message"],
          "a failed create is reported with the field", reply)
    check(mon.wait() == 1, "a failed create exits 1")
    check(not os.path.exists(f"{RUN_ROOT}/mon-bad"), "a failed create leaves no run dir")
    mon2 = Monitor("exec", {"runtime": RUNTIME, "id": "mon-x", "process": {"argv": ["true"], "bogus": 1}})
    reply = mon2.line()
    check(reply is not None and "spec.process: unknown field 'bogus'" in reply.get("error", {}).get("message", ""),
          "a bad exec spec is reported naming the field", reply)
    check(mon2.wait() == 1, "a bad exec spec exits 1")


def test_spare(workdir):
    """`sbx-monitor sandbox --spare`: the prelude ({"runtime"}) first, then, without a time limit, the spec."""
    spare = Monitor("sandbox", None, args=["--spare"])
    spare.sock.shutdown(socket.SHUT_WR)
    check(spare.wait() == 0 and spare.line(1) is None, "a spare retired before its prelude exits 0 and says nothing",
          spare.status)

    spare = Monitor("sandbox", None, args=["--spare"])
    spare.send({"runtime": RUNTIME})
    check(spare.wait(0.5) is None, "a spare with its prelude waits for its spec")
    spare.sock.shutdown(socket.SHUT_WR)
    check(spare.wait() == 0 and spare.line(1) is None, "a spare retired after its prelude exits 0 and says nothing",
          spare.status)

    spare = Monitor("sandbox", None, args=["--spare"])
    spare.send({"runtime": RUNTIME})
    time.sleep(0.2)  # the runtime is open before the spec comes
    spare.send(sandbox_spec("mon-spare", shell("echo from-spare; exit 4"), workdir=workdir))
    ok = spare.line()
    check(ok is not None and ok.get("ok") is True and ok.get("monitor_pid") == spare.pid, "a spare runs its sandbox", ok)
    check(spare.wait() == 0, "the spare's sandbox monitor exits 0 when the main command ends", spare.status)
    with open(f"{workdir}/mon-spare.log") as f:
        check(f.read() == "from-spare\n", "the spare's sandbox logs its output")
    with open(f"{workdir}/mon-spare.exit.json") as f:
        check(json.load(f)["exit_code"] == 4, "the spare's sandbox exit code")
    check(not os.path.exists(f"{RUN_ROOT}/mon-spare") and not cgroup_dirs("mon-spare"),
          "the spare's sandbox leaves nothing behind")

    spare = Monitor("sandbox", None, args=["--spare"])
    spare.send({"runtime": RUNTIME})
    other = dict(sandbox_spec("mon-spare2", workdir=workdir), runtime=dict(RUNTIME, setup_timeout_ms=1234))
    spare.send(other)
    reply = spare.line()
    check(reply is not None and reply.get("ok") is False and
          "differs from the runtime the spare monitor opened" in reply["error"]["message"],
          "a spec whose runtime differs from the prelude's is refused", reply)
    check(spare.wait() == 1 and not os.path.exists(f"{RUN_ROOT}/mon-spare2"), "and exits 1 with nothing made",
          spare.status)

    spare = Monitor("sandbox", None, args=["--spare"])
    spare.send({"runtime": RUNTIME, "plan": {}})
    reply = spare.line()
    check(reply is not None and reply.get("ok") is False and "unknown field 'plan'" in reply["error"]["message"],
          "a prelude with more than the runtime is refused", reply)
    check(spare.wait() == 1, "a bad prelude exits 1", spare.status)

    usage = Monitor("exec", None, args=["--spare"])
    usage.sock.close()
    check(usage.wait() == 2, "--spare is for sandbox mode only", usage.status)


def test_sandbox_stdio(workdir):
    """A spec with "stdio" and fds (sandbox.run): the main command writes to those fds, not to a log."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    spec = sandbox_spec("mon-stdio", shell("echo to-out; echo to-err >&2; exit 5"), workdir=workdir)
    del spec["log_path"]
    spec["stdio"] = ["stdout", "stderr"]
    mon = Monitor("sandbox", None)
    socket.send_fds(mon.sock, [(json.dumps(spec) + "\n").encode()], [out_w, err_w])
    os.close(out_w)
    os.close(err_w)
    ok = mon.line()
    check(ok is not None and ok.get("ok") is True, "a sandbox with stdio fds starts", ok)
    check(read_all(out_r) == "to-out\n" and read_all(err_r) == "to-err\n",
          "its main command writes to the fds that came with the spec (EOF once it is gone)")
    os.close(out_r)
    os.close(err_r)
    check(mon.wait() == 0, "the stdio sandbox's monitor exits 0", mon.status)
    check(not os.path.exists(f"{workdir}/mon-stdio.log"), "no log is written")
    with open(f"{workdir}/mon-stdio.exit.json") as f:
        exit_info = json.load(f)
    check(exit_info["exit_code"] == 5 and "cpu_user_us" in exit_info and exit_info["peak_rss_bytes"] > 0,
          "the exit file has the status and what the command used", exit_info)

    r, w = os.pipe()
    spec = sandbox_spec("mon-stdio2", shell("true"), workdir=workdir)
    spec["stdio"] = ["stdout", "stderr"]
    mon = Monitor("sandbox", None)
    socket.send_fds(mon.sock, [(json.dumps(spec) + "\n").encode()], [w])
    os.close(w)
    os.close(r)
    reply = mon.line()
    check(reply is not None and reply.get("ok") is False and "spec.stdio names 2 fds, but 1 came" in
          reply["error"]["message"], "stdio names must match the fds that came", reply)
    check(mon.wait() == 1 and not os.path.exists(f"{RUN_ROOT}/mon-stdio2"), "and nothing is made", mon.status)

    spec = sandbox_spec("mon-stdio3", workdir=workdir)
    spec["stdio"] = ["stdout"]
    mon = Monitor("sandbox", spec)
    reply = mon.line()
    check(reply is not None and reply.get("ok") is False and "only a sandbox with a main command" in
          reply["error"]["message"], "stdio without a main command is refused", reply)
    check(mon.wait() == 1, "a refused stdio spec exits 1", mon.status)


def wait_for(cond, timeout=15):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pidof_sleep(sandbox_id):
    _, end, out, _, _ = run_exec(sandbox_id, shell("pidof sleep || true"))
    return out.split()


def test_exec_basics(sid):
    started, end, out, err, status = run_exec(sid, shell("echo out; echo err >&2; exit 7"))
    check(started is not None and started.get("started") is True and started.get("pid", 0) > 0, "started", started)
    check(end is not None and end["exit_code"] == 7 and end["signal"] is None, "exit code 7", end)
    check(end is not None and end["timed_out"] is False and end["oom_killed"] is False, "flags", end)
    check(end is not None and end["duration_us"] > 0 and end["peak_rss_bytes"] > 0, "duration and rss", end)
    check(out == "out\n" and err == "err\n", "stdout and stderr", (out, err))
    check(status == 0, "exec monitor exits 0", status)

    # The monitor ignores SIGINT, SIGHUP, SIGPIPE and blocks SIGTERM: none of that reaches the process.
    _, _, out, _, _ = run_exec(sid, {"argv": ["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"], "env": ENV})
    check(out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n", "no blocked or ignored signal", out)

    _, end, out, _, _ = run_exec(sid, {"argv": ["cat"], "env": ENV}, stdin_data=b"from stdin\n")
    check(out == "from stdin\n" and end and end["exit_code"] == 0, "stdin reaches the process", (out, end))

    spin = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"
    _, end, _, _, _ = run_exec(sid, shell(spin))
    check(end is not None and end["cpu_user_us"] > 0, "a spinner uses user CPU time", end)

    started, end, _, _, status = run_exec(sid, {"argv": ["/no/such/program"], "env": ENV})
    check(started is not None and started.get("error", {}).get("errno") == 2, "a missing program is an ENOENT error",
          started)
    check(status == 1, "a failed start exits 1", status)


def test_exec_requests(sid):
    out_r, out_w = os.pipe()
    mon = start_exec(sid, {"argv": ["sleep", "1000"], "env": ENV}, stdio=(None, out_w, None))
    os.close(out_w)
    started = mon.line()
    check(started is not None and started.get("started"), "sleep started", started)
    mon.send({"signal": 15})
    end = mon.line(10)
    check(end is not None and end["signal"] == 15 and end["exit_code"] is None, "{signal:15} ends the process", end)
    check(read_all(out_r) == "", "the monitor's stdout copy is closed: EOF")
    os.close(out_r)
    check(mon.wait() == 0, "exec monitor exits 0 after a signal")

    mon = start_exec(sid, shell("(setsid sleep 1000 &); sleep 1000"))
    check(bool(mon.line()), "tree started")
    time.sleep(0.3)
    mon.send({"kill_tree": True})
    end = mon.line(10)
    check(end is not None and end["signal"] == 9, "{kill_tree:true} kills the process", end)
    check(mon.wait() == 0, "exec monitor exits 0 after kill_tree")
    check(pidof_sleep(sid) == [], "kill_tree leaves no process of the tree", pidof_sleep(sid))


def test_exec_timeout_and_eof(sid):
    t0 = time.monotonic()
    started, end, _, _, status = run_exec(sid, shell("(setsid sleep 1000 &); sleep 1000"), timeout_ms=500)
    elapsed = time.monotonic() - t0
    check(end is not None and end["timed_out"] is True and end["signal"] == 9, "timeout kills", end)
    check(end is not None and 400000 <= end["duration_us"] < 10000000, "duration around the timeout", end)
    check(elapsed < 10 and status == 0, "timeout exec ends promptly", (elapsed, status))
    check(pidof_sleep(sid) == [], "the timeout killed the daemonized descendant too", pidof_sleep(sid))

    mon = start_exec(sid, shell("(setsid sleep 1000 &); sleep 1000"))
    check(bool(mon.line()), "cancel target started")
    time.sleep(0.3)
    mon.sock.close()
    if VIA == "exec monitor":
        check(mon.wait(15) == 1, "EOF on fd 3 ends the exec monitor", mon.status)
    check(wait_for(lambda: pidof_sleep(sid) == []), f"EOF on the {VIA}'s connection killed the whole tree",
          pidof_sleep(sid))


def test_exec_background_survives(sid):
    started, end, _, _, status = run_exec(sid, shell("sleep 1000 >/dev/null 2>&1 </dev/null & echo bg"))
    check(end is not None and end["exit_code"] == 0 and status == 0, "exec with a background child ends", end)
    check(len(pidof_sleep(sid)) == 1, "the background process outlives the exec", pidof_sleep(sid))
    run_exec(sid, shell("kill -9 $(pidof sleep)"))
    check(wait_for(lambda: pidof_sleep(sid) == []), "the background process is gone once killed", pidof_sleep(sid))


def exec_latency(sid, n=10):
    t0 = time.monotonic()
    for _ in range(n):
        run_exec(sid, {"argv": ["true"], "env": ENV})
    return (time.monotonic() - t0) / n * 1000


def test_exec_mode(workdir):
    sid = "mon-exec"
    mon, ok = start_sandbox(sid, None, workdir=workdir)
    check(ok is not None and ok.get("ok") is True, "idle sandbox starts", ok)
    if not ok or not ok.get("ok"):
        mon.kill()
        return
    global VIA
    try:
        for VIA in ("exec monitor", "exec socket"):
            test_exec_basics(sid)
            test_exec_requests(sid)
            test_exec_timeout_and_eof(sid)
            test_exec_background_survives(sid)
            print(f"exec through the {VIA}: {exec_latency(sid):.1f} ms per exec of /bin/true", flush=True)
        test_exec_socket_requests(sid)
        test_spare_handler(mon.pid, ok["init_pid"], sid)
        check(oct(os.stat(f"{RUN_ROOT}/{sid}/monitor.sock").st_mode & 0o777) == "0o600", "the exec socket is 0600")
        check(not nobody_can_connect(f"{RUN_ROOT}/{sid}/monitor.sock"), "another uid cannot connect to it")
        running = start_exec(sid, {"argv": ["sleep", "1000"], "env": ENV})
        check(bool(running.line()), "an exec runs while the sandbox ends")
    finally:
        os.kill(mon.pid, signal.SIGTERM)  # forwarded to init, which idles until SIGTERM
        check(mon.wait(30) == 0, "SIGTERM to the sandbox monitor ends the sandbox", mon.status)
        mon.kill()
    end = running.line(10)
    check(end is not None and end["signal"] == 9, "the sandbox's end ends its exec, which reports SIGKILL", end)
    check(running.wait() == 0, "and its handler exits after the report", running.status)
    with open(f"{workdir}/{sid}.exit.json") as f:
        exit_info = json.load(f)
    check(exit_info["exit_code"] == 0 and exit_info["signal"] is None, "idle sandbox exit file", exit_info)
    check(not os.path.exists(f"{RUN_ROOT}/{sid}") and not cgroup_dirs(sid), "idle sandbox removed",
          cgroup_dirs(sid))


def test_exec_socket_requests(sid):
    """What only the exec socket has: the request's fds list, checked against the fds that came."""
    r, w = os.pipe()
    bad = SocketExec(sid, {"process": {"argv": ["true"], "env": ENV}}, (None, w, None))
    bad.sock.close()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(f"{RUN_ROOT}/{sid}/monitor.sock")
    socket.send_fds(conn, [(json.dumps({"process": {"argv": ["true"]}, "fds": ["stdout", "stderr"]}) + "\n").encode()],
                    [w])
    reply = json.loads(conn.makefile().readline())
    check("request.fds names 2 fds, but 1 came with it" in reply.get("error", {}).get("message", ""),
          "fds that do not match the request's list are refused", reply)
    conn.close()
    for fds, what in ((["stdout", "stdout"], "named twice"), (["stdio"], "expected")):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(f"{RUN_ROOT}/{sid}/monitor.sock")
        conn.sendall((json.dumps({"process": {"argv": ["true"]}, "fds": fds}) + "\n").encode())
        reply = json.loads(conn.makefile().readline())
        check(what in reply.get("error", {}).get("message", "") and "request.fds[" in reply["error"]["message"],
              f"a bad fds list is refused naming the field: {fds}", reply)
        conn.close()
    os.close(r)
    os.close(w)


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_spare_handler(monitor_pid, init_pid, sid):
    """The monitor keeps one spare exec handler waiting; one that dies is replaced and execs go on working."""
    # The last exec's handler may still be on its way out while the monitor forks the next spare: wait until the
    # monitor's children are init and one spare twice in a row, a moment apart, before taking the spare to kill.
    def settled():
        first = children(monitor_pid)
        time.sleep(0.2)
        return len(first) == 2 and children(monitor_pid) == first
    check(wait_for(settled), "an idle sandbox monitor has init and one spare", children(monitor_pid))
    spares = [p for p in children(monitor_pid) if p != init_pid]
    check(len(spares) == 1, "one spare besides init", children(monitor_pid))
    if spares:
        os.kill(spares[0], signal.SIGKILL)
        t0 = time.monotonic()
        _, end, out, _, _ = run_exec(sid, shell("echo after"))
        check(end is not None and end["exit_code"] == 0 and out == "after\n",
              "an exec after the spare was killed still runs", (end, out))
        check(time.monotonic() - t0 < 10, "within the spare's replacement delay", time.monotonic() - t0)
        check(wait_for(lambda: len(children(monitor_pid)) == 2 and spares[0] not in children(monitor_pid)),
              "a new spare replaces the old one", children(monitor_pid))


def nobody_can_connect(path):
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            os._exit(0)
        except OSError:
            os._exit(1)
        finally:
            os._exit(2)
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st) == 0


def cleanup():
    for d in sorted(cgroup_dirs(PARENT_NAME), key=len, reverse=True):
        for root, dirs, _ in os.walk(d, topdown=False):
            try:
                os.rmdir(root)
            except OSError as e:
                print(f"cleanup: rmdir {root}: {e}")
    try:
        os.rmdir(RUN_ROOT)
    except OSError:
        pass


def main():
    if os.geteuid() != 0:
        print("monitor_test: must run as root")
        return 1
    workdir = tempfile.mkdtemp(prefix="sbx-monitor-test-")
    try:
        for test in (test_sandbox_log_and_exit, test_sandbox_log_rotation, test_sandbox_create_error, test_spare,
                     test_sandbox_stdio, test_exec_mode):
            try:
                test(workdir)
            except Exception as e:  # a crash of one test is a failure, the others still run
                check(False, f"{test.__name__} raised", repr(e))
    finally:
        cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
