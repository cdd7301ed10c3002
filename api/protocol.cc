#include "api/protocol.h"

#include <chrono>
#include <cmath>
#include <ctime>

namespace sbx::api {

namespace {

using P = ParamType;

constexpr ParamSpec kId{"id", P::kString, true, "the sandbox's id or name"};

// The sandbox a create or a run makes.
std::vector<ParamSpec> sandbox_params() {
  return {{"name", P::kString, false, "unique name; [a-z0-9][a-z0-9_.-]{0,63}"},
          {"rootfs", P::kString, false, "host directory holding the root filesystem (read-only lower layer)"},
          {"image", P::kString, false, "name or id of an image in the daemon's image store"},
          {"environment", P::kString, false, "environment to start from: \"NAME\" (latest version) or \"NAME@VERSION\"; "
           "the other params override its defaults"},
          {"labels", P::kObject, false, "string to string map, for filtering"},
          {"limits", P::kObject, false, "{vcpus: number, memory: size, pids: int, disk: size}"},
          {"env", P::kStringArray, false, "environment of the main command and default of execs, \"NAME=value\""},
          {"mounts", P::kArray, false, "host bind mounts [{source, destination, read_only=true}] (root only)"},
          {"ttl", P::kInt, false, "seconds until the daemon stops and removes the sandbox; 0: none"},
          {"seccomp", P::kString, false, "seccomp profile name (\"default\", \"unconfined\", or a profile file's "
                                         "name in the profile directory)"},
          {"cmd", P::kStringArray, false, "main command (after the image's entrypoint); default: the image's "
           "entrypoint and cmd; without any the sandbox idles until stopped"},
          {"entrypoint", P::kStringArray, false, "replaces the image's entrypoint and drops its cmd; [] for none"},
          {"network", P::kStringOrObject, false, "\"none\" (own network namespace with loopback only; the default "
           "unless [network] default says otherwise), \"bridge\", or {mode, ports, allow, allow_ports, allow_hosts, "
           "block_ports, bandwidth}"},
          {"cwd", P::kString, false, "working directory of the main command and default of execs"},
          {"user", P::kIntOrString, false, "\"uid[:gid]\" of the main command and default of execs"},
          {"hostname", P::kString, false, "the sandbox's hostname; default: the name or the id"},
          {"read_only", P::kBool, false, "mount the root filesystem read-only (default false; /tmp and /dev/shm "
           "stay writable tmpfs)"},
          {"cap_drop", P::kStringArray, false, "capabilities root in the sandbox gives up, or [\"ALL\"]"},
          {"cap_add", P::kStringArray, false, "capabilities added to root's default set (root only)"},
          {"devices", P::kStringArray, false, "CDI devices to pass in, \"vendor.com/class=name\" (specs in "
           "/etc/cdi and /var/run/cdi)"},
          {"userns", P::kBool, false, "a user namespace of the sandbox's own (default true unless [userns] enabled "
           "is false); false: the host's, whose root is the host's root (root only)"},
          {"start", P::kBool, false, "start now (default true)"},
          {"tenant", P::kString, false, "tenant the sandbox belongs to (trusted callers only)"}};
}

// sandbox.run: a sandbox's params, without start (it always starts), with the command and the exec's I/O params.
std::vector<ParamSpec> run_params() {
  std::vector<ParamSpec> out;
  for (const ParamSpec& p : sandbox_params()) {
    if (std::string_view(p.name) != "start") {
      out.push_back(p);
    }
  }
  out.insert(out.end(),
             {{"argv", P::kStringArray, false, "the main command exactly (neither the image's entrypoint nor its "
               "cmd); default: the image's entrypoint and cmd, or cmd and entrypoint"},
              {"stdin_b64", P::kString, false, "bytes for the command's stdin, base64; then EOF"},
              {"timeout", P::kNumber, false, "seconds; past it the sandbox is killed"},
              {"output_limit", P::kSize, false, "bytes of stdout+stderr passed on; the rest is read and dropped"},
              {"stream", P::kBool, false, "send output as notifications (default true); false: in the result"}});
  return out;
}

std::vector<MethodSpec> build_methods() {
  const std::vector<ParamSpec> create_params = sandbox_params();
  return {
      {"daemon.info", "The daemon's version, cgroup mode, sandbox counts and who the caller is.", {},
       "{version, api_version, cgroup_mode, sandboxes: {total, created, running, exited}, pid, uptime_s, "
       "caller: {uid, gid, pid, role}}",
       ""},
      {"daemon.health", "Checks the database, the run directory, the cgroup parent and the monitor program.", {},
       "{status: \"ok\"|\"degraded\", checks: {database, run_dir, cgroups, monitor}}", ""},
      {"daemon.metrics", "Daemon-wide counts for monitoring: sandboxes by state over every owner and tenant, OOM kills "
       "and running execs (root and trusted callers only).", {},
       "{sandboxes: {created, running, exited}, oom_kills, execs_running}", ""},
      {"sandbox.create",
       "Creates a sandbox from a root filesystem or an image and, unless start is false, starts it.",
       create_params,
       "the sandbox object", ""},
      {"sandbox.run", "Creates a sandbox whose main command is the command, streams its output while it runs, and "
       "removes the sandbox when it has ended (docker run --rm).",
       run_params(),
       "{id, exit_code, signal, duration_ms, timed_out, oom_killed, cpu_user_us, cpu_system_us, peak_rss_bytes, "
       "stdout_bytes, stderr_bytes, truncated, removed, stdout_b64 and stderr_b64 when stream is false}",
       "exec.output {exec_id, request_id, stream: \"stdout\"|\"stderr\", data_b64}"},
      {"sandbox.start", "Starts a created or exited sandbox (a fresh writable layer each time).", {kId},
       "the sandbox object", ""},
      {"sandbox.stop", "Sends SIGTERM to the sandbox's init, SIGKILL after the grace period; waits for the end.",
       {kId, {"timeout", P::kNumber, false, "grace period in seconds (default 10)"}}, "the sandbox object", ""},
      {"sandbox.restart", "Stops the sandbox (when running) and starts it again.",
       {kId, {"timeout", P::kNumber, false, "grace period in seconds (default 10)"}}, "the sandbox object", ""},
      {"sandbox.kill", "Sends a signal to the sandbox's init, which passes it on to the main command; KILL ends "
                      "the whole sandbox.",
       {kId, {"signal", P::kIntOrString, false, "signal name (\"TERM\", \"SIGKILL\") or number; default KILL"}},
       "{}", ""},
      {"sandbox.remove", "Removes a sandbox that is not running (with force: stops it first).",
       {kId, {"force", P::kBool, false, "kill a running sandbox first"}}, "{}", ""},
      {"sandbox.list", "The sandboxes the caller may see.",
       {{"state", P::kString, false, "created, running or exited"},
        {"label", P::kStringOrStringArray, false, "\"key=value\" or \"key\", or an array of them: only sandboxes "
                                                  "with all those labels"},
        {"owner", P::kInt, false, "only sandboxes created by this uid"},
        {"tenant", P::kString, false, "only sandboxes of this tenant"}},
       "{sandboxes: [sandbox object...]}", ""},
      {"sandbox.inspect", "One sandbox.", {kId}, "the sandbox object", ""},
      {"sandbox.stats", "Resource use of a running sandbox, from its cgroup.", {kId},
       "{cpu_usage_usec, cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec, memory_current, memory_peak, "
       "oom_kills, pids_current}",
       ""},
      {"sandbox.exec", "Runs a process in a running sandbox; its output streams while it runs.",
       {kId,
        {"argv", P::kStringArray, true, "the command; argv[0] without a '/' is looked up in PATH"},
        {"env", P::kStringArray, false, "added to (and overriding) the sandbox's environment"},
        {"cwd", P::kString, false, "working directory (default: the sandbox's)"},
        {"user", P::kIntOrString, false, "\"uid[:gid]\" (default: the sandbox's)"},
        {"stdin_b64", P::kString, false, "bytes for the process's stdin, base64; then EOF"},
        {"timeout", P::kNumber, false, "seconds; past it the exec's whole process tree is killed"},
        {"output_limit", P::kSize, false, "bytes of stdout+stderr passed on; the rest is read and dropped"},
        {"stream", P::kBool, false, "send output as notifications (default true); false: in the result"}},
       "{exec_id, exit_code, signal, duration_ms, timed_out, oom_killed, cpu_user_us, cpu_system_us, "
       "peak_rss_bytes, stdout_bytes, stderr_bytes, truncated, stdout_b64 and stderr_b64 when stream is false}",
       "exec.output {exec_id, request_id, stream: \"stdout\"|\"stderr\", data_b64}"},
      {"sandbox.logs", "The main command's output (stdout and stderr together), from a size-capped log.",
       {kId, {"tail", P::kInt, false, "only the last N lines"},
        {"follow", P::kBool, false, "keep sending output until the main command ends"}},
       "{bytes}", "logs.output {id, request_id, data_b64}"},
      {"file.write", "Writes a file inside the sandbox's root.",
       {kId, {"path", P::kString, true, "absolute path inside the sandbox"},
        {"data_b64", P::kString, true, "the content, base64"},
        {"mode", P::kInt, false, "permission bits of a file it creates (default 0644; not masked by a umask)"},
        {"uid", P::kInt, false, "owner to give the file (default: left as is, root for a new file)"},
        {"gid", P::kInt, false, "group to give the file"},
        {"append", P::kBool, false, "append instead of replacing"},
        {"mkdirs", P::kBool, false, "create missing parent directories"}},
       "{bytes}", ""},
      {"file.read", "Reads a regular file inside the sandbox's root.",
       {kId, {"path", P::kString, true, "absolute path inside the sandbox"},
        {"offset", P::kInt, false, "byte offset to start at"},
        {"length", P::kInt, false, "bytes to read at most (default and maximum: the daemon's max_file_bytes)"}},
       "{data_b64, size, eof}", ""},
      {"file.list", "Lists a directory inside the sandbox's root.",
       {kId, {"path", P::kString, true, "absolute path inside the sandbox"}},
       "{entries: [{name, type: \"file\"|\"dir\"|\"symlink\"|\"other\", size, mode, mtime}]}", ""},
      {"file.remove", "Removes a file or directory inside the sandbox's root.",
       {kId, {"path", P::kString, true, "absolute path inside the sandbox"},
        {"recursive", P::kBool, false, "remove a directory and everything in it"}},
       "{}", ""},
      {"image.import", "Imports an image into the store: an OCI archive, a docker-save archive, a root filesystem "
       "tarball (plain, gzip, zstd, xz) or a directory. Root and trusted callers only.",
       {{"name", P::kString, true, "the image's name; [a-z0-9][a-z0-9_.-]{0,63}"},
        {"source", P::kString, false, "host path of the archive or directory (root only)"},
        {"stream", P::kBool, false, "the archive follows as image.data notifications on this connection"},
        {"ref", P::kString, false, "which image of an archive holding several (its ref name or repo tag)"},
        {"replace", P::kBool, false, "move the name from an existing image (default: refused)"},
        {"progress", P::kBool, false, "send image.progress notifications (default true)"}},
       "the image object", "image.progress {request_id, phase, layer, layers, bytes, total}"},
      {"image.data", "A piece of the archive of a streamed image.import (a notification: never answered).",
       {{"request_id", P::kIntOrString, true, "the id of the image.import request"},
        {"data_b64", P::kString, false, "the next bytes, base64"},
        {"eof", P::kBool, false, "the archive is complete"}},
       "nothing", ""},
      {"image.list", "The images in the store.", {}, "{images: [image object]}", ""},
      {"image.inspect", "One image: its config, layers and users.",
       {{"image", P::kString, true, "the image's name or id"}}, "the image object", ""},
      {"image.remove", "Removes an image and the layers only it used. Refused while a sandbox or an environment "
       "uses it. Root and trusted callers only.",
       {{"image", P::kString, true, "the image's name or id"}}, "{freed_bytes}", ""},
      {"environment.create", "Creates a named template for sandboxes (version 1). Root and trusted callers only.",
       {{"name", P::kString, true, "[a-z0-9][a-z0-9_.-]{0,63}"},
        {"image", P::kString, true, "the image (pinned: later imports under its name do not change this version)"},
        {"limits", P::kObject, false, "{vcpus: number, memory: size, pids: int, disk: size}"},
        {"env", P::kStringArray, false, "environment, \"NAME=value\""},
        {"seccomp", P::kString, false, "seccomp profile name"},
        {"network", P::kStringOrObject, false, "network mode or object, as for sandbox.create"},
        {"ttl", P::kInt, false, "seconds until a sandbox made from it is removed; 0: none"},
        {"read_only", P::kBool, false, "its sandboxes' root read-only"},
        {"cap_drop", P::kStringArray, false, "capabilities its sandboxes' root gives up, or [\"ALL\"]"},
        {"devices", P::kStringArray, false, "CDI devices its sandboxes get, \"vendor.com/class=name\""},
        {"userns", P::kBool, false, "false: its sandboxes run in the host's user namespace (root callers only)"},
        {"description", P::kString, false, "free text"}},
       "the environment object", ""},
      {"environment.update", "Makes a new version of an environment: the given params over the latest version's.",
       {{"name", P::kString, true, "the environment"},
        {"image", P::kString, false, "the image"},
        {"limits", P::kObject, false, "{vcpus, memory, pids, disk}; replaces the previous limits"},
        {"env", P::kStringArray, false, "replaces the previous environment"},
        {"seccomp", P::kString, false, "seccomp profile name"},
        {"network", P::kStringOrObject, false, "network mode or object; replaces the previous one"},
        {"ttl", P::kInt, false, "seconds; 0: none"},
        {"read_only", P::kBool, false, "its sandboxes' root read-only"},
        {"cap_drop", P::kStringArray, false, "replaces the previous cap_drop"},
        {"devices", P::kStringArray, false, "replaces the previous devices"},
        {"userns", P::kBool, false, "false: the host's user namespace (root callers only)"},
        {"description", P::kString, false, "free text"}},
       "the environment object (the new version)", ""},
      {"environment.list", "The latest version of every environment.", {},
       "{environments: [environment object]}", ""},
      {"environment.inspect", "One version of an environment, and the list of its versions.",
       {{"name", P::kString, true, "\"NAME\" (latest) or \"NAME@VERSION\""}}, "the environment object", ""},
      {"environment.remove", "Removes every version of an environment, or one (\"NAME@VERSION\"). Sandboxes made "
       "from it keep running. Root and trusted callers only.",
       {{"name", P::kString, true, "\"NAME\" or \"NAME@VERSION\""}}, "{removed_versions}", ""},
      {"apikey.create", "Creates an API key for the call's tenant (the generic tenant param, required here) and "
       "returns it: the only time the key is shown; sbxd keeps its SHA-256. Root only.",
       {{"name", P::kString, false, "a label; up to 64 printable ASCII characters"}},
       "{id, key, tenant, name, created}", ""},
      {"apikey.list", "The API keys of the call's tenant, or every key without one; never a key or its hash. "
       "Root only.",
       {}, "{keys: [{id, tenant, name, created, last_used}]}", ""},
      {"apikey.revoke", "Deletes an API key: it never verifies again. Root only.",
       {{"id", P::kString, true, "the key's id"}}, "{id, revoked: true}", ""},
      {"apikey.verify", "Checks an API key; answers whom it acts for and records its use (at most once a minute). "
       "Any failure is -32001 \"invalid API key\". Root and trusted callers only.",
       {{"key", P::kString, true, "the key text, \"sbx_...\""}}, "{id, tenant, name}", ""},
      {"events.subscribe", "Sends sandbox events as they happen, until the client disconnects.",
       {{"types", P::kStringArray, false, "only these: created, started, exited, oom, destroyed"},
        {"id", P::kString, false, "only this sandbox's events"}},
       "{} right away", "event {seq, type, id, name, time, details}"},
      {"events.list", "Recorded events, newest last.",
       {{"id", P::kString, false, "only this sandbox's"}, {"limit", P::kInt, false, "at most N (default 100)"}},
       "{events: [{seq, type, id, name, time, details}]}", ""},
      {"execs.list", "Recorded execs, newest last.",
       {{"id", P::kString, false, "only this sandbox's"}, {"limit", P::kInt, false, "at most N (default 50)"}},
       "{execs: [{exec_id, id, argv, started_at, duration_ms, exit_code, signal, timed_out, oom_killed, "
       "cpu_user_us, cpu_system_us, peak_rss_bytes, caller_uid}]}",
       ""},
  };
}

bool type_matches(ParamType type, const json& v) {
  switch (type) {
    case P::kString:
      return v.is_string();
    case P::kInt:
      return v.is_number_integer();
    case P::kNumber:
      return v.is_number();
    case P::kBool:
      return v.is_boolean();
    case P::kObject:
      return v.is_object();
    case P::kArray:
      return v.is_array();
    case P::kStringArray:
      if (!v.is_array()) {
        return false;
      }
      for (const auto& e : v) {
        if (!e.is_string()) {
          return false;
        }
      }
      return true;
    case P::kSize:
      return v.is_number_unsigned() || v.is_string();
    case P::kIntOrString:
      return v.is_number_integer() || v.is_string();
    case P::kStringOrStringArray:
      return v.is_string() || type_matches(P::kStringArray, v);
    case P::kStringOrObject:
      return v.is_string() || v.is_object();
  }
  return false;
}

constexpr std::string_view kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Each byte's value as a base64 digit; -1 for a byte that is not one (and for '=').
struct B64Table {
  int8_t v[256];
  constexpr B64Table() : v() {
    for (int c = 0; c < 256; ++c) {
      v[c] = -1;
    }
    for (int i = 0; i < 64; ++i) {
      v[static_cast<unsigned char>(kB64[i])] = static_cast<int8_t>(i);
    }
  }
};
constexpr B64Table kB64Values;

int b64_value(char c) { return kB64Values.v[static_cast<unsigned char>(c)]; }

}  // namespace

std::string_view error_code_name(int code) {
  switch (code) {
    case kParseError:
      return "parse_error";
    case kInvalidRequest:
      return "invalid_request";
    case kMethodNotFound:
      return "method_not_found";
    case kInvalidParams:
      return "invalid_params";
    case kInternalError:
      return "internal_error";
    case kNotFound:
      return "not_found";
    case kPermissionDenied:
      return "permission_denied";
    case kInvalidState:
      return "invalid_state";
    case kConflict:
      return "conflict";
    case kLimitExceeded:
      return "limit_exceeded";
    case kSystemError:
      return "system_error";
    default:
      return "unknown";
  }
}

Error param_error(std::string_view field, std::string_view message) {
  return Error(fmt::format("params.{}: {}", field, message)).with_code(kInvalidParams);
}

json error_object(const Error& error) {
  int code = error.code();
  if (code == 0) {
    code = error.sys_errno() != 0 ? kSystemError : kInternalError;
  }
  json obj = {{"code", code}, {"message", error.message()}};
  json data = json::object();
  if (error.sys_errno() != 0) {
    data["errno"] = error.sys_errno();
    data["errname"] = errno_name(error.sys_errno());
  }
  // param_error() messages start "params.<field>: ": the field goes into data too, for programs.
  const std::string& m = error.message();
  if (code == kInvalidParams && m.rfind("params.", 0) == 0 && m.find(": ") != std::string::npos) {
    data["field"] = m.substr(7, m.find(": ") - 7);
  }
  if (!data.empty()) {
    obj["data"] = data;
  }
  return obj;
}

const std::vector<MethodSpec>& methods() {
  static const std::vector<MethodSpec> table = build_methods();
  return table;
}

const MethodSpec* find_method(std::string_view name) {
  for (const auto& m : methods()) {
    if (m.name == name) {
      return &m;
    }
  }
  return nullptr;
}

std::string_view param_type_name(ParamType type) {
  switch (type) {
    case P::kString:
      return "string";
    case P::kInt:
      return "integer";
    case P::kNumber:
      return "number";
    case P::kBool:
      return "boolean";
    case P::kObject:
      return "object";
    case P::kArray:
      return "array";
    case P::kStringArray:
      return "array of strings";
    case P::kSize:
      return "size (bytes, or a string such as \"512M\")";
    case P::kIntOrString:
      return "integer or string";
    case P::kStringOrStringArray:
      return "string or array of strings";
    case P::kStringOrObject:
      return "string or object";
  }
  return "?";
}

Result<void> check_params(const MethodSpec& method, const json& params) {
  if (params.is_null()) {
    for (const auto& p : method.params) {
      if (p.required) {
        return param_error(p.name, "required");
      }
    }
    return ok();
  }
  if (!params.is_object()) {
    return Error("params must be an object (by-name parameters)").with_code(kInvalidParams);
  }
  for (const auto& [key, value] : params.items()) {
    const ParamSpec* spec = nullptr;
    for (const auto& p : method.params) {
      if (p.name == key) {
        spec = &p;
      }
    }
    if (spec == nullptr) {
      return param_error(key, fmt::format("unknown parameter of {}", method.name));
    }
    if (!type_matches(spec->type, value)) {
      return param_error(key, fmt::format("must be {}", param_type_name(spec->type)));
    }
  }
  for (const auto& p : method.params) {
    if (p.required && !params.contains(std::string(p.name))) {
      return param_error(p.name, "required");
    }
  }
  return ok();
}

std::string encode_request(uint64_t id, std::string_view method, const json& params) {
  json msg = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) {
    msg["params"] = params;
  }
  return msg.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode_result(const json& id, const json& result) {
  json msg = {{"jsonrpc", "2.0"}, {"id", id}, {"result", result}};
  return msg.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode_error(const json& id, const json& error) {
  json msg = {{"jsonrpc", "2.0"}, {"id", id}, {"error", error}};
  return msg.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode_notification(std::string_view method, const json& params) {
  json msg = {{"jsonrpc", "2.0"}, {"method", method}, {"params", params}};
  return msg.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string dump_json(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string base64_encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint8_t(data[i]) << 16) | (uint8_t(data[i + 1]) << 8) | uint8_t(data[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = uint8_t(data[i]) << 16;
    if (rest == 2) {
      v |= uint8_t(data[i + 1]) << 8;
    }
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return Error("invalid base64: length is not a multiple of 4").with_code(kInvalidParams);
  }
  auto bad = [](size_t at) { return Error(fmt::format("invalid base64 at offset {}", at)).with_code(kInvalidParams); };
  size_t pad = text.size() >= 4 && text[text.size() - 1] == '=' ? (text[text.size() - 2] == '=' ? 2 : 1) : 0;
  std::string out(text.size() / 4 * 3 - pad, '\0');
  size_t o = 0;
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = last && k >= 4 - static_cast<int>(pad) ? 0 : b64_value(text[i + k]);
      if (v[k] < 0) {
        return bad(i + k);
      }
    }
    uint32_t n = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    const char bytes[3] = {char(n >> 16), char((n >> 8) & 255), char(n & 255)};
    size_t count = last ? 3 - pad : 3;
    for (size_t b = 0; b < count; ++b) {
      out[o++] = bytes[b];
    }
  }
  return out;
}

Result<uint64_t> parse_size(std::string_view text) {
  auto bad = [&] {
    return Error(fmt::format("invalid size '{}': expected bytes or a number with K, M, G or T", text))
        .with_code(kInvalidParams);
  };
  size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) {
    ++i;
  }
  if (i == 0 || i > 24) {
    return bad();
  }
  std::string number(text.substr(0, i));
  std::string_view unit = text.substr(i);
  if (unit.size() > 1 && (unit.ends_with("i") || unit.ends_with("iB") || unit.ends_with("B"))) {
    unit = unit.substr(0, 1);
  }
  double mult = 1;
  if (unit == "K" || unit == "k") {
    mult = 1024.0;
  } else if (unit == "M" || unit == "m") {
    mult = 1024.0 * 1024;
  } else if (unit == "G" || unit == "g") {
    mult = 1024.0 * 1024 * 1024;
  } else if (unit == "T" || unit == "t") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else if (!unit.empty() && unit != "B" && unit != "b") {
    return bad();
  }
  char* end = nullptr;
  double v = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(v)) {
    return bad();
  }
  double bytes = std::floor(v * mult);
  if (bytes < 0 || bytes > 9.0e18) {
    return bad();
  }
  return static_cast<uint64_t>(bytes);
}

Result<uint64_t> size_param(const json& value, std::string_view field) {
  if (value.is_number_unsigned()) {
    return value.get<uint64_t>();
  }
  if (value.is_string()) {
    auto r = parse_size(value.get<std::string>());
    if (!r.ok()) {
      return param_error(field, r.error().message());
    }
    return r;
  }
  return param_error(field, "must be a byte count or a string such as \"512M\"");
}

std::string format_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"", "K", "M", "G", "T"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) {
    return std::to_string(bytes);
  }
  if (v == std::floor(v)) {
    return fmt::format("{}{}", static_cast<uint64_t>(v), kUnits[u]);
  }
  return fmt::format("{:.1f}{}", v, kUnits[u]);
}

std::string format_time_ms(int64_t epoch_ms) {
  time_t secs = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, epoch_ms % 1000);
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace sbx::api
