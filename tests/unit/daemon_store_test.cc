// sbxd's sqlite store on a temp file: migrations, sandbox rows, and the exec and event records with their filters.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <string>

#include "base/file.h"
#include "daemon/store.h"

using namespace sbx;
using namespace sbx::daemon;

namespace {

struct TempDb {
  TempDb() {
    char tmpl[] = "/tmp/daemon-store-unit-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    path = dir + "/sbxd.db";
  }
  ~TempDb() { (void)remove_tree(dir); }

  std::unique_ptr<Store> open() const {
    auto s = Store::open(path);
    REQUIRE_MESSAGE(s.ok(), s.error().message());
    return std::move(*s);
  }

  std::string dir;
  std::string path;
};

// PRAGMA user_version of the file, read with sqlite directly.
int user_version(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  int v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

void run_sql(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* msg = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
  std::string text = msg != nullptr ? msg : "";
  sqlite3_free(msg);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, text);
}

SandboxRow sandbox(const std::string& id, int64_t created_at) {
  SandboxRow r;
  r.id = id;
  r.name = "name-" + id;
  r.state = "created";
  r.spec = {{"rootfs", "/r"}, {"labels", {{"a", "b"}}}};
  r.created_at = created_at;
  return r;
}

ExecRow exec_row(const std::string& exec_id, const std::string& sandbox_id, uint32_t owner, std::string tenant) {
  ExecRow r;
  r.exec_id = exec_id;
  r.sandbox_id = sandbox_id;
  r.owner_uid = owner;
  r.tenant = std::move(tenant);
  r.argv = {"echo", exec_id};
  r.caller_uid = owner;
  r.started_at = 1000;
  return r;
}

EventRow event_row(const std::string& type, const std::string& sandbox_id, uint32_t owner, std::string tenant) {
  EventRow r;
  r.time = 2000;
  r.type = type;
  r.sandbox_id = sandbox_id;
  r.name = "n-" + sandbox_id;
  r.owner_uid = owner;
  r.tenant = std::move(tenant);
  r.details = {{"type", type}};
  return r;
}

std::vector<std::string> exec_ids(Store& s, const RecordFilter& f, int limit) {
  auto rows = s.execs(f, limit);
  REQUIRE_MESSAGE(rows.ok(), rows.error().message());
  std::vector<std::string> ids;
  for (const auto& r : *rows) {
    ids.push_back(r.exec_id);
  }
  return ids;
}

std::vector<std::string> event_types(Store& s, const RecordFilter& f, int limit) {
  auto rows = s.events(f, limit);
  REQUIRE_MESSAGE(rows.ok(), rows.error().message());
  std::vector<std::string> types;
  for (const auto& r : *rows) {
    types.push_back(r.type);
  }
  return types;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_SUITE("daemon.store") {

TEST_CASE("a new database is migrated to the current schema and records it in user_version") {
  TempDb db;
  auto s = db.open();
  CHECK(s->schema_version() >= 1);
  CHECK(user_version(db.path) == s->schema_version());
  CHECK(s->check().ok());
  auto rows = s->sandboxes();
  REQUIRE(rows.ok());
  CHECK(rows->empty());
}

TEST_CASE("reopening keeps the data and migrates nothing twice") {
  TempDb db;
  int version = 0;
  {
    auto s = db.open();
    version = s->schema_version();
    REQUIRE(s->put_sandbox(sandbox("aaa", 1)).ok());
  }
  auto s = db.open();
  CHECK(s->schema_version() == version);
  CHECK(user_version(db.path) == version);
  auto rows = s->sandboxes();
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].id == "aaa");
}

TEST_CASE("a database from a newer sbxd is refused, untouched") {
  TempDb db;
  run_sql(db.path, "PRAGMA user_version = 999");
  auto s = Store::open(db.path);
  REQUIRE(!s.ok());
  CHECK(s.error().message().find("999") != std::string::npos);
  CHECK(s.error().message().find(db.path) != std::string::npos);
  CHECK(user_version(db.path) == 999);
}

TEST_CASE("a file that is not a database, or a path that cannot be created, is an error naming it") {
  TempDb db;
  REQUIRE(create_file(db.path, std::string(4096, 'x')).ok());
  auto s = Store::open(db.path);
  REQUIRE(!s.ok());
  CHECK(s.error().message().find(db.path) != std::string::npos);
  auto missing = Store::open(db.dir + "/no/such/dir/sbxd.db");
  REQUIRE(!missing.ok());
  CHECK(missing.error().message().find("/no/such/dir/sbxd.db") != std::string::npos);
}

TEST_CASE("sandbox rows round-trip every field, are replaced by id, and are deleted") {
  TempDb db;
  auto s = db.open();
  SandboxRow r = sandbox("b1", 50);
  r.owner_uid = 4294967294u;
  r.tenant = "acme";
  r.state = "exited";
  r.started_at = 60;
  r.finished_at = 70;
  r.exit_code = 0;
  r.exit_signal = 9;
  r.oom_killed = true;
  r.expires_at = 80;
  r.monitor_pid = 1234;
  r.monitor_start = 98765432101ull;
  r.error = "monitor died";
  REQUIRE(s->put_sandbox(r).ok());
  REQUIRE(s->put_sandbox(sandbox("a0", 10)).ok());  // older: listed first
  auto rows = s->sandboxes();
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].id == "a0");
  CHECK(!(*rows)[0].exit_code);
  CHECK(!(*rows)[0].exit_signal);
  const SandboxRow& g = (*rows)[1];
  CHECK(g.id == "b1");
  CHECK(g.name == "name-b1");
  CHECK(g.owner_uid == 4294967294u);
  CHECK(g.tenant == "acme");
  CHECK(g.state == "exited");
  CHECK(g.spec == r.spec);
  CHECK(g.created_at == 50);
  CHECK(g.started_at == 60);
  CHECK(g.finished_at == 70);
  CHECK(g.exit_code == std::optional<int>(0));
  CHECK(g.exit_signal == std::optional<int>(9));
  CHECK(g.oom_killed);
  CHECK(g.expires_at == 80);
  CHECK(g.monitor_pid == 1234);
  CHECK(g.monitor_start == 98765432101ull);
  CHECK(g.error == "monitor died");

  r.state = "running";
  r.exit_code.reset();
  REQUIRE(s->put_sandbox(r).ok());
  rows = s->sandboxes();
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[1].state == "running");
  CHECK(!(*rows)[1].exit_code);

  REQUIRE(s->delete_sandbox("b1").ok());
  REQUIRE(s->delete_sandbox("never-there").ok());
  rows = s->sandboxes();
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].id == "a0");
}

TEST_CASE("exec records round-trip and are returned newest N, oldest first") {
  TempDb db;
  auto s = db.open();
  ExecRow r = exec_row("e1", "box1", 0, "");
  r.duration_ms = 12;
  r.signal = 9;
  r.timed_out = true;
  r.oom_killed = true;
  r.cpu_user_us = 111;
  r.cpu_system_us = 222;
  r.peak_rss_bytes = 333;
  r.error = "";
  REQUIRE(s->add_exec(r).ok());
  for (int i = 2; i <= 5; ++i) {
    REQUIRE(s->add_exec(exec_row("e" + std::to_string(i), "box1", 0, "")).ok());
  }
  auto rows = s->execs({}, 100);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 5);
  const ExecRow& g = (*rows)[0];
  CHECK(g.exec_id == "e1");
  CHECK(g.sandbox_id == "box1");
  CHECK(g.argv == json{"echo", "e1"});
  CHECK(g.duration_ms == 12);
  CHECK(!g.exit_code);
  CHECK(g.signal == std::optional<int>(9));
  CHECK(g.timed_out);
  CHECK(g.oom_killed);
  CHECK(g.cpu_user_us == 111);
  CHECK(g.cpu_system_us == 222);
  CHECK(g.peak_rss_bytes == 333);
  CHECK(!(*rows)[1].signal);
  CHECK(exec_ids(*s, {}, 2) == Strings{"e4", "e5"});
  CHECK(exec_ids(*s, {}, 1) == Strings{"e5"});
  // An exec id is unique.
  CHECK(!s->add_exec(exec_row("e1", "box1", 0, "")).ok());
}

TEST_CASE("exec records are filtered by sandbox, owner and tenant") {
  TempDb db;
  auto s = db.open();
  REQUIRE(s->add_exec(exec_row("root-a", "a", 0, "")).ok());
  REQUIRE(s->add_exec(exec_row("user-b", "b", 1000, "")).ok());
  REQUIRE(s->add_exec(exec_row("acme-c", "c", 998, "acme")).ok());
  REQUIRE(s->add_exec(exec_row("user-b2", "b", 1000, "")).ok());
  REQUIRE(s->add_exec(exec_row("other-d", "d", 998, "other")).ok());
  CHECK(exec_ids(*s, {"b", std::nullopt, std::nullopt}, 50) == Strings{"user-b", "user-b2"});
  CHECK(exec_ids(*s, {"", 1000u, std::string("")}, 50) == Strings{"user-b", "user-b2"});
  CHECK(exec_ids(*s, {"", std::nullopt, std::string("acme")}, 50) == Strings{"acme-c"});
  // A uid's own records exclude those it made for a tenant.
  CHECK(exec_ids(*s, {"", 998u, std::string("")}, 50).empty());
  CHECK(exec_ids(*s, {"a", 1000u, std::string("")}, 50).empty());
  CHECK(exec_ids(*s, {"nope", std::nullopt, std::nullopt}, 50).empty());
  CHECK(exec_ids(*s, {}, 50).size() == 5);
}

TEST_CASE("events get increasing sequence numbers, round-trip, and are filtered and limited") {
  TempDb db;
  auto s = db.open();
  auto a = s->add_event(event_row("created", "a", 0, ""));
  auto b = s->add_event(event_row("started", "a", 0, ""));
  auto c = s->add_event(event_row("created", "b", 1000, ""));
  auto d = s->add_event(event_row("exited", "a", 0, ""));
  auto e = s->add_event(event_row("destroyed", "t", 998, "acme"));
  REQUIRE((a.ok() && b.ok() && c.ok() && d.ok() && e.ok()));
  CHECK(*a < *b);
  CHECK(*b < *c);
  CHECK(*c < *d);
  CHECK(*d < *e);
  auto all = s->events({}, 100);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 5);
  const EventRow& g = (*all)[4];
  CHECK(g.seq == *e);
  CHECK(g.time == 2000);
  CHECK(g.type == "destroyed");
  CHECK(g.sandbox_id == "t");
  CHECK(g.name == "n-t");
  CHECK(g.owner_uid == 998);
  CHECK(g.tenant == "acme");
  CHECK(g.details == json{{"type", "destroyed"}});
  CHECK(event_types(*s, {"a", std::nullopt, std::nullopt}, 100) == Strings{"created", "started", "exited"});
  CHECK(event_types(*s, {"a", std::nullopt, std::nullopt}, 2) == Strings{"started", "exited"});
  CHECK(event_types(*s, {}, 1) == Strings{"destroyed"});
  CHECK(event_types(*s, {"", 1000u, std::string("")}, 100) == Strings{"created"});
  CHECK(event_types(*s, {"", std::nullopt, std::string("acme")}, 100) == Strings{"destroyed"});
  CHECK(event_types(*s, {"", 998u, std::string("")}, 100).empty());
  // Sequence numbers are never reused, even after a reopen.
  s.reset();
  s = db.open();
  auto f = s->add_event(event_row("created", "z", 0, ""));
  REQUIRE(f.ok());
  CHECK(*f > *e);
}

TEST_CASE("pruning deletes the exec records and events before the cutoff, and only those") {
  TempDb db;
  auto s = db.open();
  REQUIRE(s->put_sandbox(sandbox("kept", 1)).ok());
  for (int64_t t : {100, 200, 300}) {
    ExecRow e = exec_row("x" + std::to_string(t), "kept", 0, "");
    e.started_at = t;
    REQUIRE(s->add_exec(e).ok());
    EventRow ev = event_row("t" + std::to_string(t), "kept", 0, "");
    ev.time = t;
    REQUIRE(s->add_event(ev).ok());
  }
  auto pruned = s->prune_history(200);
  REQUIRE_MESSAGE(pruned.ok(), pruned.error().message());
  CHECK(pruned->execs == 1);
  CHECK(pruned->events == 1);
  CHECK(exec_ids(*s, {}, 10) == Strings{"x200", "x300"});
  CHECK(event_types(*s, {}, 10) == Strings{"t200", "t300"});
  pruned = s->prune_history(200);  // nothing older left
  REQUIRE(pruned.ok());
  CHECK(pruned->execs == 0);
  CHECK(pruned->events == 0);
  auto rows = s->sandboxes();  // a sandbox's own row is not history
  REQUIRE(rows.ok());
  CHECK(rows->size() == 1);
}

TEST_CASE("records outlive their sandbox's row") {
  TempDb db;
  auto s = db.open();
  REQUIRE(s->put_sandbox(sandbox("gone", 1)).ok());
  REQUIRE(s->add_exec(exec_row("x1", "gone", 0, "")).ok());
  REQUIRE(s->add_event(event_row("destroyed", "gone", 0, "")).ok());
  REQUIRE(s->delete_sandbox("gone").ok());
  CHECK(exec_ids(*s, {"gone", std::nullopt, std::nullopt}, 10) == Strings{"x1"});
  CHECK(event_types(*s, {"gone", std::nullopt, std::nullopt}, 10) == Strings{"destroyed"});
}

TEST_CASE("a version 4 database is migrated to 5 with an empty api_keys table, its data kept") {
  TempDb db;
  // The version 4 schema as released, without the api_keys table, and one sandbox in it.
  {
    auto s = db.open();
    REQUIRE(s->put_sandbox(sandbox("old", 1)).ok());
  }
  run_sql(db.path, "DROP TABLE api_keys; DROP TABLE userns_slots; PRAGMA user_version = 4");
  auto s = db.open();
  CHECK(s->schema_version() == 6);
  CHECK(user_version(db.path) == 6);
  auto rows = s->sandboxes();
  REQUIRE(rows.ok());
  CHECK(rows->size() == 1);
  auto keys = s->api_keys(std::nullopt);
  REQUIRE_MESSAGE(keys.ok(), keys.error().message());
  CHECK(keys->empty());
}

TEST_CASE("a version 5 database gains the userns_slots table; a slot and a sandbox are each held once") {
  TempDb db;
  {
    auto s = db.open();
    REQUIRE(s->put_sandbox(sandbox("old", 1)).ok());
  }
  run_sql(db.path, "DROP TABLE userns_slots; PRAGMA user_version = 5");
  auto s = db.open();
  CHECK(s->schema_version() == 6);
  auto none = s->userns_slots();
  REQUIRE(none.ok());
  CHECK(none->empty());
  REQUIRE(s->add_userns_slot({3, "a", 1}).ok());
  CHECK_FALSE(s->add_userns_slot({3, "b", 1}).ok());
  CHECK_FALSE(s->add_userns_slot({4, "a", 1}).ok());
  REQUIRE(s->add_userns_slot({0, "b", 1}).ok());
  auto rows = s->userns_slots();
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 2);
  CHECK((*rows)[0].slot == 0);
  CHECK((*rows)[0].sandbox_id == "b");
  REQUIRE(s->delete_userns_slot("b").ok());
  CHECK(s->userns_slots()->size() == 1);
}

TEST_CASE("API keys round-trip, are found by id and by hash, listed per tenant without hashes, and deleted") {
  TempDb db;
  auto s = db.open();
  ApiKeyRow a{"aaaaaaaaaaaa", "acme", "ci", std::string(64, 'a'), 1000, 0};
  ApiKeyRow b{"bbbbbbbbbbbb", "other", "", std::string(64, 'b'), 2000, 0};
  ApiKeyRow c{"cccccccccccc", "acme", "web", std::string(64, 'c'), 3000, 0};
  for (const auto& row : {a, b, c}) {
    auto added = s->add_api_key(row);
    REQUIRE_MESSAGE(added.ok(), added.error().message());
    CHECK(*added);
  }
  auto by_hash = s->api_key_by_hash(std::string(64, 'c'));
  REQUIRE(by_hash.ok());
  REQUIRE(by_hash->has_value());
  CHECK((*by_hash)->id == "cccccccccccc");
  CHECK((*by_hash)->tenant == "acme");
  CHECK((*by_hash)->name == "web");
  CHECK((*by_hash)->created == 3000);
  CHECK((*by_hash)->last_used == 0);
  CHECK(!s->api_key_by_hash(std::string(64, 'd'))->has_value());
  CHECK((*s->api_key("bbbbbbbbbbbb"))->tenant == "other");
  CHECK(!s->api_key("dddddddddddd")->has_value());

  auto acme = s->api_keys(std::string("acme"));
  REQUIRE(acme.ok());
  REQUIRE(acme->size() == 2);
  CHECK((*acme)[0].id == "aaaaaaaaaaaa");
  CHECK((*acme)[1].id == "cccccccccccc");
  CHECK((*acme)[0].hash.empty());
  auto all = s->api_keys(std::nullopt);
  REQUIRE(all.ok());
  CHECK(all->size() == 3);

  REQUIRE(s->set_api_key_last_used("aaaaaaaaaaaa", 5000).ok());
  CHECK((*s->api_key("aaaaaaaaaaaa"))->last_used == 5000);

  auto deleted = s->delete_api_key("aaaaaaaaaaaa");
  REQUIRE(deleted.ok());
  CHECK(*deleted);
  CHECK(!*s->delete_api_key("aaaaaaaaaaaa"));
  CHECK(!s->api_key_by_hash(std::string(64, 'a'))->has_value());
  CHECK(s->api_keys(std::string("acme"))->size() == 1);
}

TEST_CASE("adding an API key under a taken id adds nothing; a duplicate hash is an error") {
  TempDb db;
  auto s = db.open();
  REQUIRE(*s->add_api_key({"aaaaaaaaaaaa", "acme", "", std::string(64, 'a'), 1, 0}));
  auto taken = s->add_api_key({"aaaaaaaaaaaa", "other", "", std::string(64, 'e'), 2, 0});
  REQUIRE(taken.ok());
  CHECK(!*taken);
  CHECK((*s->api_key("aaaaaaaaaaaa"))->tenant == "acme");
  CHECK(!s->api_key_by_hash(std::string(64, 'e'))->has_value());
  auto same_hash = s->add_api_key({"ffffffffffff", "acme", "", std::string(64, 'a'), 3, 0});
  CHECK(!same_hash.ok());
  CHECK(s->api_keys(std::nullopt)->size() == 1);
}

}  // TEST_SUITE
