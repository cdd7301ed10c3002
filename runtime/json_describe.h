#pragma once
// How a JSON value a reader did not expect is named in its error: "string 'abc'", "number 1.5", "boolean true",
// "array", "object", "null". Shared by every reader of JSON the runtime is handed (plans, seccomp profiles, CDI
// specs).
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sbx::rt {

inline std::string describe_json(const nlohmann::json& j) {
  if (j.is_string()) {
    return fmt::format("string '{}'", j.get_ref<const std::string&>());
  }
  if (j.is_number() || j.is_boolean()) {
    return fmt::format("{} {}", j.type_name(), j.dump());
  }
  return j.type_name();
}

}  // namespace sbx::rt
