#pragma once
// Shared by runtime/cdi_spec.cc (reading a spec) and runtime/cdi.cc (reading the spec directories), which parses a
// file's JSON once to tell a YAML file from a broken JSON one and to learn a broken spec's kind.
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "base/error.h"
#include "runtime/cdi.h"

namespace sbx::rt {

// A spec from its parsed JSON. Errors are "<field>: <what>", without the path (the caller prepends it).
Result<CdiSpec> cdi_spec_from_json(const nlohmann::json& spec, const std::string& path);

}  // namespace sbx::rt
