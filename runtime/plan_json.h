#pragma once
// rt::Plan, rt::ProcessSpec and rt::RuntimeConfig as JSON: how the daemon hands a sandbox or an exec to its monitor
// (sbx-monitor reads them from its spec line).
//
// Field names are the C++ members' names ("limits": {"memory_max": 1073741824}, "security": {"keep_caps": [...]}).
// Reading: a missing field keeps the type's default, null is an unset optional, an unknown field is an error (a typo
// must not silently become a default). Every error names the field:
//   "plan.limits.memory_max: expected a non-negative integer, got string '1G'"
// Values are only type- and range-checked here; validate_plan checks what they mean.
// A ProcessSpec's stdio fds are not part of it: stdio is whatever the reader gives the process.
// CgroupMode is "auto", "v1" or "v2".
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "base/error.h"
#include "runtime/plan.h"
#include "runtime/runtime.h"

namespace sbx::rt {

nlohmann::json plan_to_json(const Plan& plan);
// `field` prefixes error messages ("plan").
Result<Plan> plan_from_json(const nlohmann::json& j, std::string_view field = "plan");

nlohmann::json process_to_json(const ProcessSpec& proc);
Result<ProcessSpec> process_from_json(const nlohmann::json& j, std::string_view field = "process");

nlohmann::json runtime_config_to_json(const RuntimeConfig& config);
Result<RuntimeConfig> runtime_config_from_json(const nlohmann::json& j, std::string_view field = "runtime");

// Text forms: one JSON object.
std::string plan_to_json_text(const Plan& plan);
Result<Plan> plan_from_json_text(std::string_view text);

}  // namespace sbx::rt
