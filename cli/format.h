#pragma once
// sbxctl's human-readable output: aligned tables and compact times, durations and commands. Pure functions,
// unit-tested in tests/unit/cli_format_test.cc.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sbx::cli {

using json = nlohmann::json;

// Columns left-aligned, separated by three spaces, the last one not padded; width counts UTF-8 characters.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add_row(std::vector<std::string> cells);
  std::string render() const;
  size_t rows() const { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Key/value lines with the values aligned: "Version:      0.1.0".
std::string render_fields(const std::vector<std::pair<std::string, std::string>>& fields);

// Characters (not bytes) in UTF-8 text.
size_t display_width(std::string_view s);
// At most `max` characters, ending in "..." when cut.
std::string ellipsize(std::string_view s, size_t max);

// "2026-11-22T10:04:05.123Z" (or with a +hh:mm offset) -> ms since the epoch.
std::optional<int64_t> parse_time(std::string_view rfc3339);
// "just now", "5 seconds ago", "3 minutes ago", "2 hours ago", "4 days ago".
std::string format_ago(int64_t then_ms, int64_t now_ms);
// A time field of a sandbox/exec object as "N minutes ago"; "-" when null or missing.
std::string ago_field(const json& obj, const char* key, int64_t now_ms);
// 850 -> "850ms", 1234 -> "1.23s", 125000 -> "2m05s", 3723000 -> "1h02m", 2 days -> "2d03h".
std::string format_duration_ms(int64_t ms);
// 1536 -> "1.5K"; null -> "-".
std::string size_field(const json& value);

// An argv as a shell would need it typed: arguments with spaces or specials in single quotes.
std::string format_command(const json& argv);
std::string shell_quote(std::string_view arg);

// obj[key], or null when obj is not an object or has no such key (json::value() would abort on a non-object
// with exceptions off).
const json& member(const json& obj, const char* key);
// member() as a string; "" when it is not one.
std::string string_member(const json& obj, const char* key);
bool flag_member(const json& obj, const char* key);

// A JSON value as a table cell: strings as is, null as "-", numbers and the rest dumped.
std::string cell(const json& value);
// obj[key] as a cell; "-" when missing.
std::string field(const json& obj, const char* key);

// "running", "exited (0)", "exited (signal 9)", "exited (137, OOM)".
std::string format_state(const json& sandbox);
// How an exec ended: "0", "signal 9", "timed out", with ", OOM" when OOM-killed; "-" while running.
std::string format_exec_end(const json& exec);

// Labels as "a=1,b=2".
std::string format_labels(const json& labels);

// One event as a line: "TIME  TYPE  ID  NAME  key=value ...".
std::string format_event(const json& event);

// An image id as a table shows it: "sha256:0123456789abcdef..." -> "0123456789ab".
std::string short_image_id(std::string_view id);

// An image.progress notification as a line: "unpack  layer 2/3  45%  12.3M/27.0M  5.1 MB/s". No percent when
// the total is 0 (unknown); no rate when `bytes_per_s` < 0.
std::string format_progress(const json& progress, double bytes_per_s);

}  // namespace sbx::cli
