#pragma once
// The daemon's log: one line per message on stderr ("sbxd: warn: sandbox=a1b2: ..."); systemd's journal
// collects it. Library code never logs; the daemon logs each error once, where it is handled.
#include <fmt/format.h>

#include <string_view>

namespace sbx::daemon {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void set_log_level(LogLevel level);
LogLevel parse_log_level(std::string_view name);  // the config's names; unknown: info
bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
  log_line(LogLevel::kError, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  if (log_enabled(LogLevel::kWarn)) {
    log_line(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  if (log_enabled(LogLevel::kInfo)) {
    log_line(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
  }
}
template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
  if (log_enabled(LogLevel::kDebug)) {
    log_line(LogLevel::kDebug, fmt::format(f, std::forward<Args>(args)...));
  }
}

}  // namespace sbx::daemon
