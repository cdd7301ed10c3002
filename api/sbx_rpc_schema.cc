// sbx-rpc-schema: prints the protocol as sbxd serves it (api::methods() and the error codes) as one JSON document,
// for tools that check the manual (tests/docs/check_docs.py) or generate clients. Not installed.
//
// {"api_version": 1,
//  "errors": [{"code": -32700, "name": "parse_error"}, ...],
//  "methods": [{"name", "summary", "params": [{"name", "type", "required", "doc"}], "result", "notifications"}]}
#include <cstdio>
#include <string>

#include "api/protocol.h"

namespace {

using sbx::api::json;

// Every code error_code_name() knows, from the JSON-RPC reserved range down to the end of the server range.
json error_codes() {
  json out = json::array();
  for (int code = -32000; code >= -32768; --code) {
    std::string_view name = sbx::api::error_code_name(code);
    if (name != "unknown") {
      out.push_back({{"code", code}, {"name", name}});
    }
  }
  return out;
}

json method_json(const sbx::api::MethodSpec& m) {
  json params = json::array();
  for (const auto& p : m.params) {
    params.push_back({{"name", p.name},
                      {"type", sbx::api::param_type_name(p.type)},
                      {"required", p.required},
                      {"doc", p.doc}});
  }
  return {{"name", m.name},
          {"summary", m.summary},
          {"params", params},
          {"result", m.result},
          {"notifications", m.notifications}};
}

}  // namespace

int main() {
  json methods = json::array();
  for (const auto& m : sbx::api::methods()) {
    methods.push_back(method_json(m));
  }
  json doc = {{"api_version", sbx::api::kApiVersion}, {"errors", error_codes()}, {"methods", methods}};
  std::string text = doc.dump(2) + "\n";
  return std::fwrite(text.data(), 1, text.size(), stdout) == text.size() ? 0 : 1;
}
