// sandbox.exec: streamed output, exit codes and signals, stdin, env/cwd/user, timeouts that kill the whole tree,
// output limits, buffered output, 50 MB through a slow client with the daemon's memory flat, and concurrency.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "api/protocol.h"
#include "base/file.h"
#include "tests/daemon/fixture.h"

using namespace sbx;
using namespace sbx::itest;

namespace {

// Processes in the sandbox whose command line starts with `what` (not a shell whose -c script mentions it).
int count_processes(const std::string& id, const std::string& what) {
  std::istringstream ps(sh(id, "ps -o pid,args"));
  int n = 0;
  std::string pid;
  std::string args;
  while (ps >> pid && std::getline(ps >> std::ws, args)) {
    n += args.rfind(what, 0) == 0;
  }
  return n;
}

std::string all_bytes(int times) {
  std::string s;
  for (int t = 0; t < times; ++t) {
    for (int i = 0; i < 256; ++i) {
      s += static_cast<char>(i);
    }
  }
  return s;
}

// An exec run from another thread: no doctest macros here, errors are returned.
struct ThreadExec {
  std::string error;
  json result;
  std::string out;
};

ThreadExec thread_exec(const std::string& socket, const std::string& id, json params) {
  ThreadExec r;
  auto c = api::Client::connect(socket);
  if (!c.ok()) {
    r.error = c.error().message();
    return r;
  }
  timeval tv{kCallTimeoutS, 0};
  (void)::setsockopt(c->fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  params["id"] = id;
  auto res = c->call("sandbox.exec", std::move(params), [&](const std::string& method, const json& p) {
    if (method == "exec.output" && p.value("stream", "") == "stdout") {
      auto d = api::base64_decode(p.value("data_b64", ""));
      d.ok() ? void(r.out += *d) : void(r.error = "undecodable output");
    }
  });
  if (!res.ok()) {
    r.error = res.error().message();
  } else {
    r.result = std::move(*res);
  }
  return r;
}

}  // namespace

TEST_SUITE("daemon.exec") {

TEST_CASE("exec output streams as notifications before the result, which has the exit code") {
  Sandbox s;
  RawConnection raw(TestEnv::get().daemon().socket());
  raw.send(api::encode_request(1, "sandbox.exec",
                               {{"id", s.id()}, {"argv", {"sh", "-c", "echo one; echo two >&2; exit 7"}}}) +
           "\n");
  std::string out, err;
  int notifications = 0;
  std::string exec_id;
  json result;
  for (;;) {
    auto msg = raw.read_json();
    REQUIRE_MESSAGE(msg.has_value(), "the exec's response never came");
    if (msg->contains("id")) {
      REQUIRE((*msg)["id"] == 1);
      REQUIRE_MESSAGE(msg->contains("result"), msg->dump());
      result = (*msg)["result"];
      break;
    }
    REQUIRE((*msg)["method"] == "exec.output");
    const json& p = (*msg)["params"];
    ++notifications;
    exec_id = p["exec_id"].get<std::string>();
    auto data = api::base64_decode(p["data_b64"].get<std::string>());
    REQUIRE(data.ok());
    (p["stream"] == "stdout" ? out : err) += *data;
  }
  CHECK(notifications >= 2);
  CHECK(out == "one\n");
  CHECK(err == "two\n");
  CHECK(result["exec_id"] == exec_id);
  CHECK(result["exit_code"] == 7);
  CHECK(result["signal"].is_null());
  CHECK(result["timed_out"] == false);
  CHECK(result["truncated"] == false);
  CHECK(result["stdout_bytes"] == 4);
  CHECK(result["stderr_bytes"] == 4);
  CHECK(!result.contains("stdout_b64"));
  for (const char* key : {"duration_ms", "oom_killed", "cpu_user_us", "cpu_system_us", "peak_rss_bytes"}) {
    CHECK_MESSAGE(result.contains(key), "no " << std::string(key) << " in " << result.dump());
  }
  // Nothing of that exec comes after its result.
  raw.send(api::encode_request(2, "daemon.info", json()) + "\n");
  auto next = raw.read_json();
  REQUIRE(next.has_value());
  CHECK((*next)["id"] == 2);
}

TEST_CASE("an exec ended by a signal reports the signal and no exit code") {
  Sandbox s;
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", "kill -TERM $$"}}});
  REQUIRE(o.ok);
  CHECK(o.result["signal"] == SIGTERM);
  CHECK(o.result["exit_code"].is_null());
  ExecOutput ok = run_exec(s.id(), {{"argv", {"true"}}});
  REQUIRE(ok.ok);
  CHECK(ok.result["exit_code"] == 0);
  CHECK(ok.result["signal"].is_null());
}

TEST_CASE("a sandbox whose monitor was killed still runs execs, and its idle spare handler died with the monitor") {
  Sandbox s;
  const std::string sock = TestEnv::get().daemon().run_dir() + "/" + s.id() + "/monitor.sock";
  CHECK(run_exec(s.id(), {{"argv", {"true"}}}).ok);  // through the monitor's exec socket
  const pid_t monitor = s.inspect()["monitor_pid"].get<int>();
  const pid_t init = run_state(s.id())["init_pid"].get<int>();
  std::vector<pid_t> spares;
  // The handler of the exec above may still be finishing (it reaps and removes the exec's cgroup after replying):
  // the monitor is idle when init and one spare are all its children.
  CHECK(wait_until([&] {
    spares.clear();
    std::istringstream children(host_file(fmt::format("/proc/{}/task/{}/children", monitor, monitor)));
    for (pid_t pid; children >> pid;) {
      if (pid != init) {
        spares.push_back(pid);
      }
    }
    return spares.size() == 1;
  }));
  REQUIRE(::kill(monitor, SIGKILL) == 0);
  for (pid_t spare : spares) {
    CHECK(wait_until([&] { return !process_alive(spare); }));
  }
  // sbxd watches init itself now; the socket file is there, but nothing listens: it starts an exec monitor.
  CHECK(wait_until([&] {
    return TestEnv::get().daemon().log().find(s.id() + ": its monitor exited") != std::string::npos;
  }));
  CHECK(std::filesystem::exists(sock));
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", "echo still here"}}});
  REQUIRE(o.ok);
  CHECK(o.out == "still here\n");
  CHECK(o.result["exit_code"] == 0);
}

TEST_CASE("an exec of a program that does not exist fails with its errno") {
  Sandbox s;
  ExecOutput o = run_exec(s.id(), {{"argv", {"/no/such/program"}}});
  REQUIRE(!o.ok);
  CHECK(o.error.code == api::kSystemError);
  CHECK(o.error.data["errname"] == "ENOENT");
  CHECK(call_err("sandbox.exec", {{"id", s.id()}, {"argv", json::array()}}).code == api::kInvalidParams);
  CHECK(call_err("sandbox.exec", {{"id", "nosuchsandbox"}, {"argv", {"true"}}}).code == api::kNotFound);
}

TEST_CASE("stdin_b64 reaches the process, every byte value, then EOF") {
  Sandbox s;
  const std::string bytes = all_bytes(100);
  ExecOutput cat = run_exec(s.id(), {{"argv", {"cat"}}, {"stdin_b64", api::base64_encode(bytes)}});
  REQUIRE(cat.ok);
  CHECK(cat.result["exit_code"] == 0);
  CHECK(cat.out.size() == bytes.size());
  CHECK(cat.out == bytes);
  // More than a pipe holds: written while the process reads.
  const std::string big(3 << 20, 'z');
  ExecOutput wc = run_exec(s.id(), {{"argv", {"wc", "-c"}}, {"stdin_b64", api::base64_encode(big)}});
  REQUIRE(wc.ok);
  CHECK(wc.out == std::to_string(big.size()) + "\n");
  CHECK(call_err("sandbox.exec", {{"id", s.id()}, {"argv", {"cat"}}, {"stdin_b64", "not base64!"}}).code ==
        api::kInvalidParams);
}

TEST_CASE("env, cwd and user apply to the exec; the sandbox's are the defaults") {
  Sandbox s(json{{"env", {"BASE=1", "OVER=sandbox"}}});
  const std::string script = "echo $BASE $OVER $NEW; pwd; id -u; id -g; echo $HOME";
  ExecOutput d = run_exec(s.id(), {{"argv", {"sh", "-c", script}}});
  REQUIRE(d.ok);
  CHECK(d.out == "1 sandbox\n/\n0\n0\n/root\n");
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", script}},
                                   {"env", {"OVER=exec", "NEW=2"}},
                                   {"cwd", "/tmp"},
                                   {"user", "1000:1001"}});
  REQUIRE(o.ok);
  CHECK(o.out == "1 exec 2\n/tmp\n1000\n1001\n/\n");
  ExecOutput n = run_exec(s.id(), {{"argv", {"id", "-u"}}, {"user", 4242}});
  REQUIRE(n.ok);
  CHECK(n.out == "4242\n");

  Sandbox u(json{{"user", "1000"}, {"cwd", "/tmp"}});
  ExecOutput du = run_exec(u.id(), {{"argv", {"sh", "-c", "id -u; pwd"}}});
  REQUIRE(du.ok);
  CHECK(du.out == "1000\n/tmp\n");
}

TEST_CASE("a timeout kills the exec's whole tree, background and setsid'd processes included") {
  Sandbox s;
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", "sleep 1000 & setsid sleep 1000 & sleep 1000"}},
                                   {"timeout", 1}});
  REQUIRE(o.ok);
  CHECK(o.result["timed_out"] == true);
  CHECK(o.result["exit_code"].is_null());
  CHECK(o.result["signal"] == SIGKILL);
  CHECK(wait_until([&] { return count_processes(s.id(), "sleep 1000") == 0; }));
  json execs = call_ok("execs.list", {{"id", s.id()}})["execs"];
  bool recorded = false;
  for (const auto& e : execs) {
    recorded = recorded || (e["exec_id"] == o.result["exec_id"] && e["timed_out"] == true);
  }
  CHECK(recorded);
}

TEST_CASE("an exec that leaves a process behind (holding its stdout) still returns; the process runs on") {
  Sandbox s;
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", "echo started; sleep 1000 &"}}});
  REQUIRE(o.ok);
  CHECK(o.result["exit_code"] == 0);
  CHECK(o.out == "started\n");
  CHECK(count_processes(s.id(), "sleep 1000") == 1);
}

TEST_CASE("a client that hangs up ends its exec, whole tree") {
  Sandbox s;
  {
    RawConnection raw(TestEnv::get().daemon().socket());
    raw.send(api::encode_request(1, "sandbox.exec",
                                 {{"id", s.id()}, {"argv", {"sh", "-c", "sleep 1000 & sleep 1000"}}}) + "\n");
    REQUIRE(wait_until([&] { return count_processes(s.id(), "sleep 1000") == 2; }));
  }  // hung up
  CHECK(wait_until([&] { return count_processes(s.id(), "sleep 1000") == 0; }));
  CHECK(sh(s.id(), "echo alive") == "alive\n");
}

TEST_CASE("output_limit passes on that many bytes, reads and drops the rest, and sets truncated") {
  Sandbox s;
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", "head -c 100000 /dev/zero; echo tail >&2"}},
                                   {"output_limit", 1000}});
  REQUIRE(o.ok);
  CHECK(o.out.size() + o.err.size() == 1000);
  CHECK(o.result["truncated"] == true);
  CHECK(o.result["stdout_bytes"] == 100000);
  CHECK(o.result["exit_code"] == 0);
  ExecOutput k = run_exec(s.id(), {{"argv", {"head", "-c", "5000", "/dev/zero"}}, {"output_limit", "1K"}});
  REQUIRE(k.ok);
  CHECK(k.out.size() == 1024);
  ExecOutput fits = run_exec(s.id(), {{"argv", {"echo", "small"}}, {"output_limit", 6}});
  REQUIRE(fits.ok);
  CHECK(fits.out == "small\n");
  CHECK(fits.result["truncated"] == false);
  auto err = call_err("sandbox.exec", {{"id", s.id()}, {"argv", {"true"}}, {"output_limit", "2T"}});
  CHECK(err.code == api::kLimitExceeded);
}

TEST_CASE("stream=false returns the output in the result and sends no notifications") {
  Sandbox s;
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", "echo out; echo err >&2; exit 2"}}, {"stream", false}});
  REQUIRE(o.ok);
  CHECK(o.notifications == 0);
  CHECK(o.result["exit_code"] == 2);
  auto out = api::base64_decode(o.result.value("stdout_b64", "?"));
  auto err = api::base64_decode(o.result.value("stderr_b64", "?"));
  REQUIRE(out.ok());
  REQUIRE(err.ok());
  CHECK(*out == "out\n");
  CHECK(*err == "err\n");
  ExecOutput limited = run_exec(s.id(), {{"argv", {"head", "-c", "10000", "/dev/zero"}}, {"stream", false},
                                         {"output_limit", 100}});
  REQUIRE(limited.ok);
  auto l = api::base64_decode(limited.result.value("stdout_b64", "?"));
  REQUIRE(l.ok());
  CHECK(l->size() == 100);
  CHECK(limited.result["truncated"] == true);
}

TEST_CASE("an exec that outgrows the sandbox's memory limit is OOM-killed and says so") {
  Sandbox s(json{{"limits", {{"memory", "32M"}}}});
  ExecOutput o = run_exec(s.id(), {{"argv", {"sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo no"}}});
  REQUIRE(o.ok);
  CHECK(o.result["oom_killed"] == true);
  CHECK(o.result["signal"] == SIGKILL);
  CHECK(o.out.empty());
  CHECK(call_ok("sandbox.stats", {{"id", s.id()}})["oom_kills"].get<uint64_t>() >= 1);
  CHECK(sh(s.id(), "echo survived") == "survived\n");  // the sandbox itself lives on
}

TEST_CASE("a huge timeout is no timeout (or refused as invalid params), never a confusing system error") {
  Sandbox s;
  ExecOutput o = run_exec(s.id(), {{"argv", {"echo", "ok"}}, {"timeout", 1e300}});
  if (o.ok) {
    CHECK(o.result["timed_out"] == false);
    CHECK(o.out == "ok\n");
  } else {
    CHECK_MESSAGE(o.error.code == api::kInvalidParams, o.error.code << ": " << o.error.message);
    CHECK(o.error.message.find("timeout") != std::string::npos);
  }
  CHECK(call_err("sandbox.exec", {{"id", s.id()}, {"argv", {"true"}}, {"timeout", -1}}).code ==
        api::kInvalidParams);
}

TEST_CASE("removing a sandbox ends the execs running in it, which report SIGKILL") {
  Sandbox s;
  const std::string socket = TestEnv::get().daemon().socket();
  const std::string id = s.id();
  ThreadExec result;
  std::thread t([&] { result = thread_exec(socket, id, {{"argv", {"sh", "-c", "echo hi; sleep 1000"}}}); });
  bool running = wait_until([&] { return count_processes(id, "sleep 1000") == 1; });
  CHECK(running);
  CHECK(call_ok("sandbox.remove", {{"id", id}, {"force", true}}) == json::object());
  t.join();
  CHECK_MESSAGE(result.error.empty(), result.error);
  CHECK(result.out == "hi\n");
  CHECK(result.result["signal"] == SIGKILL);
  CHECK(call_ok("daemon.info").value("execs_running", -1) == 0);
}

TEST_CASE("50 MB of stdout arrive intact through a slow client while sbxd's memory stays flat") {
  Sandbox s;
  const pid_t daemon = TestEnv::get().daemon().pid();
  // Reset the daemon's peak RSS, so VmHWM shows this test's peak only.
  REQUIRE(write_file(fmt::format("/proc/{}/clear_refs", daemon), "5").ok());
  const uint64_t rss_before = proc_status_bytes(daemon, "VmRSS");
  const std::string pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";  // 63 + "\n"
  const std::string line = pattern + "\n";
  constexpr uint64_t kTotal = 50ull << 20;
  uint64_t received = 0;
  uint64_t mismatches = 0;
  uint64_t first_mismatch = 0;
  uint64_t rss_max = rss_before;
  int notifications = 0;
  const auto start = std::chrono::steady_clock::now();
  auto c = connect();
  auto r = c.call("sandbox.exec",
                  {{"id", s.id()}, {"argv", {"sh", "-c", fmt::format("yes {} | head -c {}", pattern, kTotal)}}},
                  [&](const std::string& method, const json& p) {
                    if (method != "exec.output") {
                      return;
                    }
                    auto data = api::base64_decode(p["data_b64"].get<std::string>());
                    REQUIRE(data.ok());
                    for (size_t i = 0; i < data->size(); ++i) {
                      if ((*data)[i] != line[(received + i) % line.size()]) {
                        first_mismatch = mismatches++ == 0 ? received + i : first_mismatch;
                      }
                    }
                    received += data->size();
                    if (++notifications % 8 == 0) {
                      rss_max = std::max(rss_max, proc_status_bytes(daemon, "VmRSS"));
                    }
                    // Slow at first: the daemon must stop reading the pipe rather than buffer.
                    if (std::chrono::steady_clock::now() - start < std::chrono::seconds(4)) {
                      std::this_thread::sleep_for(std::chrono::milliseconds(40));
                    }
                  });
  REQUIRE_MESSAGE(r.ok(), r.error().message());
  CHECK(received == kTotal);
  CHECK_MESSAGE(mismatches == 0, mismatches << " bytes differ, the first at offset " << first_mismatch);
  CHECK((*r)["stdout_bytes"] == kTotal);
  CHECK((*r)["truncated"] == false);
  CHECK((*r)["exit_code"] == 0);
  const uint64_t hwm = proc_status_bytes(daemon, "VmHWM");
  MESSAGE("sbxd RSS before " << (rss_before >> 10) << " KiB, sampled max " << (rss_max >> 10) << " KiB, peak "
                             << (hwm >> 10) << " KiB, " << notifications << " notifications");
  CHECK(rss_max - rss_before < (16ull << 20));
  CHECK(hwm - rss_before < (16ull << 20));
}

TEST_CASE("20 concurrent execs on 20 connections all succeed with their own output") {
  Sandbox s;
  const std::string socket = TestEnv::get().daemon().socket();
  constexpr int kExecs = 20;
  std::vector<ThreadExec> results(kExecs);
  std::vector<std::thread> threads;
  for (int i = 0; i < kExecs; ++i) {
    threads.emplace_back([&, i] {
      results[i] = thread_exec(socket, s.id(),
                               {{"argv", {"sh", "-c", "echo start-$N; sleep 1; head -c 100000 /dev/zero | wc -c; "
                                                      "echo end-$N; exit $N"}},
                                {"env", {fmt::format("N={}", i)}}});
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < kExecs; ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(results[i].error.empty(), results[i].error);
    CHECK(results[i].out == fmt::format("start-{}\n100000\nend-{}\n", i, i));
    CHECK(results[i].result["exit_code"] == i);
  }
}

TEST_CASE("several calls in flight on one connection are answered by id, in the order they finish") {
  Sandbox s;
  RawConnection raw(TestEnv::get().daemon().socket());
  raw.send(api::encode_request(1, "sandbox.exec", {{"id", s.id()}, {"argv", {"sh", "-c", "sleep 3; echo done"}}}) +
           "\n" + api::encode_request(2, "daemon.info", json()) + "\n");
  std::vector<int> order;
  while (order.size() < 2) {
    auto msg = raw.read_json();
    REQUIRE(msg.has_value());
    if (msg->contains("id")) {
      REQUIRE_MESSAGE(msg->contains("result"), msg->dump());
      order.push_back((*msg)["id"].get<int>());
    }
  }
  CHECK(order == std::vector<int>{2, 1});
}

}  // TEST_SUITE
