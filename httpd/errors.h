#pragma once
// The HTTP API's errors: a status and a stable code, sent as {"error":{"code":"...","message":"..."}}, and the
// mapping of sbxd's JSON-RPC error codes onto them. Pure.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sbx::httpd {

using json = nlohmann::json;

struct HttpError {
  int status = 500;
  std::string code;  // "not_found", ...: stable, for programs
  std::string message;  // for people; may change
};

// The status and code an sbxd error code becomes: -32000 -> 404 not_found, -32001 -> 403 permission_denied, -32002 ->
// 409 invalid_state, -32003 -> 409 conflict, -32004 -> 409 limit_exceeded, -32600/-32602/-32700 -> 400
// invalid_params, 0 (no answer: sbxd down or the connection lost) -> 503 unavailable, anything else -> 500 internal.
HttpError http_error_of_rpc(int rpc_code, std::string message);

// {"error":{"code":...,"message":...}} as one line.
std::string error_body(const HttpError& error);

// The reason phrase's code for statuses the HTTP layer itself produces (400 bad_request, 404 not_found, 405
// method_not_allowed, 413 too_large, ...), for an error response that has no body yet.
HttpError http_error_of_status(int status);

}  // namespace sbx::httpd
