// sbx-bench-daemon: the sbx side of bench/run's daemon benchmark. Talks to a running sbxd through the API client
// (api/client.h), as any client does; bench/run starts a private sbxd for it.
//
//   sbx-bench-daemon exec --socket S (--rootfs DIR | --image NAME) [--runs N] [--warmup N] [--prefix P]
//                    [--seccomp NAME] -- ARGV...
//     creates one idle sandbox (untimed), then times N sandbox.exec calls of ARGV in it (after N warm-up ones) by
//     the wall clock, from sending the request to reading the result; removes the sandbox.
//     Prints "warmup I: X ms" / "run I: X ms".
//   sbx-bench-daemon oneshot --socket S (--rootfs DIR | --image NAME) [--runs N] [--warmup N] [--prefix P]
//                    [--seccomp NAME] -- ARGV...
//     times sandbox.create (idle, started) -> sandbox.exec ARGV -> sandbox.remove, per run a new sandbox.
//     With --image the sandboxes start from that image of sbxd's store (sandbox.create's `image`; it must have no
//     entrypoint or cmd, so that the sandbox idles, as a root filesystem tarball's image has none).
//     Prints "run I: X ms create A exec B remove C" (the three calls' own milliseconds).
//   sbx-bench-daemon run --socket S (--rootfs DIR | --image NAME) [--runs N] [--warmup N] [--prefix P]
//                    [--seccomp NAME] [--network MODE] -- ARGV...
//     times sandbox.run of ARGV (one call: a new sandbox whose main command is ARGV, removed before the reply),
//     output collected in the result (stream false). Prints "run I: X ms".
//   sbx-bench-daemon memory --socket S (--rootfs DIR | --image NAME) [--count N] [--settle-ms N] [--prefix P]
//                    [--seccomp NAME]
//     measures sbxd's RSS and the host's /proc/meminfo with no sandbox, with N idle sandboxes and after removing
//     them, and per sandbox its monitor's RSS/PSS, its init's, and its cgroup's memory usage (sandbox.stats).
//     Prints one line "memory: {JSON}".
//   sbx-bench-daemon cleanup --socket S [--prefix P]
//     force-removes every sandbox whose name starts with P (what an interrupted run leaves).
//
// Every sandbox gets the limits the runtime benchmark gives its sandboxes (memory 256 MiB, pids 256, 1 vCPU), the
// named seccomp profile (default: "default") and hostname "sbx"; names are "<prefix>-<kind>-<n>" (default prefix:
// "sbxbench-<pid>"). Exits 1 on any error or non-zero exit of the command (after removing what it made), 2 on a
// usage error.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "api/client.h"
#include "base/error.h"
#include "bench/flags.h"
#include "base/file.h"

namespace {

using sbx::Result;
using sbx::api::Client;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMemoryMax = 256ull << 20;
constexpr uint64_t kPidsMax = 256;
constexpr double kVcpus = 1.0;
constexpr const char* kHostname = "sbx";
// How many times, and how far apart, /proc/meminfo and sbxd's RSS are read per state (the median is kept).
constexpr int kSamples = 5;
constexpr auto kSampleGap = std::chrono::milliseconds(200);
// The /proc/meminfo fields the memory mode reports (kB).
constexpr const char* kMeminfoFields[] = {"MemAvailable", "MemFree", "Shmem", "Slab", "SReclaimable", "SUnreclaim",
                                          "PageTables", "KernelStack", "Cached", "AnonPages"};

constexpr const char* kUsage =
    "usage: sbx-bench-daemon exec|oneshot|run --socket S (--rootfs DIR | --image NAME) [--runs N] [--warmup N]\n"
    "                        [--prefix P] [--seccomp NAME] [--network MODE] -- ARGV...\n"
    "       sbx-bench-daemon memory --socket S (--rootfs DIR | --image NAME) [--count N] [--settle-ms N] [--prefix P]\n"
    "                        [--seccomp NAME]\n"
    "       sbx-bench-daemon cleanup --socket S [--prefix P]\n";

struct Options {
  std::string mode;  // exec | oneshot | run | memory | cleanup
  std::string socket;
  std::string rootfs;
  std::string image;  // an image of sbxd's store instead of a root filesystem directory
  std::string seccomp = "default";
  std::string network;  // sandbox.create's network mode; empty: sbxd's default
  std::string prefix;  // sandbox names start with "<prefix>-"
  uint64_t runs = 20;
  uint64_t warmup = 3;
  uint64_t count = 200;
  uint64_t settle_ms = 2000;
  std::vector<std::string> argv;
};

using sbx::bench::take_count;
using sbx::bench::take_value;

Result<void> parse_flag(int argc, char** argv, int& i, Options& opts) {
  std::string_view arg = argv[i];
  if (arg == "--socket") {
    SBX_ASSIGN(opts.socket, take_value(argc, argv, i));
  } else if (arg == "--rootfs") {
    SBX_ASSIGN(opts.rootfs, take_value(argc, argv, i));
  } else if (arg == "--image") {
    SBX_ASSIGN(opts.image, take_value(argc, argv, i));
  } else if (arg == "--seccomp") {
    SBX_ASSIGN(opts.seccomp, take_value(argc, argv, i));
  } else if (arg == "--network") {
    SBX_ASSIGN(opts.network, take_value(argc, argv, i));
  } else if (arg == "--prefix") {
    SBX_ASSIGN(opts.prefix, take_value(argc, argv, i));
  } else if (arg == "--runs") {
    SBX_ASSIGN(opts.runs, take_count(argc, argv, i));
  } else if (arg == "--warmup") {
    SBX_ASSIGN(opts.warmup, take_count(argc, argv, i));
  } else if (arg == "--count") {
    SBX_ASSIGN(opts.count, take_count(argc, argv, i));
  } else if (arg == "--settle-ms") {
    SBX_ASSIGN(opts.settle_ms, take_count(argc, argv, i));
  } else {
    return sbx::make_error("unknown option '{}'", arg);
  }
  return sbx::ok();
}

Result<Options> parse_options(int argc, char** argv) {
  Options opts;
  if (argc < 2) {
    return sbx::make_error("no mode given");
  }
  opts.mode = argv[1];
  if (opts.mode != "exec" && opts.mode != "oneshot" && opts.mode != "run" && opts.mode != "memory" &&
      opts.mode != "cleanup") {
    return sbx::make_error("unknown mode '{}'", opts.mode);
  }
  int i = 2;
  for (; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      ++i;
      break;
    }
    SBX_TRY(parse_flag(argc, argv, i, opts));
  }
  opts.argv.assign(argv + i, argv + argc);
  if (opts.prefix.empty()) {
    opts.prefix = fmt::format("sbxbench-{}", ::getpid());
  }
  if (opts.socket.empty()) {
    return sbx::make_error("--socket is required");
  }
  if (opts.mode != "cleanup" && opts.rootfs.empty() == opts.image.empty()) {
    return sbx::make_error("give one of --rootfs and --image");
  }
  if ((opts.mode == "exec" || opts.mode == "oneshot" || opts.mode == "run") && opts.argv.empty()) {
    return sbx::make_error("no command given after --");
  }
  return opts;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// ---- the API calls ----

Result<json> call(Client& client, const std::string& method, json params) {
  auto r = client.call(method, std::move(params));
  if (!r.ok()) {
    return std::move(r).error().context(method);
  }
  return r;
}

json create_params(const Options& opts, const std::string& name) {
  json params = {{"name", name},
                 {"limits", {{"memory", kMemoryMax}, {"pids", kPidsMax}, {"vcpus", kVcpus}}},
                 {"seccomp", opts.seccomp},
                 {"hostname", kHostname}};
  if (!opts.network.empty()) {
    params["network"] = opts.network;
  }
  if (opts.image.empty()) {
    params["rootfs"] = opts.rootfs;
  } else {
    params["image"] = opts.image;
  }
  return params;
}

// Creates and starts an idle sandbox (no main command: its init waits for SIGTERM); returns its id.
Result<std::string> create_sandbox(Client& client, const Options& opts, const std::string& name) {
  SBX_ASSIGN(json sandbox, call(client, "sandbox.create", create_params(opts, name)));
  if (sandbox.value("state", "") != "running") {
    return sbx::make_error("sandbox '{}' is {} after sandbox.create, not running", name, sandbox.value("state", "?"));
  }
  return sandbox["id"].get<std::string>();
}

Result<void> remove_sandbox(Client& client, const std::string& id) {
  SBX_TRY_CTX(call(client, "sandbox.remove", {{"id", id}, {"force", true}}), "remove sandbox '{}'", id);
  return sbx::ok();
}

// Runs argv in the sandbox through sandbox.exec; fails unless it exits 0. Output is dropped (none expected).
Result<void> exec_in(Client& client, const std::string& id, const std::vector<std::string>& argv) {
  SBX_ASSIGN(json result, call(client, "sandbox.exec", {{"id", id}, {"argv", argv}}));
  if (!result["exit_code"].is_number_integer() || result["exit_code"].get<int>() != 0) {
    return sbx::make_error("exec in sandbox '{}': the command ended with exit code {}, signal {}", id,
                           result["exit_code"].dump(), result["signal"].dump());
  }
  return sbx::ok();
}

void print_run(uint64_t i, uint64_t warmup, double ms, const std::string& extra = "") {
  bool warm = i < warmup;
  fmt::print("{} {}: {:.3f} ms{}\n", warm ? "warmup" : "run", warm ? i + 1 : i - warmup + 1, ms, extra);
  std::fflush(stdout);
}

// ---- exec: N execs in one running sandbox ----

Result<void> time_execs(Client& client, const Options& opts, const std::string& id) {
  for (uint64_t i = 0; i < opts.warmup + opts.runs; ++i) {
    auto start = Clock::now();
    SBX_TRY(exec_in(client, id, opts.argv));
    print_run(i, opts.warmup, ms_since(start));
  }
  return sbx::ok();
}

Result<void> bench_exec(Client& client, const Options& opts) {
  SBX_ASSIGN(std::string id, create_sandbox(client, opts, opts.prefix + "-exec"));
  Result<void> timed = time_execs(client, opts, id);
  Result<void> removed = remove_sandbox(client, id);
  SBX_TRY(timed);
  return removed;
}

// ---- oneshot: create -> exec -> remove, a new sandbox per run ----

Result<void> oneshot_once(Client& client, const Options& opts, uint64_t i) {
  std::string name = fmt::format("{}-oneshot-{}", opts.prefix, i);
  auto start = Clock::now();
  SBX_ASSIGN(std::string id, create_sandbox(client, opts, name));
  double create_ms = ms_since(start);
  auto exec_start = Clock::now();
  Result<void> ran = exec_in(client, id, opts.argv);
  double exec_ms = ms_since(exec_start);
  auto remove_start = Clock::now();
  Result<void> removed = remove_sandbox(client, id);
  double remove_ms = ms_since(remove_start);
  double total = ms_since(start);
  SBX_TRY(ran);
  SBX_TRY(removed);
  print_run(i, opts.warmup, total, fmt::format(" create {:.3f} exec {:.3f} remove {:.3f}", create_ms, exec_ms,
                                               remove_ms));
  return sbx::ok();
}

Result<void> bench_oneshot(Client& client, const Options& opts) {
  for (uint64_t i = 0; i < opts.warmup + opts.runs; ++i) {
    SBX_TRY(oneshot_once(client, opts, i));
  }
  return sbx::ok();
}

// ---- run: one sandbox.run per run ----

Result<void> run_once(Client& client, const Options& opts, uint64_t i) {
  json params = create_params(opts, fmt::format("{}-run-{}", opts.prefix, i));
  params["argv"] = opts.argv;
  params["stream"] = false;
  auto start = Clock::now();
  SBX_ASSIGN(json result, call(client, "sandbox.run", std::move(params)));
  double total = ms_since(start);
  if (!result["exit_code"].is_number_integer() || result["exit_code"].get<int>() != 0) {
    return sbx::make_error("run {}: the command ended with exit code {}, signal {}", i, result["exit_code"].dump(),
                           result["signal"].dump());
  }
  if (!result.value("removed", false)) {
    return sbx::make_error("run {}: sbxd did not remove the sandbox", i);
  }
  print_run(i, opts.warmup, total);
  return sbx::ok();
}

Result<void> bench_run(Client& client, const Options& opts) {
  for (uint64_t i = 0; i < opts.warmup + opts.runs; ++i) {
    SBX_TRY(run_once(client, opts, i));
  }
  return sbx::ok();
}

// ---- memory ----

// "Key:   123 kB" lines (/proc/meminfo, /proc/PID/status, smaps_rollup) -> {Key: 123}.
Result<std::map<std::string, uint64_t>> read_kb_fields(const std::string& path) {
  SBX_ASSIGN(std::string text, sbx::read_file(path));
  std::map<std::string, uint64_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string_view line(text.data() + pos, (end == std::string::npos ? text.size() : end) - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !line.ends_with(" kB")) {
      continue;
    }
    auto value = sbx::parse_u64(line.substr(colon + 1, line.size() - 3 - colon - 1));
    if (value.ok()) {
      out[std::string(line.substr(0, colon))] = *value;
    }
  }
  return out;
}

Result<uint64_t> kb_field(const std::string& path, const std::string& key) {
  SBX_ASSIGN(auto fields, read_kb_fields(path));
  auto it = fields.find(key);
  if (it == fields.end()) {
    return sbx::make_error("no '{}' in {}", key, path);
  }
  return it->second;
}

template <typename T>
T median(std::vector<T> v) {
  if (v.empty()) {
    return T{};
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The median over kSamples reads of sbxd's VmRSS and the meminfo fields, one state of the machine.
Result<json> sample_state(pid_t daemon_pid) {
  std::map<std::string, std::vector<uint64_t>> seen;
  for (int i = 0; i < kSamples; ++i) {
    if (i > 0) {
      std::this_thread::sleep_for(kSampleGap);
    }
    SBX_ASSIGN(auto meminfo, read_kb_fields("/proc/meminfo"));
    for (const char* field : kMeminfoFields) {
      seen[field].push_back(meminfo[field]);
    }
    SBX_ASSIGN(uint64_t rss, kb_field(fmt::format("/proc/{}/status", daemon_pid), "VmRSS"));
    seen["sbxd_VmRSS"].push_back(rss);
  }
  json out = json::object();
  for (auto& [key, values] : seen) {
    out[key] = median(values);
  }
  return out;
}

// The children of `pid` (a sandbox monitor's: the sandbox's init and the spare exec handler it forks ahead of an exec).
std::vector<pid_t> children(pid_t pid) {
  std::vector<pid_t> out;
  auto text = sbx::read_file(fmt::format("/proc/{}/task/{}/children", pid, pid));
  for (size_t pos = 0; text.ok() && pos < text->size();) {
    size_t end = text->find(' ', pos);
    end = end == std::string::npos ? text->size() : end;
    auto n = sbx::parse_u64(text->substr(pos, end - pos));
    if (n.ok()) {
      out.push_back(static_cast<pid_t>(*n));
    }
    pos = end + 1;
  }
  return out;
}

struct ProcessMemory {
  uint64_t rss_kb = 0;
  uint64_t anon_kb = 0;
  uint64_t pss_kb = 0;
  uint64_t private_kb = 0;  // pages no other process maps: for a fork, what it costs beyond its parent
};

Result<ProcessMemory> process_memory(pid_t pid) {
  SBX_ASSIGN(auto status, read_kb_fields(fmt::format("/proc/{}/status", pid)));
  SBX_ASSIGN(auto rollup, read_kb_fields(fmt::format("/proc/{}/smaps_rollup", pid)));
  return ProcessMemory{status["VmRSS"], status["RssAnon"], rollup["Pss"],
                       rollup["Private_Clean"] + rollup["Private_Dirty"]};
}

struct SandboxMemory {
  std::vector<uint64_t> monitor_rss, monitor_anon, monitor_pss, init_rss, init_anon, init_pss, handlers_private,
      cgroup_bytes;
};

// One sandbox's monitor (from sandbox.inspect), its init (the monitor's child) and its cgroup (sandbox.stats).
Result<void> measure_sandbox(Client& client, const std::string& id, SandboxMemory& m) {
  SBX_ASSIGN(json sandbox, call(client, "sandbox.inspect", {{"id", id}}));
  pid_t monitor = sandbox.value("monitor_pid", 0);
  if (monitor <= 0) {
    return sbx::make_error("sandbox '{}': sandbox.inspect gave no monitor_pid", id);
  }
  SBX_ASSIGN(ProcessMemory mon, process_memory(monitor));
  m.monitor_rss.push_back(mon.rss_kb);
  m.monitor_anon.push_back(mon.anon_kb);
  m.monitor_pss.push_back(mon.pss_kb);
  pid_t init = sandbox.value("init_pid", 0);
  std::vector<pid_t> kids = children(monitor);
  if (init <= 0 || std::find(kids.begin(), kids.end(), init) == kids.end()) {
    return sbx::make_error("sandbox '{}': its init {} is not a child of its monitor {}", id, init, monitor);
  }
  SBX_ASSIGN(ProcessMemory ini, process_memory(init));
  m.init_rss.push_back(ini.rss_kb);
  m.init_anon.push_back(ini.anon_kb);
  m.init_pss.push_back(ini.pss_kb);
  // The rest are forks of the monitor (the spare exec handler): they share its pages until they write them.
  uint64_t handlers_kb = 0;
  for (pid_t kid : kids) {
    if (kid != init) {
      SBX_ASSIGN(ProcessMemory h, process_memory(kid));
      handlers_kb += h.private_kb;
    }
  }
  m.handlers_private.push_back(handlers_kb);
  SBX_ASSIGN(json stats, call(client, "sandbox.stats", {{"id", id}}));
  m.cgroup_bytes.push_back(stats.value("memory_current", uint64_t{0}));
  return sbx::ok();
}

json summarize(const std::vector<uint64_t>& v) {
  uint64_t sum = 0;
  for (uint64_t x : v) {
    sum += x;
  }
  return {{"median", median(v)}, {"min", v.empty() ? 0 : *std::min_element(v.begin(), v.end())},
          {"max", v.empty() ? 0 : *std::max_element(v.begin(), v.end())}, {"sum", sum}};
}

json describe(const SandboxMemory& m) {
  return {{"monitor_rss_kb", summarize(m.monitor_rss)}, {"monitor_anon_kb", summarize(m.monitor_anon)},
          {"monitor_pss_kb", summarize(m.monitor_pss)},  {"init_rss_kb", summarize(m.init_rss)},
          {"init_anon_kb", summarize(m.init_anon)},      {"init_pss_kb", summarize(m.init_pss)},
          {"handlers_private_kb", summarize(m.handlers_private)},
          {"cgroup_memory_bytes", summarize(m.cgroup_bytes)}};
}

// Creates opts.count idle sandboxes, appending their ids as it goes (so that a failure still removes them).
Result<void> create_idle(Client& client, const Options& opts, std::vector<std::string>& ids) {
  for (uint64_t i = 0; i < opts.count; ++i) {
    SBX_ASSIGN(std::string id, create_sandbox(client, opts, fmt::format("{}-idle-{}", opts.prefix, i)));
    ids.push_back(std::move(id));
  }
  return sbx::ok();
}

// The loaded state: the machine (after settling) and each sandbox's processes and cgroup.
Result<void> measure_loaded(Client& client, const Options& opts, pid_t daemon_pid,
                            const std::vector<std::string>& ids, json& out) {
  std::this_thread::sleep_for(std::chrono::milliseconds(opts.settle_ms));
  SBX_ASSIGN(out["loaded"], sample_state(daemon_pid));
  SandboxMemory per;
  for (const auto& id : ids) {
    SBX_TRY(measure_sandbox(client, id, per));
  }
  out["per_sandbox"] = describe(per);
  return sbx::ok();
}

// Creates opts.count idle sandboxes, measures the loaded state, and removes them again (also on failure).
Result<json> load_and_measure(Client& client, const Options& opts, pid_t daemon_pid) {
  std::vector<std::string> ids;
  json out = json::object();
  auto start = Clock::now();
  Result<void> done = create_idle(client, opts, ids);
  out["create_all_s"] = ms_since(start) / 1000;
  if (done.ok()) {
    done = measure_loaded(client, opts, daemon_pid, ids, out);
  }
  start = Clock::now();
  for (const auto& id : ids) {
    Result<void> removed = remove_sandbox(client, id);
    if (!removed.ok() && done.ok()) {
      done = std::move(removed);
    }
  }
  out["remove_all_s"] = ms_since(start) / 1000;
  SBX_TRY(done);
  return out;
}

Result<void> bench_memory(Client& client, const Options& opts) {
  SBX_ASSIGN(json info, call(client, "daemon.info", nullptr));
  pid_t daemon_pid = info.value("pid", 0);
  if (daemon_pid <= 0) {
    return sbx::make_error("daemon.info gave no pid");
  }
  if (info["sandboxes"].value("total", 0) != 0) {
    return sbx::make_error("sbxd holds {} sandboxes already; the memory mode needs an empty daemon",
                           info["sandboxes"].value("total", 0));
  }
  SBX_ASSIGN(json before, sample_state(daemon_pid));
  SBX_ASSIGN(json out, load_and_measure(client, opts, daemon_pid));
  std::this_thread::sleep_for(std::chrono::milliseconds(opts.settle_ms));
  SBX_ASSIGN(json after, sample_state(daemon_pid));
  out["count"] = opts.count;
  out["before"] = before;
  out["after"] = after;
  out["sbxd_pid"] = daemon_pid;
  out["samples"] = kSamples;
  out["settle_ms"] = opts.settle_ms;
  fmt::print("memory: {}\n", out.dump());
  return sbx::ok();
}

// ---- cleanup ----

Result<void> cleanup(Client& client, const Options& opts) {
  SBX_ASSIGN(json list, call(client, "sandbox.list", nullptr));
  std::string prefix = opts.prefix + "-";
  Result<void> all = sbx::ok();
  for (const auto& sandbox : list["sandboxes"]) {
    std::string name = sandbox.value("name", "");
    if (name.compare(0, prefix.size(), prefix) != 0) {
      continue;
    }
    Result<void> r = remove_sandbox(client, sandbox["id"].get<std::string>());
    if (r.ok()) {
      fmt::print("removed leftover sandbox {}\n", name);
    } else if (all.ok()) {
      all = std::move(r);
    }
  }
  return all;
}

Result<void> run(const Options& opts) {
  SBX_ASSIGN(Client client, Client::connect(opts.socket));
  if (opts.mode == "exec") {
    return bench_exec(client, opts);
  }
  if (opts.mode == "oneshot") {
    return bench_oneshot(client, opts);
  }
  if (opts.mode == "run") {
    return bench_run(client, opts);
  }
  if (opts.mode == "memory") {
    return bench_memory(client, opts);
  }
  return cleanup(client, opts);
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_options(argc, argv);
  if (!opts.ok()) {
    fmt::print(stderr, "sbx-bench-daemon: {}\n{}", opts.error().message(), kUsage);
    return 2;
  }
  Result<void> done = run(*opts);
  if (!done.ok()) {
    fmt::print(stderr, "sbx-bench-daemon: {}: {}\n", opts->mode, done.error().message());
    return 1;
  }
  return 0;
}
