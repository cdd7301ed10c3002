// Event streams: a streamed exec and a followed log, each on an sbxd connection of its own. The stream writes
// keep-alive comments every `heartbeat` seconds while nothing else comes; a write that fails means the HTTP
// client went away, and the sbxd connection is then shut down, so sbxd kills the exec (or ends the follow) and
// the worker thread is free again.
#include <sys/socket.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "api/protocol.h"
#include "httpd/handlers.h"
#include "httpd/rate_limit.h"
#include "httpd/request.h"
#include "httpd/sse.h"

namespace sbx::httpd {

namespace {

// Serializes writes to the HTTP response from the call's thread and the heartbeat's.
class SseWriter {
 public:
  explicit SseWriter(httplib::DataSink& sink) : sink_(sink) {}

  bool write(const std::string& text) {
    std::lock_guard lock(mu_);
    if (!failed_ && !sink_.write(text.data(), text.size())) {
      failed_ = true;
    }
    return !failed_;
  }
  bool failed() {
    std::lock_guard lock(mu_);
    return failed_;
  }

 private:
  std::mutex mu_;
  httplib::DataSink& sink_;
  bool failed_ = false;
};

// A thread that writes a comment every `interval` seconds until destroyed; when a write fails it calls `gone` once.
class Heartbeat {
 public:
  Heartbeat(SseWriter& writer, double interval, std::function<void()> gone)
      : thread_([this, &writer, interval, gone = std::move(gone)] {
          std::unique_lock lock(mu_);
          while (!stop_) {
            if (cv_.wait_for(lock, std::chrono::duration<double>(interval), [this] { return stop_; })) {
              break;
            }
            lock.unlock();
            bool ok = writer.write(sse_comment("keep-alive"));
            lock.lock();
            if (!ok) {
              gone();
              break;
            }
          }
        }) {}
  ~Heartbeat() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members it uses exist
};

std::string error_event(const Error& error) {
  HttpError e = http_error_of_rpc(error.code(), error.code() == 0 ? "sbxd is unavailable" : error.message());
  return sse_event("error", api::dump_json({{"error", {{"code", e.code}, {"message", e.message}}}}));
}

// The chunk of an exec.output or logs.output notification as the data of its event.
std::string chunk_data(const json& p, bool base64) {
  std::string b64 = p.value("data_b64", "");
  if (base64) {
    return api::dump_json({{"data_b64", b64}});
  }
  auto bytes = api::base64_decode(b64);
  return api::dump_json({{"data", bytes.ok() ? *bytes : std::string()}});
}

void set_stream_headers(httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // nginx: pass events on as they come
}

// One streamed call on an sbxd connection of its own: each `notification` becomes the event `event_of` makes of
// it, keep-alive comments go out while nothing else does, and a client that goes away shuts the connection down,
// so that sbxd ends the call. Returns the call's outcome; the writer tells whether the client is still there.
Result<json> stream_call(Backend& backend, std::string_view tenant, SseWriter& writer, double heartbeat,
                         const std::string& method, const json& params, std::string_view notification,
                         const std::function<std::string(const json&)>& event_of) {
  SBX_ASSIGN(api::Client conn, backend.connect_dedicated(tenant));
  const int fd = conn.fd();
  Heartbeat beat(writer, heartbeat, [fd] { ::shutdown(fd, SHUT_RDWR); });  // stops before conn closes
  return conn.call(method, params, [&](const std::string& m, const json& p) {
    if (m == notification && !writer.write(event_of(p))) {
      ::shutdown(fd, SHUT_RDWR);
    }
  });
}

}  // namespace

void Handlers::stream_exec(Exchange& x, json params, bool base64) {
  // Errors that can be known up front get their status; later ones come as an error event.
  auto sandbox = call(x, "sandbox.inspect", {{"id", params["id"]}}, true);
  if (!sandbox) {
    return;
  }
  if (sandbox->value("state", "") != "running") {
    return send_error(x.res, {409, "invalid_state",
                              fmt::format("sandbox '{}' is not running", params["id"].get<std::string>())});
  }
  params["stream"] = true;
  set_stream_headers(x.res);
  x.res.set_chunked_content_provider(
      "text/event-stream", [this, tenant = x.tenant, params, base64](size_t, httplib::DataSink& sink) {
        SseWriter writer(sink);
        double start = monotonic_seconds();
        Result<json> r = stream_call(backend_, tenant, writer, config_.heartbeat, "sandbox.exec", params, "exec.output",
                                     [base64](const json& p) {
                                       return sse_event(p.value("stream", "stdout"), chunk_data(p, base64));
                                     });
        double seconds = monotonic_seconds() - start;
        backend_.record_rpc("sandbox.exec", seconds);
        if (writer.failed()) {
          return false;
        }
        if (r.ok()) {
          metrics_.record_exec(seconds);
          writer.write(sse_event("exit", api::dump_json(*r)));
        } else {
          writer.write(error_event(r.error()));
        }
        sink.done();
        return true;
      });
}

void Handlers::stream_logs(Exchange& x, json params) {
  if (!call(x, "sandbox.inspect", {{"id", params["id"]}}, true)) {
    return;
  }
  set_stream_headers(x.res);
  x.res.set_chunked_content_provider(
      "text/event-stream", [this, tenant = x.tenant, params](size_t, httplib::DataSink& sink) {
        SseWriter writer(sink);
        Result<json> r = stream_call(backend_, tenant, writer, config_.heartbeat, "sandbox.logs", params, "logs.output",
                                     [](const json& p) { return sse_event("log", chunk_data(p, false)); });
        if (writer.failed()) {
          return false;
        }
        writer.write(r.ok() ? sse_event("end", api::dump_json(*r)) : error_event(r.error()));
        sink.done();
        return true;
      });
}

}  // namespace sbx::httpd
