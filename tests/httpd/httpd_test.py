#!/usr/bin/env python3
"""sbx-httpd end to end: a private sbxd (root, its own socket, state and run dirs, cgroup parent) that trusts uid
65534, and sbx-httpd running as that uid (setpriv, no other groups) on 127.0.0.1 and a free port, driven with
Python's http.client. API keys are made with sbxctl apikey.

    httpd_test.py SBXCTL SBXD SBX_MONITOR SBX_HTTPD BUSYBOX_ROOTFS SECCOMP_DIR

Run as root. Cleans up on every exit: sandboxes, the shims, sbxd, the cgroup parent, temp dirs.
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SHIM_UID = 65534
# Every route the shim serves, as (method, pattern): the OpenAPI document must list exactly these.
ROUTES = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/v1/openapi.json"),
    ("GET", "/v1/sandboxes"), ("POST", "/v1/sandboxes"),
    ("GET", "/v1/sandboxes/{id}"), ("DELETE", "/v1/sandboxes/{id}"),
    ("POST", "/v1/sandboxes/{id}/start"), ("POST", "/v1/sandboxes/{id}/stop"),
    ("POST", "/v1/sandboxes/{id}/restart"), ("POST", "/v1/sandboxes/{id}/exec"),
    ("GET", "/v1/sandboxes/{id}/logs"), ("GET", "/v1/sandboxes/{id}/files"), ("PUT", "/v1/sandboxes/{id}/files"),
    ("GET", "/v1/sandboxes/{id}/stats"), ("GET", "/v1/images"), ("GET", "/v1/images/{id}"),
    ("GET", "/v1/environments"), ("GET", "/v1/environments/{name}"),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_code(self):
        j = self.json()
        return j.get("error", {}).get("code") if isinstance(j, dict) else None


class Shim:
    """One sbx-httpd process as uid 65534."""

    def __init__(self, test, name, *flags):
        self.port = free_port()
        self.log_path = f"{test.tmp}/{name}.log"
        self.proc = subprocess.Popen(
            ["setpriv", f"--reuid={SHIM_UID}", f"--regid={SHIM_UID}", "--clear-groups", test.httpd,
             "--listen", f"127.0.0.1:{self.port}", "--socket", test.sock, "--heartbeat", "1", *flags],
            stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))
        for _ in range(100):
            try:
                if self.request("GET", "/healthz").status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"sbx-httpd did not come up:\n{self.log()}")

    def log(self):
        return open(self.log_path).read()

    def request(self, method, path, body=None, key=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if key is not None:
                h["Authorization"] = f"Bearer {key}"
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                h.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Test:
    def __init__(self, ctl, sbxd, monitor, httpd, rootfs, seccomp_dir):
        self.ctl, self.sbxd, self.monitor, self.rootfs, self.seccomp_dir = ctl, sbxd, monitor, rootfs, seccomp_dir
        pid = os.getpid()
        self.tmp = tempfile.mkdtemp(prefix="sbx-test-httpd-")
        os.chmod(self.tmp, 0o711)  # the shim's uid reaches the socket and its binary through it
        self.httpd = f"{self.tmp}/sbx-httpd"
        shutil.copy(httpd, self.httpd)  # the build tree need not be reachable by uid 65534
        os.chmod(self.httpd, 0o755)
        self.run_dir = f"/run/sbx-test-httpd-{pid}"
        self.cg_name = f"sbx-test-httpd-{pid}"
        self.sock = f"{self.tmp}/sbxd.sock"
        self.daemon = None
        self.shims = []
        self.passed = self.failed = 0

    # -- helpers --
    def check(self, what, expected, got):
        if expected == got:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}: expected {expected!r}, got {got!r}", flush=True)

    def sbxctl(self, *args, check=True):
        r = subprocess.run([self.ctl, "--socket", self.sock] + list(args), capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"sbxctl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def rpc(self, method, params=None):
        """One JSON-RPC call as root, straight to sbxd: {"result": ...} or {"error": ...}."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.sock)
            s.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}) + "\n").encode())
            f = s.makefile("rb")
            while True:
                msg = json.loads(f.readline())
                if msg.get("id") == 1:
                    return msg

    def new_key(self, tenant, name="test"):
        """(key, id) of a new API key for `tenant`."""
        key = self.sbxctl("apikey", "create", "--tenant", tenant, "--name", name, "-q").stdout.strip()
        listed = self.rpc("apikey.list", {"tenant": tenant})["result"]["keys"]
        ids = [k["id"] for k in listed if k.get("name") == name]
        return key, ids[-1]

    # -- setup and teardown --
    def start_daemon(self):
        with open(f"{self.tmp}/sbxd.toml", "w") as f:
            f.write(f'[daemon]\nsocket_group = "{SHIM_UID}"\nsocket_mode = "0660"\ntrusted_uids = [{SHIM_UID}]\n'
                    '[userns]\nfirst = 1630000000\ncount = 64\n')
        self.daemon = subprocess.Popen(
            [self.sbxd, "--config", f"{self.tmp}/sbxd.toml", "--socket", self.sock, "--state-dir",
             f"{self.tmp}/state", "--run-dir", self.run_dir, "--cgroup-parent-name", self.cg_name, "--monitor",
             self.monitor, "--seccomp-dir", self.seccomp_dir, "--rootfs-dir", self.rootfs],
            stdout=open(f"{self.tmp}/sbxd.log", "a"), stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.exists(self.sock) and self.sbxctl("info", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("sbxd did not come up:\n" + open(f"{self.tmp}/sbxd.log").read())

    def stop_daemon(self):
        self.daemon.terminate()
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()

    def shim(self, name, *flags):
        s = Shim(self, name, *flags)
        self.shims.append(s)
        return s

    def cleanup(self):
        for s in self.shims:
            s.stop()
        if self.daemon and self.daemon.poll() is None:
            for sid in self.sbxctl("ls", "-q", check=False).stdout.split():
                self.sbxctl("rm", "-f", sid, check=False)
            self.stop_daemon()
        subprocess.run(["find", "/sys/fs/cgroup", "-mindepth", "1", "-maxdepth", "7", "-depth", "-type", "d",
                        "-name", self.cg_name, "-exec", "rmdir", "{}", ";"], capture_output=True)
        subprocess.run(["rm", "-rf", self.tmp, self.run_dir])

    # -- the checks --
    def run(self):
        self.start_daemon()
        self.main = self.shim("httpd", "--auth-failures", "1000", "--rate", "1000", "--burst", "1000", "--max-body", "16M")
        self.key_a, self.key_a_id = self.new_key("tenant-a")
        self.key_b, _ = self.new_key("tenant-b")
        self.test_refuses_root()
        self.test_open_routes()
        self.test_openapi()
        self.test_auth()
        sid = self.test_lifecycle()
        self.test_tenants(sid)
        self.test_exec_stream(sid)
        self.test_exec_stream_client_gone(sid)
        self.test_files(sid)
        self.test_bad_requests(sid)
        self.test_metrics(sid)
        self.test_delete(sid)
        self.test_rate_limits()
        self.test_sbxd_restart()
        self.test_logs_have_no_keys()

    def test_refuses_root(self):
        r = subprocess.run([self.httpd, "--listen", f"127.0.0.1:{free_port()}", "--socket", self.sock],
                           capture_output=True, text=True, timeout=30)
        self.check("as root without --allow-root: exit 1", 1, r.returncode)
        self.check("as root: says why", True, "refusing to run as root" in r.stderr)

    def test_open_routes(self):
        self.check("healthz", 200, self.main.request("GET", "/healthz").status)
        ready = self.main.request("GET", "/readyz")
        self.check("readyz while sbxd answers", 200, ready.status)
        self.check("readyz carries sbxd's health", "ok", (ready.json() or {}).get("sbxd", {}).get("status"))

    def test_openapi(self):
        r = self.main.request("GET", "/v1/openapi.json")
        self.check("openapi: 200 without a key", 200, r.status)
        doc = r.json() or {}
        self.check("openapi: version 3.0", "3.0", doc.get("openapi", "")[:3])
        documented = {(m.upper(), p) for p, item in doc.get("paths", {}).items() for m in item
                      if m in ("get", "post", "put", "delete", "patch")}
        self.check("openapi: documents exactly the served routes", sorted(ROUTES), sorted(documented))
        # Each listed route is served: the router knows it (no route-level 404 or 405, whatever the handler says).
        for method, pattern in sorted(ROUTES):
            path = pattern.replace("{id}", "nosuch").replace("{name}", "nosuch")
            body = {} if method in ("POST", "PUT") else None
            got = self.main.request(method, path, body=b"" if method == "PUT" else body, key=self.key_a)
            routed = got.status != 405 and (got.json() or {}).get("error", {}).get("message") != "no such route"
            self.check(f"served: {method} {pattern}", True, routed)
        self.check("a path no route has: 404 not_found", (404, "not_found"),
                   (lambda r: (r.status, r.error_code()))(self.main.request("GET", "/v1/nothing", key=self.key_a)))
        r = self.main.request("PATCH", "/v1/sandboxes", key=self.key_a)
        self.check("a wrong method: 405 with Allow", (405, "method_not_allowed", "GET, POST"),
                   (r.status, r.error_code(), r.headers.get("Allow")))

    def test_auth(self):
        r = self.main.request("GET", "/v1/sandboxes")
        self.check("no key: 401 unauthorized", (401, "unauthorized"), (r.status, r.error_code()))
        bad = self.main.request("GET", "/v1/sandboxes", key="sbx_notakey")
        self.check("unknown key: 401 unauthorized", (401, "unauthorized"), (bad.status, bad.error_code()))
        key, kid = self.new_key("tenant-a", "to-revoke")
        self.check("a fresh key works", 200, self.main.request("GET", "/v1/sandboxes", key=key).status)
        self.sbxctl("apikey", "revoke", kid)
        revoked = self.main.request("GET", "/v1/sandboxes", key=key)
        self.check("revoked key: 401 at the next request", 401, revoked.status)
        self.check("revoked key: the same body as an unknown key", bad.body, revoked.body)
        wrong = self.main.request("GET", "/v1/sandboxes", headers={"Authorization": f"Basic {self.key_a}"})
        self.check("another scheme: 401", 401, wrong.status)

    def test_lifecycle(self):
        a = self.key_a
        r = self.main.request("POST", "/v1/sandboxes", key=a, body={
            "rootfs": self.rootfs, "name": "web", "cmd": ["sh", "-c", "echo started; exec sleep 3600"],
            "labels": {"app": "web"}})
        self.check("create: 201", 201, r.status)
        box = r.json() or {}
        sid = box.get("id", "")
        self.check("create: running in tenant-a", ("running", "tenant-a"), (box.get("state"), box.get("tenant")))
        self.check("create: Location", f"/v1/sandboxes/{sid}", r.headers.get("Location"))
        listed = self.main.request("GET", "/v1/sandboxes", key=a).json() or {}
        self.check("list: holds it", [sid], [s["id"] for s in listed.get("sandboxes", [])])
        filtered = self.main.request("GET", "/v1/sandboxes?label=app%3Dother", key=a).json() or {}
        self.check("list: label filter", [], filtered.get("sandboxes"))
        self.check("get by name", sid, (self.main.request("GET", "/v1/sandboxes/web", key=a).json() or {}).get("id"))
        ex = self.main.request("POST", f"/v1/sandboxes/{sid}/exec", key=a,
                               body={"cmd": "read x; echo out $x; echo err >&2; exit 3", "stdin": "in\n"})
        res = ex.json() or {}
        self.check("exec: JSON result", (200, 3, "out in\n", "err\n"),
                   (ex.status, res.get("exit_code"), res.get("stdout"), res.get("stderr")))
        stop = self.main.request("POST", f"/v1/sandboxes/{sid}/stop", key=a, body={"timeout": 5})
        self.check("stop: exited", (200, "exited"), (stop.status, (stop.json() or {}).get("state")))
        ex = self.main.request("POST", f"/v1/sandboxes/{sid}/exec", key=a, body={"argv": ["true"]})
        self.check("exec in a stopped sandbox: 409 invalid_state", (409, "invalid_state"), (ex.status, ex.error_code()))
        start = self.main.request("POST", f"/v1/sandboxes/{sid}/start", key=a)
        self.check("start: running", (200, "running"), (start.status, (start.json() or {}).get("state")))
        again = self.main.request("POST", f"/v1/sandboxes/{sid}/start", key=a)
        self.check("start while running: 409", 409, again.status)
        before = (start.json() or {}).get("started_at")
        restart = self.main.request("POST", f"/v1/sandboxes/{sid}/restart", key=a, body={"timeout": 5})
        rj = restart.json() or {}
        self.check("restart: running again, started anew", (200, "running", True),
                   (restart.status, rj.get("state"), rj.get("started_at") != before))
        stats = self.main.request("GET", f"/v1/sandboxes/{sid}/stats", key=a)
        self.check("stats: memory in use", (200, True),
                   (stats.status, (stats.json() or {}).get("memory_current", 0) > 0))
        logs = self.main.request("GET", f"/v1/sandboxes/{sid}/logs?tail=5", key=a)
        self.check("logs: the main command's output", (200, "started\n"), (logs.status, (logs.json() or {}).get("logs")))
        return sid

    def test_tenants(self, sid):
        b = self.key_b
        r = self.main.request("GET", f"/v1/sandboxes/{sid}", key=b)
        self.check("tenant-b: tenant-a's sandbox is 404", (404, "not_found"), (r.status, r.error_code()))
        self.check("tenant-b: not by name either", 404, self.main.request("GET", "/v1/sandboxes/web", key=b).status)
        listed = self.main.request("GET", "/v1/sandboxes", key=b).json() or {}
        self.check("tenant-b: its list is empty", [], listed.get("sandboxes"))
        ex = self.main.request("POST", f"/v1/sandboxes/{sid}/exec", key=b, body={"argv": ["true"]})
        self.check("tenant-b: no exec in it", 404, ex.status)
        rm = self.main.request("DELETE", f"/v1/sandboxes/{sid}?force=true", key=b)
        self.check("tenant-b: no delete of it", 404, rm.status)
        still = self.main.request("GET", f"/v1/sandboxes/{sid}", key=self.key_a)
        self.check("tenant-a's sandbox is still there", 200, still.status)
        t = self.main.request("POST", "/v1/sandboxes", key=b, body={"rootfs": self.rootfs, "tenant": "tenant-a"})
        self.check("a body cannot pick the tenant", (400, "invalid_params"), (t.status, t.error_code()))
        m = self.main.request("POST", "/v1/sandboxes", key=b, body={
            "rootfs": self.rootfs, "mounts": [{"source": "/etc", "destination": "/host"}]})
        self.check("host mounts: 403", (403, "permission_denied"), (m.status, m.error_code()))

    def read_events(self, resp, on_event=None):
        """(event, data, arrival time) of each event of an SSE response until it ends."""
        events, name, data = [], None, []
        while True:
            line = resp.fp.readline()
            if not line:
                return events
            line = line.decode().rstrip("\n")
            if line == "":
                if name is not None:
                    events.append((name, "\n".join(data), time.monotonic()))
                    if on_event:
                        on_event(events[-1])
                name, data = None, []
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])

    def test_exec_stream(self, sid):
        conn = http.client.HTTPConnection("127.0.0.1", self.main.port, timeout=120)
        try:
            conn.request("POST", f"/v1/sandboxes/{sid}/exec",
                         body=json.dumps({"cmd": "for i in $(seq 1 50); do echo $i; sleep 0.05; done; echo done >&2"}),
                         headers={"Authorization": f"Bearer {self.key_a}", "Accept": "text/event-stream",
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            self.check("sse: 200 text/event-stream", (200, "text/event-stream"),
                       (resp.status, resp.getheader("Content-Type", "").split(";")[0]))
            events = self.read_events(resp)
        finally:
            conn.close()
        out = "".join(json.loads(d)["data"] for e, d, _ in events if e == "stdout")
        err = "".join(json.loads(d)["data"] for e, d, _ in events if e == "stderr")
        self.check("sse: stdout 1..50 in order", "".join(f"{i}\n" for i in range(1, 51)), out)
        self.check("sse: stderr", "done\n", err)
        names = [e for e, _, _ in events]
        self.check("sse: the last event is exit", "exit", names[-1] if names else None)
        self.check("sse: exactly one exit event", 1, names.count("exit"))
        final = json.loads(events[-1][1]) if names and names[-1] == "exit" else {}
        self.check("sse: exit carries the result", 0, final.get("exit_code"))
        # Live: the first line came long before the end (50 x 50 ms of sleeps between them).
        first = next((t for e, _, t in events if e == "stdout"), None)
        self.check("sse: output arrives while the exec runs", True,
                   first is not None and events[-1][2] - first > 1.0)
        nf = self.main.request("POST", "/v1/sandboxes/nosuch/exec", key=self.key_a, body={"argv": ["true"]},
                               headers={"Accept": "text/event-stream"})
        self.check("sse: a missing sandbox is a 404 before any stream", (404, "not_found"), (nf.status, nf.error_code()))

    def sleepers(self, sid, marker):
        r = self.main.request("POST", f"/v1/sandboxes/{sid}/exec", key=self.key_a, body={"cmd": "ps -o args"})
        return [l for l in (r.json() or {}).get("stdout", "").splitlines() if marker in l and "ps -o" not in l]

    def test_exec_stream_client_gone(self, sid):
        conn = http.client.HTTPConnection("127.0.0.1", self.main.port, timeout=60)
        conn.request("POST", f"/v1/sandboxes/{sid}/exec", body=json.dumps({"argv": ["sleep", "313"]}),
                     headers={"Authorization": f"Bearer {self.key_a}", "Accept": "text/event-stream",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        self.check("gone: stream opened", 200, resp.status)
        deadline = time.monotonic() + 20
        while not self.sleepers(sid, "sleep 313") and time.monotonic() < deadline:
            time.sleep(0.2)
        self.check("gone: the exec runs", 1, len(self.sleepers(sid, "sleep 313")))
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        deadline = time.monotonic() + 20
        while self.sleepers(sid, "sleep 313") and time.monotonic() < deadline:
            time.sleep(0.2)
        self.check("gone: the exec is killed once the HTTP client left", [], self.sleepers(sid, "sleep 313"))

    def test_files(self, sid):
        data = random.randbytes(10 * 1024 * 1024 + 123)
        up = self.main.request("PUT", f"/v1/sandboxes/{sid}/files?path=/tmp/blob&mode=0600", body=data,
                               key=self.key_a, headers={"Content-Type": "application/octet-stream"})
        self.check("upload 10 MB", (200, len(data)), (up.status, (up.json() or {}).get("bytes")))
        down = self.main.request("GET", f"/v1/sandboxes/{sid}/files?path=/tmp/blob", key=self.key_a)
        self.check("download: octet-stream", "application/octet-stream", down.headers.get("Content-Type"))
        self.check("download: byte-identical", (len(data), True), (len(down.body), down.body == data))
        ls = self.main.request("POST", f"/v1/sandboxes/{sid}/exec", key=self.key_a,
                               body={"cmd": "stat -c '%a %s' /tmp/blob"})
        self.check("upload: mode and size inside", f"600 {len(data)}\n", (ls.json() or {}).get("stdout"))
        missing = self.main.request("GET", f"/v1/sandboxes/{sid}/files?path=/nope", key=self.key_a)
        self.check("a missing file: 404", 404, missing.status)
        big = self.main.request("PUT", f"/v1/sandboxes/{sid}/files?path=/tmp/big", body=b"x" * (17 << 20),
                                key=self.key_a)
        self.check("a body over max_body: 413 too_large", (413, "too_large"), (big.status, big.error_code()))

    def test_bad_requests(self, sid):
        r = self.main.request("POST", "/v1/sandboxes", body="{not json", key=self.key_a,
                              headers={"Content-Type": "application/json"})
        self.check("malformed JSON: 400 bad_request", (400, "bad_request"), (r.status, r.error_code()))
        r = self.main.request("POST", f"/v1/sandboxes/{sid}/exec", body={"argv": "notalist"}, key=self.key_a)
        self.check("a bad exec body: 400 invalid_params", (400, "invalid_params"), (r.status, r.error_code()))
        r = self.main.request("POST", "/v1/sandboxes", body={"rootfs": self.rootfs, "limits": {"memory": "lots"}},
                              key=self.key_a)
        self.check("params sbxd refuses: 400 invalid_params", (400, "invalid_params"), (r.status, r.error_code()))
        r = self.main.request("POST", "/v1/sandboxes", body={"rootfs": self.rootfs, "name": "web"}, key=self.key_a)
        self.check("a name in use: 409 conflict", (409, "conflict"), (r.status, r.error_code()))
        r = self.main.request("GET", f"/v1/sandboxes/{sid}/logs?tail=x", key=self.key_a)
        self.check("a bad query value: 400", 400, r.status)

    def test_metrics(self, sid):
        r = self.main.request("GET", "/metrics")
        text = r.body.decode()
        self.check("metrics: 200 text/plain", (200, "text/plain"), (r.status, r.headers.get("Content-Type", "")[:10]))
        for needle in ['sbx_http_requests_total{route="/v1/sandboxes/{id}",method="GET",status="404"}',
                       'sbx_http_requests_total{route="/v1/sandboxes",method="POST",status="201"} 1',
                       'sbx_http_request_duration_seconds_bucket{route="/v1/sandboxes/{id}/exec",le="+Inf"}',
                       'sbx_rpc_duration_seconds_count{method="sandbox.exec"}',
                       'sbx_rpc_duration_seconds_count{method="apikey.verify"}',
                       'sbx_exec_duration_seconds_count', 'sbx_up 1', 'sbx_sandboxes{state="running"} 1',
                       'sbx_oom_kills_total 0']:
            self.check(f"metrics: has {needle}", True, needle in text)
        execs = [l for l in text.splitlines() if l.startswith("sbx_execs_total ")]
        self.check("metrics: execs counted", True, bool(execs) and int(execs[0].split()[1]) >= 5)
        self.check("metrics: no raw ids in labels", False, sid in text or "nosuch" in text)

    def test_delete(self, sid):
        r = self.main.request("DELETE", f"/v1/sandboxes/{sid}", key=self.key_a)
        self.check("delete a running one without force: 409", 409, r.status)
        r = self.main.request("DELETE", f"/v1/sandboxes/{sid}?force=true", key=self.key_a)
        self.check("delete with force: 204", 204, r.status)
        self.check("deleted: 404", 404, self.main.request("GET", f"/v1/sandboxes/{sid}", key=self.key_a).status)

    def test_rate_limits(self):
        shim = self.shim("httpd-limited", "--rate", "0.5", "--burst", "3", "--auth-failures", "3",
                         "--auth-failure-window", "3")
        key_c, _ = self.new_key("tenant-c")
        got = [shim.request("GET", "/v1/sandboxes", key=key_c) for _ in range(4)]
        self.check("rate: the burst passes", [200, 200, 200], [g.status for g in got[:3]])
        self.check("rate: then 429 rate_limited", (429, "rate_limited"), (got[3].status, got[3].error_code()))
        retry = got[3].headers.get("Retry-After", "")
        self.check("rate: Retry-After in whole seconds >= 1", True, retry.isdigit() and int(retry) >= 1)
        self.check("rate: another key has its own bucket", 200,
                   shim.request("GET", "/v1/sandboxes", key=self.key_b).status)
        fails = [shim.request("GET", "/v1/sandboxes", key=f"bad{i}").status for i in range(3)]
        self.check("auth failures: 401 up to the limit", [401, 401, 401], fails)
        blocked = shim.request("GET", "/v1/sandboxes", key=self.key_b)
        self.check("auth failures: then 429, even with a good key", (429, "rate_limited"),
                   (blocked.status, blocked.error_code()))
        self.check("auth failures: Retry-After", True, blocked.headers.get("Retry-After", "").isdigit())
        time.sleep(3.2)
        self.check("auth failures: free again after the window", 200,
                   shim.request("GET", "/v1/sandboxes", key=self.key_b).status)
        shim.stop()

    def test_sbxd_restart(self):
        self.stop_daemon()
        r = self.main.request("GET", "/v1/sandboxes", key=self.key_a)
        self.check("sbxd down: 503 unavailable", (503, "unavailable"), (r.status, r.error_code()))
        self.check("sbxd down: readyz 503", 503, self.main.request("GET", "/readyz").status)
        self.check("sbxd down: healthz still 200", 200, self.main.request("GET", "/healthz").status)
        self.check("sbxd down: metrics say sbx_up 0", True,
                   "sbx_up 0" in self.main.request("GET", "/metrics").body.decode())
        self.start_daemon()
        # Every worker thread's old connection is dead now: whichever serves these must reconnect by itself.
        statuses = [self.main.request("GET", "/v1/sandboxes", key=self.key_a).status for _ in range(8)]
        self.check("sbxd back: the shim recovers", [200] * 8, statuses)
        self.check("sbxd back: readyz 200", 200, self.main.request("GET", "/readyz").status)

    def test_logs_have_no_keys(self):
        log = self.main.log()
        self.check("log: one line per request with the route pattern", True,
                   "GET /v1/sandboxes/{id} 404" in log)
        self.check("log: no API key", False, self.key_a in log or self.key_b in log)


def main():
    if os.geteuid() != 0:
        print("httpd_test: starts sbxd: run as root", file=sys.stderr)
        return 1
    t = Test(*sys.argv[1:7])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        t.run()
    except Exception as e:  # noqa: BLE001 - reported as a failure, then cleaned up
        t.failed += 1
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        if t.daemon:
            print(open(f"{t.tmp}/sbxd.log").read()[-3000:])
    finally:
        t.cleanup()
    print(f"{t.passed} passed, {t.failed} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
