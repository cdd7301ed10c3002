#pragma once
// A directory under /tmp for one test, removed with everything in it when the test ends.
#include <dirent.h>
#include <doctest/doctest.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/file.h"

namespace sbx::test {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sbx-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { (void)remove_tree(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The names in the directory `dir` (this one by default), sorted, without "." and "..".
  std::vector<std::string> entries(const std::string& dir = {}) const {
    std::vector<std::string> names;
    DIR* d = ::opendir((dir.empty() ? path : dir).c_str());
    REQUIRE(d != nullptr);
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") {
        names.push_back(std::move(name));
      }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string path;
};

}  // namespace sbx::test
