// The [userns] pool: its shape in sbxd.toml, and its check against the host's subordinate ids, users and groups.
#include <doctest/doctest.h>

#include <stdlib.h>

#include "api/protocol.h"
#include "base/file.h"
#include "daemon/config.h"
#include "daemon/userns_pool.h"

using namespace sbx;
using namespace sbx::daemon;

TEST_SUITE("daemon.userns_pool") {

TEST_CASE("subordinate id files are read as name:first:count lines, skipping malformed ones") {
  auto ranges = parse_subid_ranges("alice:100000:65536\n# comment\nbob:165536:65536\nbroken\ncarol:x:1\n");
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].first == 100000);
  CHECK(ranges[0].count == 65536);
  CHECK(ranges[1].first == 165536);
}

TEST_CASE("passwd and group files give their numeric ids, skipping what is not one") {
  auto ids = parse_account_ids("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1001::/home/a:/bin/sh\n#x\nbad\n"
                               "staff:x:50:alice,bob\nodd:x:notanumber:7\n");
  CHECK(ids == std::vector<uint32_t>{0, 0, 1000, 1001, 50, 7});
}

TEST_CASE("the pool must not overlap subordinate ids or a host user or group") {
  DaemonConfig c;
  c.userns_first = 1000000000;
  c.userns_size = 65536;
  c.userns_count = 16;
  CHECK(check_userns_pool(c, {{100000, 65536}}, {{100000, 65536}}, {0, 1000, 65534}).ok());
  auto sub = check_userns_pool(c, {{1000000000 + 65536 * 15, 1}}, {}, {});
  REQUIRE(!sub.ok());
  CHECK(sub.error().message().find("/etc/subuid") != std::string::npos);
  auto subg = check_userns_pool(c, {}, {{999999999, 2}}, {});
  REQUIRE(!subg.ok());
  CHECK(subg.error().message().find("/etc/subgid") != std::string::npos);
  auto user = check_userns_pool(c, {}, {}, {1000000001});
  REQUIRE(!user.ok());
  CHECK(user.error().message().find("id 1000000001 of a host user or group") != std::string::npos);
  CHECK(check_userns_pool(c, {{1000000000 + 65536 * 16, 10}}, {}, {1000000000 + 65536 * 16}).ok());
}

TEST_CASE("[userns] in sbxd.toml: enabled, first, size and count, checked") {
  auto c = parse_config("[userns]\nenabled = false\nfirst = 2000000000\nsize = 65536\ncount = 100\n", "t");
  REQUIRE_MESSAGE(c.ok(), c.error().message());
  CHECK(!c->userns);
  CHECK(c->userns_first == 2000000000);
  CHECK(c->userns_count == 100);
  auto past = parse_config("[userns]\nfirst = 4294000000\ncount = 100\n", "t");
  REQUIRE(!past.ok());
  CHECK(past.error().message().find("runs past") != std::string::npos);
  auto small = parse_config("[userns]\nsize = 1000\n", "t");
  REQUIRE(!small.ok());
  CHECK(small.error().message().find("below 65536") != std::string::npos);
  CHECK(!parse_config("[userns]\nfrist = 1\n", "t").ok());
}

TEST_CASE("a spec asks for a user namespace only with userns true; older specs ran without") {
  CHECK(spec_wants_userns({{"userns", true}}));
  CHECK(!spec_wants_userns({{"userns", false}}));
  CHECK(!spec_wants_userns(nlohmann::json::object()));
}

}  // TEST_SUITE

namespace {

struct PoolDb {
  PoolDb() {
    char tmpl[] = "/tmp/daemon-userns-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    auto s = Store::open(dir + "/sbxd.db");
    REQUIRE_MESSAGE(s.ok(), s.error().message());
    store = std::move(*s);
    config.userns_first = 1000000000;
    config.userns_count = 2;
  }
  ~PoolDb() {
    store.reset();
    (void)remove_tree(dir);
  }
  std::string dir;
  std::unique_ptr<Store> store;
  DaemonConfig config;
};

SandboxRow row(const std::string& id, bool userns = true) {
  SandboxRow r;
  r.id = id;
  r.spec = {{"userns", userns}};
  return r;
}

uint64_t host_root(const UsernsPool& pool, const SandboxRow& r) {
  auto plan = pool.plan(r);
  REQUIRE(plan.ok());
  REQUIRE(plan->has_value());
  return (*plan)->host_root_uid();
}

}  // namespace

TEST_SUITE("daemon.userns_pool") {

TEST_CASE("slots go lowest first, one per sandbox; a full pool is a clear limit error; a freed slot is reused") {
  PoolDb db;
  UsernsPool pool(db.config, *db.store);
  SandboxRow a = row("a"), b = row("b"), c = row("c"), none = row("n", false);
  REQUIRE(pool.attach(a).ok());
  REQUIRE(pool.attach(b).ok());
  REQUIRE(pool.attach(none).ok());
  CHECK(pool.in_use() == 2);
  CHECK(host_root(pool, a) == 1000000000);
  CHECK(host_root(pool, b) == 1000065536);
  auto plan = pool.plan(none);
  REQUIRE(plan.ok());
  CHECK(!plan->has_value());
  auto full = pool.attach(c);
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code() == api::kLimitExceeded);
  CHECK(full.error().message().find("[userns] count") != std::string::npos);
  REQUIRE(pool.detach(a).ok());
  REQUIRE(pool.attach(c).ok());
  CHECK(host_root(pool, c) == 1000000000);
}

TEST_CASE("a restarted daemon finds every sandbox's slot again and frees those of sandboxes that are gone") {
  PoolDb db;
  {
    UsernsPool pool(db.config, *db.store);
    REQUIRE(pool.attach(row("a")).ok());
    REQUIRE(pool.attach(row("b")).ok());
  }
  UsernsPool again(db.config, *db.store);
  SandboxRow b = row("b"), late = row("late");
  REQUIRE(again.start({&b, &late}).ok());  // "a" is gone; "late" wanted one and gets a's old slot
  CHECK(again.in_use() == 2);
  CHECK(host_root(again, b) == 1000065536);
  CHECK(host_root(again, late) == 1000000000);
  auto rows = db.store->userns_slots();
  REQUIRE(rows.ok());
  CHECK(rows->size() == 2);
  CHECK(again.describe(b)["uid"] == 1000065536);
}

}  // TEST_SUITE
