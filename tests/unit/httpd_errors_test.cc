// sbx-httpd's errors: sbxd's JSON-RPC codes as HTTP statuses and stable codes, and the error body.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "api/protocol.h"
#include "httpd/errors.h"

using namespace sbx;
using namespace sbx::httpd;

TEST_SUITE("httpd.errors") {

TEST_CASE("each sbxd error code maps to its status and stable code") {
  struct Case {
    int rpc;
    int status;
    const char* code;
  };
  for (const Case& c : {Case{api::kNotFound, 404, "not_found"}, Case{api::kPermissionDenied, 403, "permission_denied"},
                        Case{api::kInvalidState, 409, "invalid_state"}, Case{api::kConflict, 409, "conflict"},
                        Case{api::kLimitExceeded, 409, "limit_exceeded"}, Case{api::kInvalidParams, 400, "invalid_params"},
                        Case{api::kInvalidRequest, 400, "invalid_params"}, Case{api::kParseError, 400, "invalid_params"},
                        Case{0, 503, "unavailable"}, Case{api::kInternalError, 500, "internal"},
                        Case{api::kSystemError, 500, "internal"}, Case{api::kMethodNotFound, 500, "internal"},
                        Case{-1, 500, "internal"}}) {
    CAPTURE(c.rpc);
    HttpError e = http_error_of_rpc(c.rpc, "why");
    CHECK(e.status == c.status);
    CHECK(e.code == c.code);
    CHECK(e.message == "why");
  }
}

TEST_CASE("the error body is one JSON object with code and message") {
  std::string body = error_body({404, "not_found", "no sandbox 'x'"});
  CHECK(body.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(body);
  CHECK(j == nlohmann::json{{"error", {{"code", "not_found"}, {"message", "no sandbox 'x'"}}}});
}

TEST_CASE("statuses the HTTP layer produces get codes of their own") {
  CHECK(http_error_of_status(413).code == "too_large");
  CHECK(http_error_of_status(400).code == "bad_request");
  CHECK(http_error_of_status(405).code == "method_not_allowed");
  CHECK(http_error_of_status(404).code == "not_found");
  CHECK(http_error_of_status(502).code == "internal");
  CHECK(http_error_of_status(418).status == 418);
}

}
