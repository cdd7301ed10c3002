#include "httpd/request.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "api/protocol.h"

namespace sbx::httpd {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool is_string_array(const json& v) {
  return v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_string(); });
}

}  // namespace

std::string bearer_token(std::string_view authorization) {
  std::string_view s = trim(authorization);
  if (s.size() < 7 || lower(s.substr(0, 7)) != "bearer ") {
    return "";
  }
  std::string_view token = trim(s.substr(7));
  if (token.find_first_of(" \t") != std::string_view::npos) {
    return "";
  }
  return std::string(token);
}

Result<bool> parse_bool(std::string_view name, std::string_view text) {
  std::string v = lower(text);
  if (v == "true" || v == "1" || v == "yes") {
    return true;
  }
  if (v == "false" || v == "0" || v == "no") {
    return false;
  }
  return api::param_error(name, "must be true or false");
}

Result<int64_t> parse_count(std::string_view name, std::string_view text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 0) {
    return api::param_error(name, "must be a non-negative integer");
  }
  return v;
}

Result<int> parse_mode(std::string_view text) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 0 || v > 07777) {
    return api::param_error("mode", "must be an octal mode such as 0644");
  }
  return v;
}

bool wants_event_stream(std::string_view accept) {
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t comma = accept.find(',', pos);
    std::string_view item = accept.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    item = trim(item.substr(0, item.find(';')));
    if (lower(item) == "text/event-stream") {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    pos = comma + 1;
  }
  return false;
}

Result<json> exec_params(const std::string& id, const json& body) {
  if (!body.is_object()) {
    return api::api_error(api::kInvalidParams, "the body must be a JSON object");
  }
  static const std::set<std::string> known = {"argv", "cmd", "env", "cwd", "user", "stdin", "stdin_b64", "timeout",
                                              "output_limit"};
  for (const auto& [k, v] : body.items()) {
    if (!known.count(k)) {
      return api::param_error(k, "unknown field");
    }
  }
  json p = {{"id", id}};
  if (body.contains("argv") == body.contains("cmd")) {
    return api::param_error("argv", "give exactly one of argv and cmd");
  }
  if (body.contains("argv")) {
    if (!is_string_array(body["argv"]) || body["argv"].empty()) {
      return api::param_error("argv", "must be a non-empty array of strings");
    }
    p["argv"] = body["argv"];
  } else if (body["cmd"].is_string()) {
    p["argv"] = json::array({"/bin/sh", "-c", body["cmd"]});
  } else if (is_string_array(body["cmd"]) && !body["cmd"].empty()) {
    p["argv"] = body["cmd"];
  } else {
    return api::param_error("cmd", "must be a string or a non-empty array of strings");
  }
  if (body.contains("stdin") && body.contains("stdin_b64")) {
    return api::param_error("stdin", "give at most one of stdin and stdin_b64");
  }
  if (body.contains("stdin")) {
    if (!body["stdin"].is_string()) {
      return api::param_error("stdin", "must be a string");
    }
    p["stdin_b64"] = api::base64_encode(body["stdin"].get<std::string>());
  }
  for (const char* k : {"env", "cwd", "user", "stdin_b64", "timeout", "output_limit"}) {
    if (body.contains(k)) {
      p[k] = body[k];  // sbxd checks types and values (-32602 -> 400)
    }
  }
  return p;
}

Result<json> create_params(const json& body) {
  if (!body.is_object()) {
    return api::api_error(api::kInvalidParams, "the body must be a JSON object");
  }
  static const std::set<std::string> known = {"name",    "rootfs", "image", "environment", "labels", "limits",
                                              "env",     "ttl",    "seccomp", "cmd",       "entrypoint", "network",
                                              "cwd",     "user",   "hostname", "start", "read_only", "cap_drop",
                                              "devices"};
  for (const auto& [k, v] : body.items()) {
    if (k == "mounts") {
      return api::api_error(api::kPermissionDenied, "params.mounts: host bind mounts are not available over HTTP");
    }
    if (k == "cap_add" || k == "userns") {
      return api::api_error(api::kPermissionDenied, "params.{}: is for the host's root only, not available over HTTP",
                            k);
    }
    if (k == "tenant") {
      return api::param_error("tenant", "is the API key's tenant and cannot be set");
    }
    if (!known.count(k)) {
      return api::param_error(k, "unknown field");
    }
  }
  return body;
}

}  // namespace sbx::httpd
