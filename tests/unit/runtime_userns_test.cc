// User-namespace id maps: their text, translation of ids inside to the host's, and the checks a plan's maps pass.
#include <doctest/doctest.h>

#include "runtime/plan.h"
#include "runtime/userns.h"

using namespace sbx;
using namespace sbx::rt;

TEST_SUITE("rt.userns") {

TEST_CASE("a map is written one line per mapping, as the kernel reads it") {
  CHECK(format_id_map({{0, 1000000000, 65536}}) == "0 1000000000 65536\n");
  CHECK(format_id_map({{0, 200000, 1000}, {1000, 300000, 1}}) == "0 200000 1000\n1000 300000 1\n");
}

TEST_CASE("ids inside translate to the host through whichever line holds them") {
  std::vector<IdMapping> map = {{0, 200000, 1000}, {1000, 300000, 10}};
  CHECK(map_to_host(map, 0) == std::optional<uint32_t>(200000));
  CHECK(map_to_host(map, 999) == std::optional<uint32_t>(200999));
  CHECK(map_to_host(map, 1000) == std::optional<uint32_t>(300000));
  CHECK(map_to_host(map, 1009) == std::optional<uint32_t>(300009));
  CHECK(!map_to_host(map, 1010));
}

TEST_CASE("the contiguous namespace maps uids and gids alike and names its host root") {
  UserNamespacePlan u = contiguous_userns(1000065536, 65536);
  CHECK(u.uid_map.size() == 1);
  CHECK(u.gid_map.size() == 1);
  CHECK(u.host_root_uid() == 1000065536);
  CHECK(u.host_root_gid() == 1000065536);
  CHECK(validate_userns(u).ok());
}

TEST_CASE("a map that could not isolate or that the kernel would refuse is an error naming the field") {
  auto message = [](const std::vector<IdMapping>& map) {
    auto r = validate_id_map(map, "userns.uid_map");
    REQUIRE(!r.ok());
    return r.error().message();
  };
  CHECK(message({}).find("userns.uid_map: must have 1 to 340 lines") == 0);
  CHECK(message({{0, 0, 65536}}).find("maps the host's id 0") != std::string::npos);
  CHECK(message({{0, 100000, 0}}).find("count must be at least 1") != std::string::npos);
  CHECK(message({{0, 4294967290u, 65536}}).find("run past") != std::string::npos);
  CHECK(message({{0, 100000, 10}, {5, 200000, 10}}).find("ids inside overlap") != std::string::npos);
  CHECK(message({{0, 100000, 10}, {10, 100005, 10}}).find("host ids overlap") != std::string::npos);
  CHECK(message({{1, 100000, 10}}).find("id 0 inside is not mapped") != std::string::npos);
  std::vector<IdMapping> long_map;
  for (uint32_t i = 0; i < 341; ++i) {
    long_map.push_back({i, 100000 + i, 1});
  }
  CHECK(message(long_map).find("1 to 340 lines") != std::string::npos);
}

TEST_CASE("validate_plan checks the plan's user namespace") {
  Plan plan = default_plan("a1", {"/"});
  plan.userns = UserNamespacePlan{{{0, 100000, 65536}}, {{0, 0, 65536}}};
  auto r = validate_plan(plan);
  REQUIRE(!r.ok());
  CHECK(r.error().message().find("userns.gid_map[0]") == 0);
}

}  // TEST_SUITE
