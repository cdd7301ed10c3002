// sbx-bench-oneshot: times one-shot sandboxes through the runtime API, the sbx side of bench/run.
//
// Each run: build the plan (untimed), then time create(plan) -> sandbox.wait() -> destroy(id) by the wall clock.
// Every run gets a fresh overlay upper (the runtime makes one per sandbox under its run dir) and a fresh cgroup.
// Prints "warmup I: X ms" / "run I: X ms", one line per run. Exits 1 on any error or when the command does not
// exit 0, after destroying the sandbox; 2 on a usage error.
//
// Usage: sbx-bench-oneshot --rootfs DIR [--seccomp FILE] [--runs N] [--warmup N] [--run-root DIR]
//                          [--cgroup-parent PATH] [--id-prefix NAME] [--userns HOST_FIRST] [--show-output] -- ARGV...
//        sbx-bench-oneshot --cleanup [--run-root DIR] [--cgroup-parent PATH] [--id-prefix NAME]
// Sandbox ids are NAME-0, NAME-1, ... (NAME: --id-prefix, default sbx-bench-<pid>); their cgroups go under
// <own cgroup>/NAME in each hierarchy (or under --cgroup-parent, which is left alone), removed at the end.
// --userns HOST_FIRST gives every sandbox a user namespace of its own: ids 0..65535 inside are host ids
// HOST_FIRST..HOST_FIRST+65535 (contiguous_userns), the layers idmapped to it.
// --cleanup destroys the sandboxes whose id starts with "NAME-" (what an interrupted run leaves), then exits.
//        sbx-bench-oneshot --seccomp FILE --dump-seccomp-bpf OUT
//   writes the BPF program sbx compiles from FILE, so crun can be given the very same filter.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "base/error.h"
#include "bench/flags.h"
#include "base/file.h"
#include "runtime/plan.h"
#include "runtime/runtime.h"
#include "runtime/seccomp.h"
#include "runtime/userns.h"

namespace {

using sbx::Result;

constexpr uint64_t kMemoryMax = 256ull << 20;
constexpr uint64_t kPidsMax = 256;
constexpr double kVcpus = 1.0;
constexpr const char* kHostname = "sbx";
constexpr const char* kPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr uint32_t kUsernsSize = 65536;  // ids inside a --userns sandbox: 0..65535

constexpr const char* kUsage =
    "usage: sbx-bench-oneshot --rootfs DIR [--seccomp FILE] [--runs N] [--warmup N] [--run-root DIR]\n"
    "                         [--cgroup-parent PATH] [--id-prefix NAME] [--userns HOST_FIRST] [--show-output]\n"
    "                         -- ARGV...\n"
    "       sbx-bench-oneshot --cleanup [--run-root DIR] [--cgroup-parent PATH] [--id-prefix NAME]\n"
    "       sbx-bench-oneshot --seccomp FILE --dump-seccomp-bpf OUT\n"
    "  --userns HOST_FIRST  each sandbox in a user namespace of its own: ids 0..65535 inside are host ids\n"
    "                       HOST_FIRST..HOST_FIRST+65535 (the layers idmapped, not chowned)\n";

struct Options {
  std::string rootfs;
  std::string seccomp;  // empty: no filter
  uint64_t runs = 10;
  uint64_t warmup = 2;
  std::string run_root = "/run/sbx-bench";
  // Empty: <own cgroup>/<id_prefix> in each hierarchy, ours alone, removed at the end.
  std::string cgroup_parent;
  std::string id_prefix;  // sandbox ids are "<id_prefix>-<n>"; default "sbx-bench-<pid>"
  std::optional<uint32_t> userns_first;  // --userns: the host uid/gid that is 0 inside
  bool show_output = false;  // pass our stdout/stderr to the command instead of /dev/null
  bool cleanup = false;      // only destroy the sandboxes a killed run left behind
  std::string dump_bpf;      // only write the compiled --seccomp profile (raw sock_filter array) here
  std::vector<std::string> argv;
};

using sbx::bench::take_count;
using sbx::bench::take_value;

// --userns HOST_FIRST: a host id such that HOST_FIRST..HOST_FIRST+65535 are all valid ids (not 0, the host's root).
Result<uint32_t> take_host_id(int argc, char** argv, int& i) {
  SBX_ASSIGN(uint64_t first, take_count(argc, argv, i));
  if (first == 0 || first > UINT32_MAX - kUsernsSize) {
    return sbx::make_error("--userns: host id {} out of range (1..{})", first, UINT32_MAX - kUsernsSize);
  }
  return static_cast<uint32_t>(first);
}

Result<Options> parse_options(int argc, char** argv) {
  Options opts;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "--rootfs") {
      SBX_ASSIGN(opts.rootfs, take_value(argc, argv, i));
    } else if (arg == "--seccomp") {
      SBX_ASSIGN(opts.seccomp, take_value(argc, argv, i));
    } else if (arg == "--runs") {
      SBX_ASSIGN(opts.runs, take_count(argc, argv, i));
    } else if (arg == "--warmup") {
      SBX_ASSIGN(opts.warmup, take_count(argc, argv, i));
    } else if (arg == "--run-root") {
      SBX_ASSIGN(opts.run_root, take_value(argc, argv, i));
    } else if (arg == "--cgroup-parent") {
      SBX_ASSIGN(opts.cgroup_parent, take_value(argc, argv, i));
    } else if (arg == "--id-prefix") {
      SBX_ASSIGN(opts.id_prefix, take_value(argc, argv, i));
    } else if (arg == "--userns") {
      SBX_ASSIGN(opts.userns_first, take_host_id(argc, argv, i));
    } else if (arg == "--show-output") {
      opts.show_output = true;
    } else if (arg == "--cleanup") {
      opts.cleanup = true;
    } else if (arg == "--dump-seccomp-bpf") {
      SBX_ASSIGN(opts.dump_bpf, take_value(argc, argv, i));
    } else {
      return sbx::make_error("unknown option '{}'", arg);
    }
  }
  opts.argv.assign(argv + i, argv + argc);
  if (opts.id_prefix.empty()) {
    opts.id_prefix = fmt::format("sbx-bench-{}", ::getpid());
  }
  SBX_TRY_CTX(sbx::rt::validate_id(opts.id_prefix), "--id-prefix");
  if (opts.cleanup) {
    return opts;
  }
  if (!opts.dump_bpf.empty()) {
    if (opts.seccomp.empty()) {
      return sbx::make_error("--dump-seccomp-bpf needs --seccomp");
    }
    return opts;
  }
  if (opts.rootfs.empty()) {
    return sbx::make_error("--rootfs is required");
  }
  if (opts.argv.empty()) {
    return sbx::make_error("no command given after --");
  }
  return opts;
}

sbx::rt::Plan make_plan(const Options& opts, const std::string& id) {
  sbx::rt::Plan plan = sbx::rt::default_plan(id, {opts.rootfs});
  plan.hostname = kHostname;
  plan.limits.memory_max = kMemoryMax;
  plan.limits.pids_max = kPidsMax;
  plan.limits.vcpus = kVcpus;
  plan.security.seccomp_profile = opts.seccomp;
  if (opts.userns_first) {
    plan.userns = sbx::rt::contiguous_userns(*opts.userns_first, kUsernsSize);
  }
  sbx::rt::ProcessSpec main;
  main.argv = opts.argv;
  main.env = {kPath};
  if (opts.show_output) {
    main.stdout_fd = STDOUT_FILENO;
    main.stderr_fd = STDERR_FILENO;
  }
  plan.main = std::move(main);
  return plan;
}

// Runs the command once in a new sandbox and destroys it; returns the wall-clock milliseconds of the three steps.
Result<double> time_one(sbx::rt::Runtime& runtime, const sbx::rt::Plan& plan) {
  auto start = std::chrono::steady_clock::now();
  SBX_ASSIGN(sbx::rt::Sandbox sandbox, runtime.create(plan));
  Result<sbx::rt::ExitStatus> status = sandbox.wait();
  Result<void> destroyed = runtime.destroy(plan.id);
  auto end = std::chrono::steady_clock::now();
  if (!status.ok()) {
    return std::move(status).error().context(fmt::format("wait for sandbox '{}'", plan.id));
  }
  SBX_TRY_CTX(destroyed, "destroy sandbox '{}'", plan.id);
  if (status->signaled) {
    return sbx::make_error("sandbox '{}': the command was killed by signal {}", plan.id, status->signal);
  }
  if (status->code != 0) {
    return sbx::make_error("sandbox '{}': the command exited with status {}", plan.id, status->code);
  }
  return std::chrono::duration<double, std::milli>(end - start).count();
}

Result<std::unique_ptr<sbx::rt::Runtime>> open_runtime(const Options& opts) {
  sbx::rt::RuntimeConfig config;
  config.run_root = opts.run_root;
  config.cgroup.parent = opts.cgroup_parent;
  config.cgroup.parent_name = opts.id_prefix;
  // 0711, as the runtime makes it: a --userns sandbox's root (an unprivileged host uid) must reach its rootfs below.
  SBX_TRY_CTX(sbx::make_dirs(opts.run_root, 0711), "create run root '{}'", opts.run_root);
  return sbx::rt::Runtime::open(config);
}

// Removes our parent cgroups (empty by now); a parent given with --cgroup-parent belongs to the caller.
Result<void> remove_own_parent(sbx::rt::Runtime& runtime, const Options& opts) {
  if (!opts.cgroup_parent.empty()) {
    return sbx::ok();
  }
  SBX_TRY_CTX(runtime.cgroups().remove_parent(), "remove the parent cgroups");
  return sbx::ok();
}

// Destroys every sandbox of ours (id "<prefix>-...") that a killed run left behind, then our parent cgroups.
Result<void> cleanup(const Options& opts) {
  SBX_ASSIGN(std::unique_ptr<sbx::rt::Runtime> runtime, open_runtime(opts));
  SBX_ASSIGN(std::vector<std::string> ids, runtime->list());
  std::string prefix = opts.id_prefix + "-";
  for (const auto& id : ids) {
    if (id.compare(0, prefix.size(), prefix) == 0) {
      SBX_TRY_CTX(runtime->destroy(id), "destroy sandbox '{}'", id);
      fmt::print("destroyed leftover sandbox {}\n", id);
    }
  }
  return remove_own_parent(*runtime, opts);
}

// Writes the BPF program the runtime compiles from --seccomp for a sandbox that keeps no capabilities, as the raw
// struct sock_filter array seccomp(2) takes (what crun's run.oci.seccomp_bpf_data annotation carries).
Result<void> dump_bpf(const Options& opts) {
  sbx::rt::SeccompCache cache;
  SBX_ASSIGN(auto filter, cache.load(opts.seccomp, {}));
  std::string_view bytes(reinterpret_cast<const char*>(filter->insns.data()),
                         filter->insns.size() * sizeof(sock_filter));
  SBX_TRY_CTX(sbx::create_file(opts.dump_bpf, bytes), "write '{}'", opts.dump_bpf);
  return sbx::ok();
}

Result<void> time_all(sbx::rt::Runtime& runtime, const Options& opts) {
  uint64_t total = opts.warmup + opts.runs;
  for (uint64_t i = 0; i < total; ++i) {
    std::string id = fmt::format("{}-{}", opts.id_prefix, i);
    SBX_ASSIGN(double ms, time_one(runtime, make_plan(opts, id)));
    bool warm = i < opts.warmup;
    fmt::print("{} {}: {:.3f} ms\n", warm ? "warmup" : "run", warm ? i + 1 : i - opts.warmup + 1, ms);
    std::fflush(stdout);
  }
  return sbx::ok();
}

Result<void> run_bench(const Options& opts) {
  SBX_ASSIGN(std::unique_ptr<sbx::rt::Runtime> runtime, open_runtime(opts));
  Result<void> timed = time_all(*runtime, opts);
  Result<void> removed = remove_own_parent(*runtime, opts);
  SBX_TRY(timed);
  return removed;
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_options(argc, argv);
  if (!opts.ok()) {
    fmt::print(stderr, "sbx-bench-oneshot: {}\n{}", opts.error().message(), kUsage);
    return 2;
  }
  Result<void> done = opts->cleanup            ? cleanup(*opts)
                      : !opts->dump_bpf.empty() ? dump_bpf(*opts)
                                                : run_bench(*opts);
  if (!done.ok()) {
    fmt::print(stderr, "sbx-bench-oneshot: {}\n", done.error().message());
    return 1;
  }
  return 0;
}
