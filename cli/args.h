#pragma once
// sbxctl's pure part: command-line values -> JSON-RPC params, and exec results -> exit status. No I/O here, so all
// of it is unit-tested (tests/unit/cli_args_test.cc).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace sbx::cli {

using json = nlohmann::json;

// Looks a variable up in the caller's environment (for `-e NAME` without a value).
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_env();

// What `create` and `run` take, as typed (numbers stay strings so that errors can name the option).
struct CreateOptions {
  std::string name;
  std::string rootfs;
  std::string image;
  std::string environment;                // NAME or NAME@VERSION
  std::optional<std::string> entrypoint;  // "" for none
  std::string network;                   // mode
  std::vector<std::string> publish;      // [HOST_IP:]HOST_PORT:PORT[/tcp|/udp]
  std::vector<std::string> allow;        // CIDRs
  std::vector<std::string> allow_ports;
  std::vector<std::string> allow_hosts;  // names, *.suffix
  std::vector<std::string> block_ports;
  std::string bandwidth;                 // size per second
  std::vector<std::string> labels;  // k=v
  std::vector<std::string> env;     // K=V, or K to take the caller's value
  std::vector<std::string> mounts;  // src:dst[:ro|rw]
  std::string memory;               // size
  std::string cpus;                 // number
  std::string pids;                 // count
  std::string disk;                 // size
  std::string ttl;                  // seconds, or with s/m/h/d
  std::string seccomp;
  std::string cwd;
  std::string user;  // uid[:gid]
  std::string hostname;
  bool read_only = false;
  std::vector<std::string> cap_drop;  // names, or ALL
  std::vector<std::string> cap_add;
  std::vector<std::string> devices;   // CDI names vendor.com/class=name
  std::string userns;                 // "" (sbxd's default), "private" or "host"
  bool no_start = false;
  std::vector<std::string> command;
  std::string tenant;
};

// What `exec` (and `run` for its command) takes.
struct ExecOptions {
  std::vector<std::string> env;
  std::string cwd;
  std::string user;
  std::string timeout;       // seconds (fractions allowed), or with s/m/h
  std::string output_limit;  // size
  bool stream = true;
};

// Option values. Each error names the option: "--memory: invalid size '5X': ...".
Result<uint64_t> parse_size_option(std::string_view option, std::string_view text);
Result<double> parse_cpus(std::string_view text);
Result<int64_t> parse_count(std::string_view option, std::string_view text, int64_t min = 1);
Result<double> parse_seconds(std::string_view option, std::string_view text, bool allow_fraction);
Result<std::string> parse_user(std::string_view text);
// --userns: "private" is true (a user namespace of the sandbox's own), "host" false; "" (not given) is nullopt.
Result<std::optional<bool>> parse_userns(std::string_view text);
Result<json> parse_labels(const std::vector<std::string>& labels);
// The limits object {memory, vcpus, pids, disk} of what was given (empty: none), as create's options take them.
Result<json> parse_limits(const std::string& memory, const std::string& cpus, const std::string& pids,
                          const std::string& disk);
// An environment reference: NAME (the latest version) or NAME@VERSION, VERSION a positive number. The error names
// `option` unless it is empty.
Result<void> check_environment_ref(std::string_view option, std::string_view ref);
Result<json> parse_env(const std::vector<std::string>& env, const EnvLookup& lookup);
// "src:dst[:ro|rw]" -> {source (absolute, from cwd), destination, read_only (default true)}.
Result<json> parse_mount(std::string_view text, const std::string& cwd);

// `path` made absolute against `cwd` and lexically normalised ("." and ".." resolved, no double slashes).
std::string absolute_path(std::string_view path, const std::string& cwd);

// Params of sandbox.create. `cmd` is left out for `run`, whose command is an exec; its sandbox is then made to idle
// (entrypoint []) when it comes from an image or an environment, whose own command would otherwise run.
Result<json> create_params(const CreateOptions& o, const std::string& cwd, const EnvLookup& lookup,
                           bool with_cmd = true);
// Params of sandbox.exec.
Result<json> exec_params(const std::string& id, const std::vector<std::string>& argv, const ExecOptions& o,
                         const EnvLookup& lookup);
// sandbox.run's params for `sbxctl run` without --keep: the create options' sandbox, run_argv() as argv, and the exec
// options' timeout, output limit and streaming.
Result<json> run_params(const CreateOptions& create, const ExecOptions& exec, const std::string& cwd,
                        const EnvLookup& lookup);
// What `run` execs: --entrypoint (when given and not empty) followed by the command.
std::vector<std::string> run_argv(const CreateOptions& o);

// Whether a sandbox's labels object matches a selector "KEY=VALUE" (that value) or "KEY" (any value).
bool label_matches(const json& labels, std::string_view selector);

// A trailing command as CLI11 collected it: a leading "--" (after a positional) is dropped.
std::vector<std::string> trailing_command(std::vector<std::string> args);

// How an exec ended, the way a shell reports it: the exit code, 128+N for signal N, 124 on timeout. Notes say
// what else the user should know (timed out, output truncated, OOM-killed).
struct ExecStatus {
  int exit_code = 0;
  std::vector<std::string> notes;
};
ExecStatus exec_status(const json& result, double timeout_s);

// The exit status for a sandbox.exec that failed to start: 127 when the program was not found, 126 when it could
// not be executed (like a shell and docker), else 125.
int exec_error_status(int code, const json& data);

// `cp` operands: "SANDBOX:PATH" names a path in a sandbox; a path that starts with '/' or '.', or has no ':', is
// on the host. The sandbox path is made absolute ("box:tmp/x" -> "/tmp/x").
struct CpTarget {
  std::string sandbox;  // empty: on the host
  std::string path;
};
CpTarget parse_cp_target(std::string_view text);

// The last component of a path ("/a/b/" -> "b"; "/" -> "").
std::string base_name(std::string_view path);
// The parent of an absolute path ("/a/b" -> "/a", "/a" -> "/").
std::string dir_name(std::string_view path);
std::string join_path(std::string_view dir, std::string_view name);

}  // namespace sbx::cli
