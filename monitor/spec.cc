// The spec lines sbxd sends: what to create or run. The runtime's types come through runtime/plan_json.
#include <initializer_list>

#include "monitor/monitor.h"
#include "runtime/plan_json.h"

namespace sbx::monitor {

namespace {

using nlohmann::json;

Result<void> check_fields(const json& spec, std::initializer_list<std::string_view> known) {
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return Error(fmt::format("spec: unknown field '{}'", it.key()), EINVAL);
    }
  }
  return ok();
}

// The member `key`, which must be there.
Result<const json*> required(const json& spec, const char* key) {
  auto it = spec.find(key);
  if (it == spec.end()) {
    return Error(fmt::format("spec.{}: missing", key), EINVAL);
  }
  return &*it;
}

Result<std::string> required_string(const json& spec, const char* key) {
  SBX_ASSIGN(const json* j, required(spec, key));
  if (!j->is_string() || j->get_ref<const std::string&>().empty()) {
    return Error(fmt::format("spec.{}: expected a non-empty string", key), EINVAL);
  }
  return j->get<std::string>();
}

Result<uint64_t> optional_u64(const json& spec, const char* key, uint64_t fallback) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) {
    return fallback;
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return Error(fmt::format("spec.{}: expected a non-negative integer, got {}", key, it->dump()), EINVAL);
  }
  return it->get<uint64_t>();
}

Result<rt::RuntimeConfig> runtime_of(const json& spec) {
  SBX_ASSIGN(const json* j, required(spec, "runtime"));
  return rt::runtime_config_from_json(*j, "spec.runtime");
}

}  // namespace

// `key`: an optional array of distinct stdio names ("stdin", "stdout", "stderr"), one for each fd that came with the
// message, in order; returned as 0, 1, 2.
Result<std::vector<int>> stdio_names(const json& message, const char* key, const char* what) {
  std::vector<int> out;
  auto names = message.find(key);
  if (names == message.end()) {
    return out;
  }
  if (!names->is_array() || names->size() > Channel::kMaxFds) {
    return Error(fmt::format("{}.{}: expected an array of at most {} stdio names", what, key, Channel::kMaxFds),
                 EINVAL);
  }
  for (size_t i = 0; i < names->size(); ++i) {
    const json& name = (*names)[i];
    static constexpr std::string_view kNames[] = {"stdin", "stdout", "stderr"};
    auto it = name.is_string() ? std::find(std::begin(kNames), std::end(kNames), name.get<std::string>())
                               : std::end(kNames);
    if (it == std::end(kNames)) {
      return Error(fmt::format("{}.{}[{}]: expected \"stdin\", \"stdout\" or \"stderr\", got {}", what, key, i,
                               name.dump()), EINVAL);
    }
    int which = static_cast<int>(it - std::begin(kNames));
    if (std::find(out.begin(), out.end(), which) != out.end()) {
      return Error(fmt::format("{}.{}[{}]: {} is named twice", what, key, i, name.dump()), EINVAL);
    }
    out.push_back(which);
  }
  return out;
}

Result<SandboxSpec> parse_sandbox_spec(const json& spec) {
  SBX_TRY(check_fields(spec, {"runtime", "plan", "log_path", "log_max_bytes", "exit_path", "exec_socket", "stdio"}));
  SandboxSpec out;
  SBX_ASSIGN(out.runtime, runtime_of(spec));
  SBX_ASSIGN(const json* plan, required(spec, "plan"));
  SBX_ASSIGN(out.plan, rt::plan_from_json(*plan, "spec.plan"));
  SBX_ASSIGN(out.exit_path, required_string(spec, "exit_path"));
  SBX_ASSIGN(out.stdio, stdio_names(spec, "stdio", "spec"));
  if (!out.stdio.empty() && !out.plan.main) {
    return Error("spec.stdio: only a sandbox with a main command takes stdio fds", EINVAL);
  }
  if (out.plan.main && out.stdio.empty()) {
    SBX_ASSIGN(out.log_path, required_string(spec, "log_path"));
  } else if (spec.contains("log_path") && spec["log_path"].is_string()) {
    out.log_path = spec["log_path"].get<std::string>();
  }
  SBX_ASSIGN(out.log_max_bytes, optional_u64(spec, "log_max_bytes", out.log_max_bytes));
  if (spec.contains("exec_socket")) {
    SBX_ASSIGN(out.exec_socket, required_string(spec, "exec_socket"));
  }
  if (out.log_max_bytes < 2) {
    return Error(fmt::format("spec.log_max_bytes: {} is below the minimum of 2", out.log_max_bytes), EINVAL);
  }
  return out;
}

Result<rt::RuntimeConfig> parse_spare_prelude(const json& prelude) {
  SBX_TRY(check_fields(prelude, {"runtime"}));
  return runtime_of(prelude);
}

Result<ExecSpec> parse_exec_spec(const json& spec) {
  SBX_TRY(check_fields(spec, {"runtime", "id", "process", "timeout_ms"}));
  ExecSpec out;
  SBX_ASSIGN(out.runtime, runtime_of(spec));
  SBX_ASSIGN(out.id, required_string(spec, "id"));
  SBX_ASSIGN(const json* process, required(spec, "process"));
  SBX_ASSIGN(out.process, rt::process_from_json(*process, "spec.process"));
  SBX_ASSIGN(out.timeout_ms, optional_u64(spec, "timeout_ms", 0));
  return out;
}

Result<ExecRequest> parse_exec_request(const json& request) {
  SBX_TRY(check_fields(request, {"process", "timeout_ms", "fds"}));
  ExecRequest out;
  SBX_ASSIGN(const json* process, required(request, "process"));
  SBX_ASSIGN(out.process, rt::process_from_json(*process, "request.process"));
  SBX_ASSIGN(out.timeout_ms, optional_u64(request, "timeout_ms", 0));
  SBX_ASSIGN(out.fds, stdio_names(request, "fds", "request"));
  return out;
}

}  // namespace sbx::monitor
