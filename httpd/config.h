#pragma once
// sbx-httpd's configuration: an optional TOML file (--config; every key optional, documented in sbx-httpd(8)),
// then command-line flags over it.
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace sbx::httpd {

struct HttpdConfig {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT
  std::string socket;                     // sbxd's socket; empty: api::default_socket_path()
  int64_t threads = 64;                   // worker threads (one per open connection)
  double rate = 20;                       // requests per second per API key
  double burst = 40;                      // bucket size per API key
  int64_t auth_failures = 10;             // failed authentications per client address ...
  double auth_failure_window = 60;        // ... in this many seconds
  uint64_t max_body = 64ull << 20;        // largest request body (and file download)
  double heartbeat = 15;                  // seconds between keep-alive comments of an event stream
  bool allow_root = false;
};

// Reads a TOML file over the defaults. Unknown keys are errors.
Result<HttpdConfig> load_config(const std::string& path);
Result<HttpdConfig> parse_config(std::string_view toml_text, std::string_view source);

// "HOST:PORT" ("[::1]:8080" for IPv6) -> host and port.
struct ListenAddress {
  std::string host;
  int port = 0;
};
Result<ListenAddress> parse_listen(std::string_view text);

// Checks the values' ranges (threads >= 1, rate > 0, ...).
Result<void> validate(const HttpdConfig& config);

}  // namespace sbx::httpd
