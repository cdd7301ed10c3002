#pragma once
// httpd/openapi.json, embedded at build time (embed.py): what GET /v1/openapi.json serves.
#include <string_view>

namespace sbx::httpd {

std::string_view openapi_json();

}  // namespace sbx::httpd
