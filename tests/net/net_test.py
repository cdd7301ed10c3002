#!/usr/bin/env python3
"""Bridge networking end to end, without a packet leaving this machine.

Two network namespaces of the test's own: "host", where a private sbxd runs, and "inet", its only uplink, which
stands in for the internet with documentation-range addresses (198.51.100.0/24), a DNS server and TCP echo
servers of this file's own (UDP is exercised through DNS: busybox's nc has no UDP). "inet" also answers on 169.254.169.254 and 10.200.0.1, so that only sbx's firewall
stands between a sandbox and the metadata address or a private network. Sandboxes are driven with sbxctl.

    net_test.py SBXCTL SBXD SBX_MONITOR BUSYBOX_ROOTFS SECCOMP_DIR
    net_test.py --serve        (inside "inet": the servers)
Run as root. Cleans up on every exit: sandboxes, sbxd, both namespaces, the cgroup parent, temp dirs.
"""
import json
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

INET_ADDR = "198.51.100.1"   # the uplink's far end: DNS and echo servers
HOST_ADDR = "198.51.100.2"   # sbxd's namespace
ALLOWED_IP = "198.51.100.10"  # api.example.test
OTHER_IP = "198.51.100.20"    # other.example.test
EXTRA_ADDRS = [ALLOWED_IP, OTHER_IP, "169.254.169.254", "10.200.0.1"]
NAMES = {"api.example.test": ALLOWED_IP, "other.example.test": OTHER_IP, "www.example.test": OTHER_IP}
ECHO_PORTS = [7, 25, 443]
SUBNET_GATEWAY = "10.66.0.1"


# ---- the fake internet's servers (run in "inet") ----------------------------------------------------------------

def dns_answer(query):
    qid, flags = struct.unpack("!HH", query[:4])
    pos, labels = 12, []
    while query[pos] != 0:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode().lower())
        pos += 1 + n
    qtype = struct.unpack("!H", query[pos + 1:pos + 3])[0]
    question = query[12:pos + 5]
    name = ".".join(labels)
    rd = flags & 0x0100
    if name not in NAMES:
        return struct.pack("!HHHHHH", qid, 0x8080 | rd | 3, 1, 0, 0, 0) + question
    if qtype != 1:
        return struct.pack("!HHHHHH", qid, 0x8080 | rd, 1, 0, 0, 0) + question
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(NAMES[name])
    return struct.pack("!HHHHHH", qid, 0x8080 | rd, 1, 1, 0, 0) + question + answer


class TcpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        line = self.request.makefile("rb").readline()
        local = self.request.getsockname()
        self.request.sendall(f"{local[0]}:{local[1]} {line.decode().strip()}\n".encode())


class ThreadingTcp(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve():
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind((INET_ADDR, 53))

    def dns_loop():
        while True:
            data, peer = dns.recvfrom(4096)
            try:
                dns.sendto(dns_answer(data), peer)
            except (IndexError, struct.error):
                pass
    threading.Thread(target=dns_loop, daemon=True).start()
    for port in ECHO_PORTS:
        server = ThreadingTcp(("0.0.0.0", port), TcpEcho)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    signal.sigwait([signal.SIGTERM, signal.SIGINT])


def enter(ns):
    """A command prefix that runs in namespace `ns`'s network only: `ip netns exec` would also remount /sys, and
    with it hide the cgroup hierarchies sbxd needs."""
    return ["nsenter", f"--net=/run/netns/{ns}", "--"]


# ---- the test ----------------------------------------------------------------------------------------------------

class Test:
    def __init__(self, ctl, sbxd, monitor, rootfs, seccomp_dir):
        self.ctl, self.sbxd, self.monitor, self.rootfs, self.seccomp_dir = ctl, sbxd, monitor, rootfs, seccomp_dir
        pid = os.getpid()
        self.host_ns, self.inet_ns = f"sbxt-host-{pid}", f"sbxt-inet-{pid}"
        self.tmp = tempfile.mkdtemp(prefix="sbx-test-net-")
        self.run_dir = f"/run/sbx-test-net-{pid}"
        self.cg_name = f"sbx-test-net-{pid}"
        self.sock = f"{self.tmp}/sbxd.sock"
        self.daemon = None
        self.servers = None
        self.passed = self.failed = 0

    # -- helpers --
    def check(self, what, expected, got):
        if expected == got:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}: expected {expected!r}, got {got!r}", flush=True)

    def sh(self, *cmd, ns=None, check=True, input=None, timeout=60):
        full = (enter(ns) if ns else []) + list(cmd)
        r = subprocess.run(full, capture_output=True, text=True, input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(full)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def sbxctl(self, *args, check=True):
        r = subprocess.run([self.ctl, "--socket", self.sock] + list(args), capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"sbxctl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def create(self, *args):
        return self.sbxctl("create", "--rootfs", self.rootfs, *args).stdout.strip()

    def in_sandbox(self, sid, script):
        r = self.sbxctl("exec", sid, "--", "sh", "-c", script, check=False)
        return r.returncode, r.stdout.strip()

    def tcp(self, sid, ip, port, line="hi"):
        """The echo server's reply through the sandbox's network, or '' when it could not connect."""
        return self.in_sandbox(sid, f"echo {line} | nc -w 2 {ip} {port}")[1]

    def nft(self):
        return self.sh("nft", "list", "ruleset", ns=self.host_ns).stdout

    def links(self):
        """The names of the links in sbxd's namespace."""
        out = self.sh("ip", "-o", "link", ns=self.host_ns).stdout
        return sorted(line.split(": ")[1].split("@")[0] for line in out.splitlines())

    def wait_veths_gone(self):
        """The kernel removes a sandbox's veth with its namespace, in the background: wait (up to 5 s) for it."""
        for _ in range(100):
            if not any(name.startswith("sbxv") for name in self.links()):
                return
            time.sleep(0.05)

    # -- setup and teardown --
    def setup(self):
        self.sh("ip", "netns", "add", self.host_ns)
        self.sh("ip", "netns", "add", self.inet_ns)
        self.sh("ip", "link", "add", "up0", "netns", self.host_ns, "type", "veth", "peer", "inet0", "netns",
                self.inet_ns)
        self.sh("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", "up0", ns=self.host_ns)
        self.sh("ip", "link", "set", "up0", "up", ns=self.host_ns)
        self.sh("ip", "link", "set", "lo", "up", ns=self.host_ns)
        self.sh("ip", "route", "add", "default", "via", INET_ADDR, ns=self.host_ns)
        self.sh("ip", "addr", "add", f"{INET_ADDR}/24", "dev", "inet0", ns=self.inet_ns)
        self.sh("ip", "link", "set", "inet0", "up", ns=self.inet_ns)
        self.sh("ip", "link", "set", "lo", "up", ns=self.inet_ns)
        for a in EXTRA_ADDRS:
            self.sh("ip", "addr", "add", f"{a}/32", "dev", "lo", ns=self.inet_ns)
        # Replies to the sandboxes' masqueraded traffic go back to the host namespace.
        self.sh("ip", "route", "add", "10.0.0.0/8", "via", HOST_ADDR, ns=self.inet_ns)
        self.servers = subprocess.Popen(enter(self.inet_ns) + [sys.executable, __file__, "--serve"],
                                        stdout=subprocess.PIPE, text=True)
        if self.servers.stdout.readline().strip() != "ready":
            raise RuntimeError("the fake internet's servers did not start")
        with open(f"{self.tmp}/sbxd.toml", "w") as f:
            f.write(f'[network]\ndns_servers = ["{INET_ADDR}"]\n[userns]\nfirst = 1620000000\ncount = 64\n')
        self.start_daemon()

    def start_daemon(self):
        self.daemon = subprocess.Popen(
            enter(self.host_ns) + [self.sbxd, "--config", f"{self.tmp}/sbxd.toml", "--socket",
             self.sock, "--state-dir", f"{self.tmp}/state", "--run-dir", self.run_dir, "--cgroup-parent-name",
             self.cg_name, "--monitor", self.monitor, "--seccomp-dir", self.seccomp_dir, "--rootfs-dir", self.rootfs],
            stdout=open(f"{self.tmp}/sbxd.log", "a"), stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.exists(self.sock) and self.sbxctl("info", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("sbxd did not come up:\n" + open(f"{self.tmp}/sbxd.log").read())

    def kill_daemon(self):
        self.daemon.kill()
        self.daemon.wait()
        os.unlink(self.sock)

    def cleanup(self):
        if self.daemon and self.daemon.poll() is None:
            for sid in self.sbxctl("ls", "-q", check=False).stdout.split():
                self.sbxctl("rm", "-f", sid, check=False)
            self.daemon.terminate()
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        if self.servers:
            self.servers.terminate()
            self.servers.wait()
        for ns in (self.host_ns, self.inet_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["find", "/sys/fs/cgroup", "-mindepth", "1", "-maxdepth", "7", "-depth", "-type", "d",
                        "-name", self.cg_name, "-exec", "rmdir", "{}", ";"], capture_output=True)
        subprocess.run(["rm", "-rf", self.tmp, self.run_dir])

    # -- the checks --
    def run(self):
        self.test_none()
        self.test_default_policy()
        self.test_cidr_allow_list()
        self.test_domain_allow_list()
        self.test_published_port()
        self.test_bad_requests()
        self.test_restart_after_sigkill()
        self.test_nothing_left()

    def test_none(self):
        sid = self.create("--net", "none")
        self.check("none: only lo", (0, "lo"), self.in_sandbox(sid, "ls /sys/class/net"))
        self.check("none: inspect says none", "none",
                   json.loads(self.sbxctl("inspect", sid).stdout)["network"]["mode"])
        self.sbxctl("rm", "-f", sid)

    def test_default_policy(self):
        a = self.create("--net", "bridge", "--block-port", "25")
        b = self.create("--net", "bridge", "--", "sh", "-c", "while true; do echo b | nc -l -p 80; done")
        ia = json.loads(self.sbxctl("inspect", a).stdout)["network"]
        ib = json.loads(self.sbxctl("inspect", b).stdout)["network"]["address"]
        self.check("bridge: an address in the subnet", True, ia["address"].startswith("10.66."))
        self.check("bridge: eth0 and lo", (0, "eth0 lo"), self.in_sandbox(a, "ls /sys/class/net | xargs"))
        self.check("bridge: resolv.conf names the gateway", (0, f"nameserver {SUBNET_GATEWAY}"),
                   self.in_sandbox(a, "cat /etc/resolv.conf"))
        self.check("bridge: reaches the internet (TCP)", f"{INET_ADDR}:7 hi", self.tcp(a, INET_ADDR, 7))
        # busybox's nc has no UDP: a lookup straight at the fake internet's DNS server is UDP through the NAT.
        self.check("bridge: reaches the internet (UDP)", True,
                   ALLOWED_IP in self.in_sandbox(a, f"nslookup api.example.test {INET_ADDR}")[1])
        self.check("bridge: names resolve through the forwarder", True,
                   ALLOWED_IP in self.in_sandbox(a, "nslookup api.example.test")[1])
        self.check("bridge: a blocked port is refused", "", self.tcp(a, INET_ADDR, 25))
        self.check("bridge: the metadata address is refused", "", self.tcp(a, "169.254.169.254", 7))
        self.check("bridge: a private network is refused", "", self.tcp(a, "10.200.0.1", 7))
        self.check("bridge: another sandbox is refused", "", self.tcp(a, ib, 80))
        listener = subprocess.Popen(enter(self.host_ns) + [sys.executable, "-c",
                                     "import socket,time\n"
                                     "s=[socket.create_server((a,2222)) for a in ('198.51.100.2','10.66.0.1')]\n"
                                     "time.sleep(60)"])
        time.sleep(0.3)
        self.check("bridge: the host's uplink address is refused", "", self.tcp(a, HOST_ADDR, 2222))
        self.check("bridge: the gateway (but for DNS) is refused", "", self.tcp(a, SUBNET_GATEWAY, 2222))
        listener.kill()
        listener.wait()
        stats = json.loads(self.sbxctl("--json", "stats", a).stdout)["network"]
        self.check("stats: the sandbox sent bytes", True, stats["tx_bytes"] > 100 and stats["tx_packets"] > 3)
        self.check("stats: the sandbox received bytes", True, stats["rx_bytes"] > 100 and stats["rx_packets"] > 3)
        self.check("stats table has the columns", True, "NET RX" in self.sbxctl("stats", a).stdout)
        self.sbxctl("rm", "-f", a, b)

    def test_cidr_allow_list(self):
        sid = self.create("--allow", f"{OTHER_IP}/32", "--allow", "198.51.100.0/28", "--allow-port", "443")
        self.check("allow-list: a listed address on a listed port", f"{ALLOWED_IP}:443 hi",
                   self.tcp(sid, ALLOWED_IP, 443))
        self.check("allow-list: another port is refused", "", self.tcp(sid, ALLOWED_IP, 7))
        self.check("allow-list: an address off the list is refused", "", self.tcp(sid, "198.51.100.30", 443))
        self.sbxctl("rm", "-f", sid)
        sid = self.create("--allow", "169.254.169.254/32")
        self.check("allow-list: a listed private address is reachable", "169.254.169.254:7 hi",
                   self.tcp(sid, "169.254.169.254", 7))
        self.check("allow-list: the rest of the internet is not", "", self.tcp(sid, INET_ADDR, 7))
        self.sbxctl("rm", "-f", sid)

    def test_domain_allow_list(self):
        sid = self.create("--allow-host", "api.example.test")
        rc, out = self.in_sandbox(sid, "nslookup api.example.test")
        self.check("allow-host: the allowed name resolves", True, rc == 0 and ALLOWED_IP in out)
        rc, out = self.in_sandbox(sid, "nslookup other.example.test")
        self.check("allow-host: another name does not resolve", True, rc != 0 and OTHER_IP not in out)
        self.check("allow-host: the allowed name's address connects", f"{ALLOWED_IP}:7 hi",
                   self.tcp(sid, "api.example.test", 7))
        self.check("allow-host: a direct connection elsewhere fails", "", self.tcp(sid, OTHER_IP, 7))
        self.sbxctl("rm", "-f", sid)

    def test_published_port(self):
        sid = self.create("-p", "18080:80", "--", "sh", "-c", "while true; do echo published | nc -l -p 80; done")
        time.sleep(0.3)
        r = self.sh(sys.executable, "-c",
                    "import socket\nc=socket.create_connection(('127.0.0.1',18080),timeout=5)\n"
                    "print(c.makefile().readline().strip())", ns=self.host_ns, check=False)
        self.check("publish: the host reaches the sandbox's port on 127.0.0.1", "published", r.stdout.strip())
        self.check("publish: inspect lists the port", 18080,
                   json.loads(self.sbxctl("inspect", sid).stdout)["network"]["ports"][0]["host_port"])
        r = self.sbxctl("create", "--rootfs", self.rootfs, "-p", "18080:80", check=False)
        self.check("publish: a host port taken by another sandbox is refused", True,
                   r.returncode != 0 and "published port" in r.stderr)
        self.sbxctl("rm", "-f", sid)

    def test_bad_requests(self):
        self.wait_veths_gone()
        before = self.links(), self.nft()
        for args, says in [(["--net", "none", "-p", "80:80"], "needs network mode"),
                           (["-p", "99999:80"], "not a port"),
                           (["--allow", "10.0.0.1/8"], "host bits"),
                           (["--allow-host", "bad_name!"], "host pattern"),
                           (["--net", "wifi"], "unknown network mode")]:
            r = self.sbxctl("create", "--rootfs", self.rootfs, *args, check=False)
            self.check(f"refused: {' '.join(args)}", (True, True), (r.returncode != 0, says in r.stderr))
        self.check("refused requests leave no link and no rule", before, (self.links(), self.nft()))

    def test_restart_after_sigkill(self):
        sid = self.create("--net", "bridge")
        self.kill_daemon()
        self.start_daemon()
        self.check("after SIGKILL and restart: still connected", f"{INET_ADDR}:7 again",
                   self.tcp(sid, INET_ADDR, 7, "again"))
        self.check("after restart: still refused the metadata address", "", self.tcp(sid, "169.254.169.254", 7))
        # A restart right after the stop: the previous run's veth may not be gone yet, and its name is the same.
        self.sbxctl("restart", "--time", "0.1", sid)
        self.check("sandbox restart: connected again", f"{INET_ADDR}:7 restarted", self.tcp(sid, INET_ADDR, 7, "restarted"))
        self.sbxctl("rm", "-f", sid)

    def test_nothing_left(self):
        self.check("no sandbox left", "", self.sbxctl("ls", "-q").stdout.strip())
        self.wait_veths_gone()
        self.check("no veth left", [], [n for n in self.links() if n.startswith("sbxv")])
        ruleset = self.nft()
        self.check("no sandbox chain left", False, "sb-" in ruleset or "in-" in ruleset)
        self.check("no map or set element left", False, "elements = " in ruleset)


def main():
    if sys.argv[1:] == ["--serve"]:
        return serve()
    if os.geteuid() != 0:
        print("net_test: creates namespaces and sandboxes: run as root", file=sys.stderr)
        return 1
    t = Test(*sys.argv[1:6])
    try:
        t.setup()
        t.run()
    except Exception as e:  # a broken setup or a hung command: report it as a failure, then clean up
        t.failed += 1
        print(f"FAIL: {e}", flush=True)
        print(open(f"{t.tmp}/sbxd.log").read() if os.path.exists(f"{t.tmp}/sbxd.log") else "", flush=True)
    finally:
        t.cleanup()
    print(f"{t.passed} passed, {t.failed} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
