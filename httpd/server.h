#pragma once
// sbx-httpd's HTTP server: cpp-httplib with a fixed pool of worker threads, one catch-all handler per method that
// routes through routes.h, authentication (API keys verified by sbxd on every request), rate limits, one log line
// and the metrics of every request.
#include <memory>

#include "base/error.h"
#include "httpd/config.h"

namespace sbx::httpd {

class HttpServer {
 public:
  explicit HttpServer(HttpdConfig config);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listen address (the port is returned: useful with port 0 in tests).
  Result<int> bind();
  // Serves until stop(); returns once every worker is done.
  Result<void> serve();
  // From any thread (a signal handler's thread): stops accepting and ends serve().
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sbx::httpd
