#include "httpd/metrics.h"

#include <cmath>

#include <fmt/format.h>

namespace sbx::httpd {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) {
    ++i;
  }
  ++counts_[i];
  sum_ += value;
  ++count_;
}

const std::vector<double>& default_buckets() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10,   30, 60};
  return b;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_labels(const Labels& labels) {
  if (labels.empty()) {
    return "";
  }
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", labels[i].first, escape_label_value(labels[i].second));
  }
  return out + "}";
}

std::string format_value(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return fmt::format("{}", static_cast<int64_t>(value));
  }
  return fmt::format("{}", value);
}

std::string family_header(std::string_view name, std::string_view type, std::string_view help) {
  return fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

std::string sample_line(std::string_view name, const Labels& labels, double value) {
  return fmt::format("{}{} {}\n", name, format_labels(labels), format_value(value));
}

std::string histogram_lines(std::string_view name, const Labels& labels, const Histogram& h) {
  std::string out;
  uint64_t cumulative = 0;
  const std::string bucket = fmt::format("{}_bucket", name);
  for (size_t i = 0; i <= h.bounds().size(); ++i) {
    cumulative += h.counts()[i];
    Labels with_le = labels;
    with_le.emplace_back("le", i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf");
    out += sample_line(bucket, with_le, static_cast<double>(cumulative));
  }
  out += sample_line(fmt::format("{}_sum", name), labels, h.sum());
  out += sample_line(fmt::format("{}_count", name), labels, static_cast<double>(h.count()));
  return out;
}

std::string daemon_metrics_text(const json& result) {
  std::string out = family_header("sbx_up", "gauge", "Whether sbxd answered daemon.metrics for this scrape.");
  out += sample_line("sbx_up", {}, result.is_object() ? 1 : 0);
  if (!result.is_object()) {
    return out;
  }
  out += family_header("sbx_sandboxes", "gauge", "Sandboxes in sbxd by state, over all owners and tenants.");
  if (result.contains("sandboxes") && result["sandboxes"].is_object()) {
    for (const auto& [state, n] : result["sandboxes"].items()) {
      out += sample_line("sbx_sandboxes", {{"state", state}}, n.is_number() ? n.get<double>() : 0);
    }
  }
  out += family_header("sbx_oom_kills_total", "counter",
                       "Sandbox runs that ended with an OOM kill since sbxd started.");
  out += sample_line("sbx_oom_kills_total", {}, result.value("oom_kills", 0.0));
  out += family_header("sbx_execs_running", "gauge", "Execs running in sbxd now, over all callers.");
  out += sample_line("sbx_execs_running", {}, result.value("execs_running", 0.0));
  return out;
}

void Metrics::record_request(std::string_view route, std::string_view method, int status, double seconds) {
  std::lock_guard lock(mu_);
  ++requests_[{std::string(route), std::string(method), status}];
  request_seconds_.try_emplace(std::string(route), default_buckets()).first->second.observe(seconds);
}

void Metrics::record_rpc(std::string_view method, double seconds) {
  std::lock_guard lock(mu_);
  rpc_seconds_.try_emplace(std::string(method), default_buckets()).first->second.observe(seconds);
}

void Metrics::record_exec(double seconds) {
  std::lock_guard lock(mu_);
  ++execs_;
  exec_seconds_.observe(seconds);
}

std::string Metrics::render(const std::string& daemon_text) {
  std::lock_guard lock(mu_);
  std::string out = family_header("sbx_http_requests_total", "counter", "HTTP requests served, by route pattern, "
                                                                        "method and status.");
  for (const auto& [key, n] : requests_) {
    const auto& [route, method, status] = key;
    out += sample_line("sbx_http_requests_total",
                       {{"route", route}, {"method", method}, {"status", std::to_string(status)}},
                       static_cast<double>(n));
  }
  out += family_header("sbx_http_request_duration_seconds", "histogram", "Time from routing to the last byte, by "
                                                                         "route pattern.");
  for (const auto& [route, h] : request_seconds_) {
    out += histogram_lines("sbx_http_request_duration_seconds", {{"route", route}}, h);
  }
  out += family_header("sbx_rpc_duration_seconds", "histogram", "Round trips of JSON-RPC calls to sbxd, by method.");
  for (const auto& [method, h] : rpc_seconds_) {
    out += histogram_lines("sbx_rpc_duration_seconds", {{"method", method}}, h);
  }
  out += family_header("sbx_execs_total", "counter", "Execs run through the HTTP API (JSON and streamed).");
  out += sample_line("sbx_execs_total", {}, static_cast<double>(execs_));
  out += family_header("sbx_exec_duration_seconds", "histogram", "Duration of execs run through the HTTP API.");
  out += histogram_lines("sbx_exec_duration_seconds", {}, exec_seconds_);
  return out + daemon_text;
}

}  // namespace sbx::httpd
