#pragma once
// Pure helpers that read parts of an HTTP request: the bearer token, query values, the Accept header, and the
// translation of the API's exec body into sandbox.exec params.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace sbx::httpd {

using json = nlohmann::json;

// The token of "Authorization: Bearer <token>" (scheme case-insensitive, blanks around the token ignored);
// "" when the header is missing, of another scheme, or empty.
std::string bearer_token(std::string_view authorization);

// "true"/"1"/"yes" and "false"/"0"/"no" (any case); an error naming `name` otherwise.
Result<bool> parse_bool(std::string_view name, std::string_view text);
// A non-negative decimal integer.
Result<int64_t> parse_count(std::string_view name, std::string_view text);
// A permission mode in octal, "0644" or "644", 0 to 07777.
Result<int> parse_mode(std::string_view text);

// Whether an Accept header asks for text/event-stream.
bool wants_event_stream(std::string_view accept);

// The body of POST /v1/sandboxes/{id}/exec as sandbox.exec params for sandbox `id`: argv (array of strings), or
// cmd (a string, run with /bin/sh -c, or an array like argv); env, cwd, user, timeout, output_limit as
// sandbox.exec takes them; stdin (text) or stdin_b64. Errors (kInvalidParams) name the field.
Result<json> exec_params(const std::string& id, const json& body);

// The body of POST /v1/sandboxes as sandbox.create params: the fields sbx-rpc(7) documents, but not tenant (the
// key's tenant is used) nor mounts (host paths: kPermissionDenied). Unknown fields are kInvalidParams.
Result<json> create_params(const json& body);

}  // namespace sbx::httpd
