#pragma once
// Command-line helpers the benchmark programs share.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/file.h"

namespace sbx::bench {

// The value after a flag: argv[++i], or an error naming the flag.
inline Result<std::string> take_value(int argc, char** argv, int& i) {
  std::string_view flag = argv[i];
  if (i + 1 >= argc) {
    return sbx::make_error("{} needs a value", flag);
  }
  return std::string(argv[++i]);
}

// The number after a flag.
inline Result<uint64_t> take_count(int argc, char** argv, int& i) {
  std::string_view flag = argv[i];
  SBX_ASSIGN(std::string text, take_value(argc, argv, i));
  auto n = sbx::parse_u64(text);
  if (!n.ok()) {
    return sbx::make_error("{}: '{}' is not a number", flag, text);
  }
  return *n;
}

}  // namespace sbx::bench
