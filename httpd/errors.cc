#include "httpd/errors.h"

#include "api/protocol.h"

namespace sbx::httpd {

HttpError http_error_of_rpc(int rpc_code, std::string message) {
  switch (rpc_code) {
    case 0:
      return {503, "unavailable", std::move(message)};
    case api::kParseError:
    case api::kInvalidRequest:
    case api::kInvalidParams:
      return {400, "invalid_params", std::move(message)};
    case api::kNotFound:
      return {404, "not_found", std::move(message)};
    case api::kPermissionDenied:
      return {403, "permission_denied", std::move(message)};
    case api::kInvalidState:
      return {409, "invalid_state", std::move(message)};
    case api::kConflict:
      return {409, "conflict", std::move(message)};
    case api::kLimitExceeded:
      return {409, "limit_exceeded", std::move(message)};
    default:
      return {500, "internal", std::move(message)};
  }
}

std::string error_body(const HttpError& error) {
  return api::dump_json({{"error", {{"code", error.code}, {"message", error.message}}}});
}

HttpError http_error_of_status(int status) {
  switch (status) {
    case 400:
      return {400, "bad_request", "the request is malformed"};
    case 401:
      return {401, "unauthorized", "missing or invalid API key"};
    case 403:
      return {403, "permission_denied", "not allowed"};
    case 404:
      return {404, "not_found", "no such route"};
    case 405:
      return {405, "method_not_allowed", "method not allowed on this route"};
    case 413:
      return {413, "too_large", "the request body is too large"};
    case 414:
      return {414, "too_large", "the request URI is too long"};
    case 416:
      return {416, "bad_request", "range not satisfiable"};
    case 429:
      return {429, "rate_limited", "too many requests"};
    case 503:
      return {503, "unavailable", "sbxd is unavailable"};
    default:
      return {status, status >= 500 ? "internal" : "bad_request", "request failed"};
  }
}

}  // namespace sbx::httpd
