#include "cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "api/protocol.h"

namespace sbx::cli {

namespace {

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 10) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// A finite decimal number ("1", "1.5", ".5"), no sign, no exponent.
std::optional<double> parse_decimal(std::string_view text) {
  if (text.empty() || text.size() > 24) {
    return std::nullopt;
  }
  int dots = 0;
  for (char c : text) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return std::nullopt;
    }
  }
  if (dots > 1 || text == ".") {
    return std::nullopt;
  }
  std::string s(text);
  return std::strtod(s.c_str(), nullptr);
}

Error option_error(std::string_view option, std::string_view message) {
  return Error(fmt::format("{}: {}", option, message), EINVAL);
}

Result<void> add_limits(const CreateOptions& o, json& params) {
  SBX_ASSIGN(json limits, parse_limits(o.memory, o.cpus, o.pids, o.disk));
  if (!limits.empty()) {
    params["limits"] = std::move(limits);
  }
  return ok();
}

Result<json> port_numbers(std::string_view option, const std::vector<std::string>& values) {
  json out = json::array();
  for (const auto& v : values) {
    char* end = nullptr;
    long n = v.empty() ? 0 : std::strtol(v.c_str(), &end, 10);
    if (n < 1 || n > 65535 || *end != '\0') {
      return option_error(option, fmt::format("'{}' is not a port (1 to 65535)", v));
    }
    out.push_back(n);
  }
  return out;
}

// --network and the options that shape it: a mode string alone, else an object (bridge unless said otherwise).
Result<json> network_params(const CreateOptions& o) {
  bool shaped = !o.publish.empty() || !o.allow.empty() || !o.allow_ports.empty() || !o.allow_hosts.empty() ||
                !o.block_ports.empty() || !o.bandwidth.empty();
  if (!shaped) {
    return o.network.empty() ? json() : json(o.network);
  }
  json n = {{"mode", o.network.empty() ? "bridge" : o.network}};
  if (!o.publish.empty()) {
    n["ports"] = o.publish;
  }
  if (!o.allow.empty()) {
    n["allow"] = o.allow;
  }
  if (!o.allow_hosts.empty()) {
    n["allow_hosts"] = o.allow_hosts;
  }
  if (!o.allow_ports.empty()) {
    SBX_ASSIGN(n["allow_ports"], port_numbers("--allow-port", o.allow_ports));
  }
  if (!o.block_ports.empty()) {
    SBX_ASSIGN(n["block_ports"], port_numbers("--block-port", o.block_ports));
  }
  if (!o.bandwidth.empty()) {
    SBX_ASSIGN(n["bandwidth"], parse_size_option("--bandwidth", o.bandwidth));
  }
  return n;
}

// image, environment, entrypoint and network.
Result<void> add_source(const CreateOptions& o, bool with_cmd, json& params) {
  if (!o.image.empty()) {
    params["image"] = o.image;
  }
  if (!o.environment.empty()) {
    SBX_TRY(check_environment_ref("--environment", o.environment));
    params["environment"] = o.environment;
  }
  if (o.entrypoint && with_cmd) {
    params["entrypoint"] = o.entrypoint->empty() ? json::array() : json::array({*o.entrypoint});
  }
  if (!with_cmd && (!o.image.empty() || !o.environment.empty())) {
    params["entrypoint"] = json::array();
  }
  SBX_ASSIGN(json network, network_params(o));
  if (!network.is_null()) {
    params["network"] = std::move(network);
  }
  return ok();
}

// --read-only, --cap-drop, --cap-add, --device and --userns.
Result<void> add_security(const CreateOptions& o, json& params) {
  if (o.read_only) {
    params["read_only"] = true;
  }
  if (!o.cap_drop.empty()) {
    params["cap_drop"] = o.cap_drop;
  }
  if (!o.cap_add.empty()) {
    params["cap_add"] = o.cap_add;
  }
  if (!o.devices.empty()) {
    params["devices"] = o.devices;
  }
  SBX_ASSIGN(std::optional<bool> userns, parse_userns(o.userns));
  if (userns) {
    params["userns"] = *userns;
  }
  return ok();
}

Result<void> add_identity(const CreateOptions& o, json& params) {
  if (!o.cwd.empty()) {
    if (o.cwd[0] != '/') {
      return option_error("--cwd", fmt::format("'{}' is not an absolute path", o.cwd));
    }
    params["cwd"] = o.cwd;
  }
  if (!o.user.empty()) {
    SBX_ASSIGN(params["user"], parse_user(o.user));
  }
  if (!o.hostname.empty()) {
    params["hostname"] = o.hostname;
  }
  if (!o.seccomp.empty()) {
    params["seccomp"] = o.seccomp;
  }
  return ok();
}

}  // namespace

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) {
      return std::nullopt;
    }
    return std::string(v);
  };
}

Result<uint64_t> parse_size_option(std::string_view option, std::string_view text) {
  auto r = api::parse_size(text);
  if (!r.ok()) {
    return option_error(option, r.error().message());
  }
  return r;
}

Result<double> parse_cpus(std::string_view text) {
  auto v = parse_decimal(text);
  if (!v || *v <= 0 || *v > 4096) {
    return option_error("--cpus", fmt::format("'{}' is not a number of CPUs such as 0.5 or 2", text));
  }
  return *v;
}

Result<int64_t> parse_count(std::string_view option, std::string_view text, int64_t min) {
  const char* what = min > 0 ? "a positive whole number" : "a whole number";
  if (!all_digits(text) || text.size() > 9) {
    return option_error(option, fmt::format("'{}' is not {}", text, what));
  }
  int64_t v = std::strtoll(std::string(text).c_str(), nullptr, 10);
  if (v < min) {
    return option_error(option, fmt::format("'{}' is not {}", text, what));
  }
  return v;
}

Result<double> parse_seconds(std::string_view option, std::string_view text, bool allow_fraction) {
  double mult = 1;
  std::string_view number = text;
  if (!text.empty()) {
    switch (text.back()) {
      case 's':
        mult = 1;
        break;
      case 'm':
        mult = 60;
        break;
      case 'h':
        mult = 3600;
        break;
      case 'd':
        mult = 86400;
        break;
      default:
        mult = 0;
    }
    if (mult != 0) {
      number.remove_suffix(1);
    } else {
      mult = 1;
    }
  }
  auto v = parse_decimal(number);
  if (!v || *v * mult <= 0 || *v * mult > 1e9) {
    return option_error(option, fmt::format("'{}' is not a duration such as 30, 1.5, 90s, 10m or 2h", text));
  }
  double secs = *v * mult;
  if (!allow_fraction && secs != std::floor(secs)) {
    return option_error(option, fmt::format("'{}' is not a whole number of seconds", text));
  }
  return secs;
}

Result<std::string> parse_user(std::string_view text) {
  size_t colon = text.find(':');
  std::string_view uid = text.substr(0, colon);
  std::string_view gid = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  if (!all_digits(uid) || (colon != std::string_view::npos && !all_digits(gid))) {
    return option_error("--user", fmt::format("'{}' is not UID[:GID] (numbers, as in 1000 or 1000:1000)", text));
  }
  return std::string(text);
}

Result<std::optional<bool>> parse_userns(std::string_view text) {
  if (text.empty()) {
    return std::optional<bool>();
  }
  if (text != "private" && text != "host") {
    return option_error("--userns", fmt::format("'{}' is neither private nor host", text));
  }
  return std::optional<bool>(text == "private");
}

Result<json> parse_labels(const std::vector<std::string>& labels) {
  json out = json::object();
  for (const auto& l : labels) {
    size_t eq = l.find('=');
    if (eq == 0 || l.empty()) {
      return option_error("--label", fmt::format("'{}' is not KEY=VALUE", l));
    }
    if (eq == std::string::npos) {
      out[l] = "";
    } else {
      out[l.substr(0, eq)] = l.substr(eq + 1);
    }
  }
  return out;
}

Result<json> parse_limits(const std::string& memory, const std::string& cpus, const std::string& pids,
                          const std::string& disk) {
  json limits = json::object();
  if (!memory.empty()) {
    SBX_ASSIGN(limits["memory"], parse_size_option("--memory", memory));
  }
  if (!cpus.empty()) {
    SBX_ASSIGN(limits["vcpus"], parse_cpus(cpus));
  }
  if (!pids.empty()) {
    SBX_ASSIGN(limits["pids"], parse_count("--pids", pids));
  }
  if (!disk.empty()) {
    SBX_ASSIGN(limits["disk"], parse_size_option("--disk", disk));
  }
  return limits;
}

Result<void> check_environment_ref(std::string_view option, std::string_view ref) {
  size_t at = ref.find('@');
  std::string_view name = ref.substr(0, at);
  bool version_ok = at == std::string_view::npos ||
                    (all_digits(ref.substr(at + 1)) && ref.substr(at + 1).size() <= 9 &&
                     ref.substr(at + 1).find_first_not_of('0') != std::string_view::npos);
  if (name.empty() || !version_ok) {
    std::string what = fmt::format("'{}' is not NAME or NAME@VERSION (VERSION a number such as 2)", ref);
    return option.empty() ? Error(what, EINVAL) : option_error(option, what);
  }
  return ok();
}

Result<json> parse_env(const std::vector<std::string>& env, const EnvLookup& lookup) {
  json out = json::array();
  for (const auto& e : env) {
    size_t eq = e.find('=');
    if (eq == 0 || e.empty()) {
      return option_error("--env", fmt::format("'{}' is not NAME=VALUE or NAME", e));
    }
    if (eq != std::string::npos) {
      out.push_back(e);
      continue;
    }
    // NAME alone: the caller's value, like docker; left out when the caller has none.
    if (auto v = lookup ? lookup(e) : std::nullopt) {
      out.push_back(e + "=" + *v);
    }
  }
  return out;
}

Result<json> parse_mount(std::string_view text, const std::string& cwd) {
  auto bad = [&](std::string_view why) {
    return option_error("--mount", fmt::format("'{}': {} (expected SOURCE:DESTINATION[:ro|rw])", text, why));
  };
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string_view::npos ? colon : colon - start));
    if (colon == std::string_view::npos) {
      break;
    }
    start = colon + 1;
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    return bad("wrong number of fields");
  }
  if (parts[1][0] != '/') {
    return bad("the destination must be an absolute path");
  }
  bool read_only = true;
  if (parts.size() == 3) {
    if (parts[2] == "rw") {
      read_only = false;
    } else if (parts[2] != "ro") {
      return bad(fmt::format("unknown mode '{}'", parts[2]));
    }
  }
  return json{{"source", absolute_path(parts[0], cwd)},
              {"destination", absolute_path(parts[1], "/")},
              {"read_only", read_only}};
}

std::string absolute_path(std::string_view path, const std::string& cwd) {
  std::string joined = path.starts_with('/') ? std::string(path) : cwd + "/" + std::string(path);
  std::vector<std::string_view> parts;
  std::string_view rest = joined;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      if (!parts.empty()) {
        parts.pop_back();
      }
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (auto p : parts) {
    out += '/';
    out += p;
  }
  return out.empty() ? "/" : out;
}

Result<json> create_params(const CreateOptions& o, const std::string& cwd, const EnvLookup& lookup, bool with_cmd) {
  json p = json::object();
  if (!o.name.empty()) {
    p["name"] = o.name;
  }
  if (!o.rootfs.empty() && !o.image.empty()) {
    return Error("--rootfs and --image exclude each other", EINVAL);
  }
  if (!o.rootfs.empty()) {
    p["rootfs"] = absolute_path(o.rootfs, cwd);
  }
  SBX_TRY(add_source(o, with_cmd, p));
  if (!o.labels.empty()) {
    SBX_ASSIGN(p["labels"], parse_labels(o.labels));
  }
  SBX_TRY(add_limits(o, p));
  if (!o.env.empty()) {
    SBX_ASSIGN(p["env"], parse_env(o.env, lookup));
  }
  if (!o.mounts.empty()) {
    p["mounts"] = json::array();
    for (const auto& m : o.mounts) {
      SBX_ASSIGN(json mount, parse_mount(m, cwd));
      p["mounts"].push_back(std::move(mount));
    }
  }
  if (!o.ttl.empty()) {
    SBX_ASSIGN(double ttl, parse_seconds("--ttl", o.ttl, false));
    p["ttl"] = static_cast<int64_t>(ttl);
  }
  SBX_TRY(add_identity(o, p));
  SBX_TRY(add_security(o, p));
  if (with_cmd && !o.command.empty()) {
    p["cmd"] = o.command;
  }
  if (o.no_start) {
    p["start"] = false;
  }
  if (!o.tenant.empty()) {
    p["tenant"] = o.tenant;
  }
  return p;
}

Result<json> exec_params(const std::string& id, const std::vector<std::string>& argv, const ExecOptions& o,
                         const EnvLookup& lookup) {
  if (argv.empty()) {
    return Error("no command given (sbxctl exec SANDBOX [--] COMMAND [ARG...])", EINVAL);
  }
  json p = {{"id", id}, {"argv", argv}};
  if (!o.env.empty()) {
    SBX_ASSIGN(p["env"], parse_env(o.env, lookup));
  }
  if (!o.cwd.empty()) {
    if (o.cwd[0] != '/') {
      return option_error("--cwd", fmt::format("'{}' is not an absolute path", o.cwd));
    }
    p["cwd"] = o.cwd;
  }
  if (!o.user.empty()) {
    SBX_ASSIGN(p["user"], parse_user(o.user));
  }
  if (!o.timeout.empty()) {
    SBX_ASSIGN(double t, parse_seconds("--timeout", o.timeout, true));
    p["timeout"] = t == std::floor(t) ? json(static_cast<int64_t>(t)) : json(t);
  }
  if (!o.output_limit.empty()) {
    SBX_ASSIGN(p["output_limit"], parse_size_option("--output-limit", o.output_limit));
  }
  if (!o.stream) {
    p["stream"] = false;
  }
  return p;
}

Result<json> run_params(const CreateOptions& create, const ExecOptions& exec, const std::string& cwd,
                        const EnvLookup& lookup) {
  std::vector<std::string> argv = run_argv(create);
  SBX_ASSIGN(json io, exec_params("", argv, exec, lookup));
  SBX_ASSIGN(json p, create_params(create, cwd, lookup, false));
  p.erase("entrypoint");  // create_params' idle marker: here argv is the main command
  p["argv"] = std::move(argv);
  for (const char* key : {"timeout", "output_limit", "stream"}) {
    if (io.contains(key)) {
      p[key] = io[key];
    }
  }
  return p;
}

std::vector<std::string> run_argv(const CreateOptions& o) {
  std::vector<std::string> argv;
  if (o.entrypoint && !o.entrypoint->empty()) {
    argv.push_back(*o.entrypoint);
  }
  argv.insert(argv.end(), o.command.begin(), o.command.end());
  return argv;
}

bool label_matches(const json& labels, std::string_view selector) {
  if (!labels.is_object()) {
    return false;
  }
  size_t eq = selector.find('=');
  auto it = labels.find(std::string(selector.substr(0, eq)));
  if (it == labels.end()) {
    return false;
  }
  return eq == std::string_view::npos || (it->is_string() && it->get<std::string>() == selector.substr(eq + 1));
}

std::vector<std::string> trailing_command(std::vector<std::string> args) {
  if (!args.empty() && args.front() == "--") {
    args.erase(args.begin());
  }
  return args;
}

ExecStatus exec_status(const json& result, double timeout_s) {
  ExecStatus st;
  if (!result.is_object()) {
    st.exit_code = 125;
    st.notes.push_back("sbxd sent an exec result that is not an object");
    return st;
  }
  auto int_of = [&](const char* key) -> std::optional<int64_t> {
    auto it = result.find(key);
    if (it == result.end() || !it->is_number_integer()) {
      return std::nullopt;
    }
    return it->get<int64_t>();
  };
  auto flag = [&](const char* key) { return result.value(key, json(false)) == json(true); };
  if (auto code = int_of("exit_code")) {
    st.exit_code = static_cast<int>(*code & 0xff);
  } else if (auto sig = int_of("signal")) {
    st.exit_code = 128 + static_cast<int>(*sig);
  } else {
    st.exit_code = 125;
    st.notes.push_back("sbxd reported neither an exit code nor a signal");
  }
  if (flag("timed_out")) {
    st.exit_code = 124;
    st.notes.push_back(timeout_s > 0 ? fmt::format("the command timed out after {}s and was killed", timeout_s)
                                     : std::string("the command timed out and was killed"));
  }
  if (flag("oom_killed")) {
    st.notes.push_back("the command was killed by the out-of-memory killer (the sandbox hit its memory limit)");
  }
  if (flag("truncated")) {
    st.notes.push_back("the output was truncated at the output limit; the rest was dropped");
  }
  return st;
}

int exec_error_status(int code, const json& data) {
  if (code != api::kSystemError || !data.is_object()) {
    return 125;
  }
  auto it = data.find("errno");
  if (it == data.end() || !it->is_number_integer()) {
    return 125;
  }
  int err = it->get<int>();
  if (err == ENOENT) {
    return 127;
  }
  if (err == EACCES || err == ENOEXEC || err == EISDIR || err == EPERM) {
    return 126;
  }
  return 125;
}

CpTarget parse_cp_target(std::string_view text) {
  size_t colon = text.find(':');
  if (text.empty() || text[0] == '/' || text[0] == '.' || colon == std::string_view::npos || colon == 0) {
    return {"", std::string(text)};
  }
  std::string path(text.substr(colon + 1));
  bool dir = path.ends_with('/') && path != "/";
  path = absolute_path(path, "/");
  if (dir) {
    path += '/';  // keep "into this directory"
  }
  return {std::string(text.substr(0, colon)), path};
}

std::string base_name(std::string_view path) {
  while (path.size() > 1 && path.ends_with('/')) {
    path.remove_suffix(1);
  }
  if (path == "/") {
    return "";
  }
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string dir_name(std::string_view path) {
  std::string p = absolute_path(path, "/");
  size_t slash = p.rfind('/');
  return slash == 0 ? "/" : p.substr(0, slash);
}

std::string join_path(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (!out.ends_with('/')) {
    out += '/';
  }
  out += name;
  return out;
}

}  // namespace sbx::cli
