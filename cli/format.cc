#include "cli/format.h"

#include <ctime>

#include <fmt/format.h>

#include "api/protocol.h"

namespace sbx::cli {

namespace {

constexpr std::string_view kSeparator = "   ";

// Reads `n` digits at text[pos...]; -1 when they are not there.
int digits_at(std::string_view text, size_t pos, size_t n) {
  if (pos + n > text.size()) {
    return -1;
  }
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

std::string plural(int64_t n, const char* unit) {
  return fmt::format("{} {}{} ago", n, unit, n == 1 ? "" : "s");
}

}  // namespace

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) {
    widths[c] = display_width(headers_[c]);
    for (const auto& row : rows_) {
      widths[c] = std::max(widths[c], display_width(row[c]));
    }
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t c = 0; c < cells.size(); ++c) {
      l += cells[c];
      if (c + 1 < cells.size()) {
        l.append(widths[c] - display_width(cells[c]), ' ');
        l += kSeparator;
      }
    }
    while (l.ends_with(' ')) {
      l.pop_back();
    }
    out += l;
    out += '\n';
  };
  line(headers_);
  for (const auto& row : rows_) {
    line(row);
  }
  return out;
}

std::string render_fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [k, v] : fields) {
    width = std::max(width, display_width(k) + 1);
  }
  std::string out;
  for (const auto& [k, v] : fields) {
    out += k + ":";
    out.append(width - display_width(k) - 1 + 2, ' ');
    out += v + "\n";
  }
  return out;
}

size_t display_width(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xc0) != 0x80) {
      ++n;
    }
  }
  return n;
}

std::string ellipsize(std::string_view s, size_t max) {
  if (display_width(s) <= max) {
    return std::string(s);
  }
  size_t keep = max > 3 ? max - 3 : 0;
  size_t chars = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) {
      if (chars == keep) {
        break;
      }
      ++chars;
    }
  }
  return std::string(s.substr(0, i)) + std::string("...").substr(0, max - keep);
}

std::optional<int64_t> parse_time(std::string_view t) {
  int year = digits_at(t, 0, 4), mon = digits_at(t, 5, 2), day = digits_at(t, 8, 2);
  int hour = digits_at(t, 11, 2), min = digits_at(t, 14, 2), sec = digits_at(t, 17, 2);
  if (year < 0 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || min < 0 || min > 59 ||
      sec < 0 || sec > 60 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') ||
      t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < t.size() && t[pos] == '.') {
    int64_t scale = 100;
    for (++pos; pos < t.size() && t[pos] >= '0' && t[pos] <= '9'; ++pos) {
      ms += (t[pos] - '0') * scale;
      scale /= 10;
    }
  }
  int64_t offset_s = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh = digits_at(t, pos + 1, 2), om = digits_at(t, pos + 4, 2);
    if (oh < 0 || om < 0 || pos + 3 >= t.size() || t[pos + 3] != ':') {
      return std::nullopt;
    }
    offset_s = (t[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) {
    return std::nullopt;
  }
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return (static_cast<int64_t>(timegm(&tm)) - offset_s) * 1000 + ms;
}

std::string format_ago(int64_t then_ms, int64_t now_ms) {
  int64_t s = (now_ms - then_ms) / 1000;
  if (s < 1) {
    return "just now";
  }
  if (s < 60) {
    return plural(s, "second");
  }
  if (s < 3600) {
    return plural(s / 60, "minute");
  }
  if (s < 2 * 86400) {
    return plural(s / 3600, "hour");
  }
  return plural(s / 86400, "day");
}

std::string ago_field(const json& obj, const char* key, int64_t now_ms) {
  const json& v = member(obj, key);
  if (!v.is_string()) {
    return "-";
  }
  auto t = parse_time(v.get<std::string>());
  return t ? format_ago(*t, now_ms) : v.get<std::string>();
}

std::string format_duration_ms(int64_t ms) {
  if (ms < 0) {
    return "-";
  }
  if (ms < 1000) {
    return fmt::format("{}ms", ms);
  }
  if (ms < 60'000) {
    return fmt::format("{:.2f}s", static_cast<double>(ms) / 1000);
  }
  int64_t s = ms / 1000;
  if (s < 3600) {
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  }
  if (s < 86400) {
    return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  }
  return fmt::format("{}d{:02}h", s / 86400, s % 86400 / 3600);
}

std::string size_field(const json& value) {
  if (value.is_number_unsigned()) {
    return api::format_size(value.get<uint64_t>());
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return api::format_size(static_cast<uint64_t>(value.get<int64_t>()));
  }
  return cell(value);
}

std::string shell_quote(std::string_view arg) {
  if (arg.empty()) {
    return "''";
  }
  bool plain = true;
  for (char c : arg) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("-_./=:,+@%").find(c) != std::string_view::npos;
    plain = plain && ok;
  }
  if (plain) {
    return std::string(arg);
  }
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string format_command(const json& argv) {
  if (!argv.is_array()) {
    return "-";
  }
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) {
      out += ' ';
    }
    out += a.is_string() ? shell_quote(a.get<std::string>()) : a.dump();
  }
  return out;
}

const json& member(const json& obj, const char* key) {
  static const json kNull;
  if (!obj.is_object()) {
    return kNull;
  }
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

std::string string_member(const json& obj, const char* key) {
  const json& v = member(obj, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

bool flag_member(const json& obj, const char* key) {
  const json& v = member(obj, key);
  return v.is_boolean() && v.get<bool>();
}

std::string cell(const json& value) {
  if (value.is_null()) {
    return "-";
  }
  if (value.is_string()) {
    return value.get<std::string>();
  }
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string field(const json& obj, const char* key) {
  const json& v = member(obj, key);
  return v.is_null() ? "-" : cell(v);
}

std::string format_state(const json& sb) {
  std::string state = field(sb, "state");
  if (state != "exited") {
    return state;
  }
  bool oom = flag_member(sb, "oom_killed");
  std::string how;
  if (const json& code = member(sb, "exit_code"); code.is_number()) {
    how = code.dump();
  } else if (const json& sig = member(sb, "exit_signal"); sig.is_number()) {
    how = "signal " + sig.dump();
  }
  if (oom) {
    how += how.empty() ? "OOM" : ", OOM";
  }
  return how.empty() ? state : fmt::format("{} ({})", state, how);
}

std::string format_exec_end(const json& ex) {
  std::string how;
  if (flag_member(ex, "timed_out")) {
    how = "timed out";
  } else if (const json& code = member(ex, "exit_code"); code.is_number()) {
    how = code.dump();
  } else if (const json& sig = member(ex, "signal"); sig.is_number()) {
    how = "signal " + sig.dump();
  } else if (!string_member(ex, "error").empty()) {
    return "error";
  } else {
    return "-";
  }
  if (flag_member(ex, "oom_killed")) {
    how += ", OOM";
  }
  return how;
}

std::string format_labels(const json& labels) {
  if (!labels.is_object() || labels.empty()) {
    return "-";
  }
  std::string out;
  for (const auto& [k, v] : labels.items()) {
    if (!out.empty()) {
      out += ',';
    }
    out += k + "=" + cell(v);
  }
  return out;
}

std::string format_event(const json& ev) {
  std::string details;
  if (const json& d = member(ev, "details"); d.is_object()) {
    for (const auto& [k, v] : d.items()) {
      if (!v.is_null()) {
        details += fmt::format(" {}={}", k, cell(v));
      }
    }
  }
  return fmt::format("{:<24}  {:<9}  {:<12}  {}{}", field(ev, "time"), field(ev, "type"), field(ev, "id"),
                     field(ev, "name"), details);
}

std::string short_image_id(std::string_view id) {
  if (id.starts_with("sha256:")) {
    id.remove_prefix(7);
  }
  return std::string(id.substr(0, 12));
}

std::string format_progress(const json& p, double bytes_per_s) {
  auto number = [&](const char* key) -> uint64_t {
    const json& v = member(p, key);
    if (v.is_number_unsigned()) {
      return v.get<uint64_t>();
    }
    return v.is_number_integer() && v.get<int64_t>() > 0 ? static_cast<uint64_t>(v.get<int64_t>()) : 0;
  };
  uint64_t bytes = number("bytes");
  uint64_t total = number("total");
  std::string line = fmt::format("{:<6}", field(p, "phase"));
  if (uint64_t layers = number("layers"); layers > 0) {
    line += fmt::format("  layer {}/{}", number("layer"), layers);
  }
  if (total > 0) {
    uint64_t pct = std::min<uint64_t>(100, bytes * 100 / total);
    line += fmt::format("  {:>3}%  {}/{}", pct, api::format_size(bytes), api::format_size(total));
  } else {
    line += "  " + api::format_size(bytes);
  }
  if (bytes_per_s >= 0) {
    line += fmt::format("  {:.1f} MB/s", bytes_per_s / (1024.0 * 1024.0));
  }
  return line;
}

}  // namespace sbx::cli
