#pragma once
// sbx-httpd writes one line per request and its warnings to stderr (the journal under systemd). Never a key.
#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace sbx::httpd {

template <typename... Args>
void log_line(fmt::format_string<Args...> f, Args&&... args) {
  std::string line = "sbx-httpd: " + fmt::format(f, std::forward<Args>(args)...) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write per line: lines of threads do not mix
}

}  // namespace sbx::httpd
