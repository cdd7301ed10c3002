#pragma once
// The JSON-RPC 2.0 protocol between sbxd and its clients, as code: error codes, the method table (names, params,
// what they return) the daemon validates requests against and man/sbx-rpc.7 documents, and the small codecs the
// protocol uses (base64 for binary data, byte sizes such as "512M", RFC 3339 times).
//
// Framing: one JSON object per line ("\n"-terminated) over a unix stream socket, both directions.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace sbx::api {

using json = nlohmann::json;

inline constexpr int kApiVersion = 1;
inline constexpr const char* kDefaultSocket = "/run/sbx/sbxd.sock";

// Stable error codes. The JSON-RPC ones, then sbx's own in the implementation-defined server range.
enum ErrorCode : int {
  kParseError = -32700,
  kInvalidRequest = -32600,
  kMethodNotFound = -32601,
  kInvalidParams = -32602,
  kInternalError = -32603,
  kNotFound = -32000,
  kPermissionDenied = -32001,
  kInvalidState = -32002,
  kConflict = -32003,
  kLimitExceeded = -32004,
  kSystemError = -32005,
};

// "not_found" for kNotFound, ...; "unknown" for codes not in the table.
std::string_view error_code_name(int code);

// An Error with an API code: make_api_error(kNotFound, "no sandbox '{}'", id).
template <typename... Args>
Error api_error(int code, fmt::format_string<Args...> f, Args&&... args) {
  return Error(fmt::format(f, std::forward<Args>(args)...)).with_code(code);
}
// kInvalidParams naming the parameter: "params.limits.memory: must be at least 4 MiB".
Error param_error(std::string_view field, std::string_view message);

// The JSON-RPC error object for an Error: code (kSystemError when it carries only an errno, kInternalError when
// it carries neither), message, and data {errno, errname} when it carries an errno.
json error_object(const Error& error);

enum class ParamType { kString, kInt, kNumber, kBool, kObject, kArray, kStringArray, kSize, kIntOrString, kStringOrStringArray,
                       kStringOrObject };

struct ParamSpec {
  std::string_view name;
  ParamType type;
  bool required;
  std::string_view doc;
};

struct MethodSpec {
  std::string_view name;
  std::string_view summary;
  std::vector<ParamSpec> params;
  std::string_view result;         // what the result holds
  std::string_view notifications;  // notifications sent while the call runs; empty: none
};

// Every method sbxd serves, in the order the manual lists them.
const std::vector<MethodSpec>& methods();
const MethodSpec* find_method(std::string_view name);
std::string_view param_type_name(ParamType type);

// Checks `params` (an object, or null for none) against the method's table: required params present, each of the
// declared type, no unknown names. Errors are kInvalidParams naming the parameter.
Result<void> check_params(const MethodSpec& method, const json& params);

// Requests, results, errors and notifications, each one line without the trailing "\n".
std::string encode_request(uint64_t id, std::string_view method, const json& params);
std::string encode_result(const json& id, const json& result);
std::string encode_error(const json& id, const json& error);
std::string encode_notification(std::string_view method, const json& params);
// One line of JSON; bytes that are not UTF-8 (a file name, a kernel message) become U+FFFD instead of failing.
std::string dump_json(const json& value);

std::string base64_encode(std::string_view data);
Result<std::string> base64_decode(std::string_view text);

// Byte sizes: a JSON integer, or a string "1048576", "512K", "512M", "1.5G", "2Gi", "1T" (powers of 1024).
Result<uint64_t> parse_size(std::string_view text);
Result<uint64_t> size_param(const json& value, std::string_view field);
// 1536 -> "1.5K"; exact powers print without a fraction ("512M").
std::string format_size(uint64_t bytes);

// Milliseconds since the epoch <-> "2026-11-22T10:04:05.123Z".
std::string format_time_ms(int64_t epoch_ms);
int64_t now_ms();

}  // namespace sbx::api
