// Prometheus text exposition of sbx-httpd's metrics.
#include <doctest/doctest.h>

#include "httpd/metrics.h"

using namespace sbx::httpd;

TEST_SUITE("httpd.metrics") {

TEST_CASE("label values are escaped and labels keep their order") {
  CHECK(format_labels({}) == "");
  CHECK(format_labels({{"route", "/v1/sandboxes/{id}"}, {"method", "GET"}}) ==
        "{route=\"/v1/sandboxes/{id}\",method=\"GET\"}");
  CHECK(escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("values print as Prometheus reads them") {
  CHECK(format_value(3) == "3");
  CHECK(format_value(0.25) == "0.25");
  CHECK(format_value(1.0 / 0.0) == "+Inf");
}

TEST_CASE("a histogram prints cumulative buckets, +Inf, sum and count") {
  Histogram h({0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(0.5);
  h.observe(7);
  CHECK(histogram_lines("d", {{"m", "x"}}, h) ==
        "d_bucket{m=\"x\",le=\"0.1\"} 1\n"
        "d_bucket{m=\"x\",le=\"1\"} 3\n"
        "d_bucket{m=\"x\",le=\"+Inf\"} 4\n"
        "d_sum{m=\"x\"} 8.05\n"
        "d_count{m=\"x\"} 4\n");
}

TEST_CASE("a value on a bound falls into that bound's bucket") {
  Histogram h({1});
  h.observe(1);
  CHECK(h.counts()[0] == 1);
}

TEST_CASE("the registry renders request counters by route, method and status, and the exec counter") {
  Metrics m;
  m.record_request("/v1/sandboxes/{id}", "GET", 404, 0.002);
  m.record_request("/v1/sandboxes/{id}", "GET", 404, 0.003);
  m.record_exec(0.5);
  m.record_rpc("sandbox.exec", 0.4);
  std::string text = m.render("");
  CHECK(text.find("sbx_http_requests_total{route=\"/v1/sandboxes/{id}\",method=\"GET\",status=\"404\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE sbx_http_request_duration_seconds histogram\n") != std::string::npos);
  CHECK(text.find("sbx_http_request_duration_seconds_count{route=\"/v1/sandboxes/{id}\"} 2\n") != std::string::npos);
  CHECK(text.find("sbx_rpc_duration_seconds_count{method=\"sandbox.exec\"} 1\n") != std::string::npos);
  CHECK(text.find("sbx_execs_total 1\n") != std::string::npos);
  CHECK(text.find("sbx_exec_duration_seconds_count 1\n") != std::string::npos);
}

TEST_CASE("sbxd's counts become gauges by state and the OOM counter; without an answer only sbx_up 0") {
  std::string text = daemon_metrics_text({{"sandboxes", {{"running", 2}, {"exited", 1}}}, {"oom_kills", 3},
                                          {"execs_running", 0}});
  CHECK(text.find("sbx_up 1\n") != std::string::npos);
  CHECK(text.find("sbx_sandboxes{state=\"running\"} 2\n") != std::string::npos);
  CHECK(text.find("sbx_sandboxes{state=\"exited\"} 1\n") != std::string::npos);
  CHECK(text.find("sbx_oom_kills_total 3\n") != std::string::npos);
  std::string down = daemon_metrics_text(nullptr);
  CHECK(down.find("sbx_up 0\n") != std::string::npos);
  CHECK(down.find("sbx_sandboxes") == std::string::npos);
}

}
