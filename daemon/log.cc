#include "daemon/log.h"

#include <unistd.h>

#include <string>

namespace sbx::daemon {

namespace {
LogLevel g_level = LogLevel::kInfo;
constexpr const char* kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }

LogLevel parse_log_level(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kNames[i]) {
      return static_cast<LogLevel>(i);
    }
  }
  return LogLevel::kInfo;
}

bool log_enabled(LogLevel level) { return level <= g_level; }

void log_line(LogLevel level, std::string_view message) {
  std::string line = fmt::format("sbxd: {}: {}\n", kNames[static_cast<int>(level)], message);
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace sbx::daemon
