#pragma once
// The shim's own metrics and their Prometheus text exposition (format 0.0.4). The registry is thread-safe; the
// formatting helpers are pure.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

namespace sbx::httpd {

using json = nlohmann::json;
using Labels = std::vector<std::pair<std::string, std::string>>;

// A cumulative histogram over fixed upper bounds (seconds); +Inf is implied.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // per bucket, not cumulative; last: +Inf
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Upper bounds from 1 ms to 60 s: HTTP requests, RPCs, execs.
const std::vector<double>& default_buckets();

// Prometheus text helpers.
std::string escape_label_value(std::string_view value);
std::string format_labels(const Labels& labels);  // "" or {a="x",b="y"}
std::string format_value(double value);           // integers without a fraction, +Inf, NaN
// "# HELP", "# TYPE" lines for a metric family.
std::string family_header(std::string_view name, std::string_view type, std::string_view help);
std::string sample_line(std::string_view name, const Labels& labels, double value);
// NAME_bucket{...,le="..."} (cumulative) for each bound and +Inf, NAME_sum, NAME_count.
std::string histogram_lines(std::string_view name, const Labels& labels, const Histogram& h);

// The families sbxd's daemon.metrics result gives (sbx_up, sbx_sandboxes{state}, sbx_oom_kills_total,
// sbx_execs_running); `result` null: sbxd did not answer (sbx_up 0 and nothing else).
std::string daemon_metrics_text(const json& result);

class Metrics {
 public:
  void record_request(std::string_view route, std::string_view method, int status, double seconds);
  void record_rpc(std::string_view method, double seconds);
  void record_exec(double seconds);
  // The exposition of everything recorded, then `daemon_text`.
  std::string render(const std::string& daemon_text);

 private:
  std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> request_seconds_;  // by route
  std::map<std::string, Histogram> rpc_seconds_;      // by method
  uint64_t execs_ = 0;
  Histogram exec_seconds_{default_buckets()};
};

}  // namespace sbx::httpd
