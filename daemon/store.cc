#include "daemon/store.h"

#include "api/protocol.h"

#include <sqlite3.h>

#include <functional>
#include <variant>

namespace sbx::daemon {

namespace {

// Each entry takes the schema from version i to i + 1. Append only; never edit a released one.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE sandboxes (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, owner_uid INTEGER NOT NULL, tenant TEXT NOT NULL,
      state TEXT NOT NULL, spec TEXT NOT NULL, created_at INTEGER NOT NULL, started_at INTEGER NOT NULL,
      finished_at INTEGER NOT NULL, exit_code INTEGER, exit_signal INTEGER, oom_killed INTEGER NOT NULL,
      expires_at INTEGER NOT NULL, monitor_pid INTEGER NOT NULL, monitor_start INTEGER NOT NULL,
      error TEXT NOT NULL);
    CREATE TABLE execs (
      exec_id TEXT PRIMARY KEY, sandbox_id TEXT NOT NULL, owner_uid INTEGER NOT NULL, tenant TEXT NOT NULL,
      argv TEXT NOT NULL, caller_uid INTEGER NOT NULL, started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
      exit_code INTEGER, signal INTEGER, timed_out INTEGER NOT NULL, oom_killed INTEGER NOT NULL,
      cpu_user_us INTEGER NOT NULL, cpu_system_us INTEGER NOT NULL, peak_rss_bytes INTEGER NOT NULL,
      error TEXT NOT NULL);
    CREATE INDEX execs_by_sandbox ON execs (sandbox_id, started_at);
    CREATE TABLE events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL, type TEXT NOT NULL, sandbox_id TEXT NOT NULL,
      name TEXT NOT NULL, owner_uid INTEGER NOT NULL, tenant TEXT NOT NULL, details TEXT NOT NULL);
    CREATE INDEX events_by_sandbox ON events (sandbox_id, seq);
    )sql",
    // 2: history retention deletes by age.
    R"sql(
    CREATE INDEX execs_by_time ON execs (started_at);
    CREATE INDEX events_by_time ON events (time);
    )sql",
    // 3: the image store and environments.
    R"sql(
    CREATE TABLE images (
      name TEXT PRIMARY KEY, id TEXT NOT NULL, created_at INTEGER NOT NULL, record TEXT NOT NULL);
    CREATE TABLE environments (
      name TEXT NOT NULL, version INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by INTEGER NOT NULL,
      spec TEXT NOT NULL, PRIMARY KEY (name, version));
    )sql",
    // 4: bridge networking: each address is held by at most one sandbox, and a sandbox holds at most one address.
    R"sql(
    CREATE TABLE leases (
      address INTEGER PRIMARY KEY, sandbox_id TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
    )sql",
    // 5: API keys of the HTTP shim, stored as the SHA-256 of the key (UNIQUE: the index apikey.verify looks up).
    R"sql(
    CREATE TABLE api_keys (
      id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
      created INTEGER NOT NULL, last_used INTEGER);
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created);
    )sql",
    // 6: user namespaces: each slot of the [userns] pool is held by at most one sandbox, and a sandbox holds at most
    // one slot, from its create to its removal.
    R"sql(
    CREATE TABLE userns_slots (
      slot INTEGER PRIMARY KEY, sandbox_id TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
    )sql",
};
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// One bound value: sqlite's three types we use, and NULL for an empty optional.
using Value = std::variant<std::monostate, int64_t, std::string>;

Value opt(const std::optional<int>& v) { return v ? Value(int64_t(*v)) : Value(); }

std::optional<int> column_opt_int(sqlite3_stmt* s, int col) {
  if (sqlite3_column_type(s, col) == SQLITE_NULL) {
    return std::nullopt;
  }
  return sqlite3_column_int(s, col);
}

std::string column_text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t != nullptr ? std::string(reinterpret_cast<const char*>(t)) : std::string();
}

json column_json(sqlite3_stmt* s, int col) {
  json j = json::parse(column_text(s, col), nullptr, false);
  return j.is_discarded() ? json() : j;
}

}  // namespace

struct Store::Impl {
  sqlite3* db = nullptr;
  int version = 0;

  ~Impl() {
    if (db != nullptr) {
      sqlite3_close_v2(db);
    }
  }

  Error sql_error(std::string_view what) const {
    return make_error("database: {}: {}", what, db != nullptr ? sqlite3_errmsg(db) : "out of memory");
  }

  Result<void> exec(const char* sql, std::string_view what) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string text = msg != nullptr ? msg : "unknown error";
      sqlite3_free(msg);
      return make_error("database: {}: {}", what, text);
    }
    return ok();
  }

  Result<Stmt> prepare(std::string_view sql, const std::vector<Value>& values) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr) != SQLITE_OK) {
      return sql_error("prepare");
    }
    Stmt stmt(raw);
    for (size_t i = 0; i < values.size(); ++i) {
      int idx = static_cast<int>(i + 1);
      int rc = SQLITE_OK;
      if (const auto* n = std::get_if<int64_t>(&values[i])) {
        rc = sqlite3_bind_int64(raw, idx, *n);
      } else if (const auto* t = std::get_if<std::string>(&values[i])) {
        rc = sqlite3_bind_text(raw, idx, t->data(), static_cast<int>(t->size()), SQLITE_TRANSIENT);
      } else {
        rc = sqlite3_bind_null(raw, idx);
      }
      if (rc != SQLITE_OK) {
        return sql_error("bind");
      }
    }
    return stmt;
  }

  Result<void> run(std::string_view sql, const std::vector<Value>& values) {
    SBX_ASSIGN(Stmt stmt, prepare(sql, values));
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) {
      return sql_error("write");
    }
    return ok();
  }

  // run(), returning how many rows it changed.
  Result<int64_t> run_counted(std::string_view sql, const std::vector<Value>& values) {
    SBX_TRY(run(sql, values));
    return static_cast<int64_t>(sqlite3_changes(db));
  }

  Result<void> query(std::string_view sql, const std::vector<Value>& values,
                     const std::function<void(sqlite3_stmt*)>& row) {
    SBX_ASSIGN(Stmt stmt, prepare(sql, values));
    for (;;) {
      int rc = sqlite3_step(stmt.get());
      if (rc == SQLITE_DONE) {
        return ok();
      }
      if (rc != SQLITE_ROW) {
        return sql_error("read");
      }
      row(stmt.get());
    }
  }

  Result<void> migrate() {
    SBX_TRY(query("PRAGMA user_version", {}, [&](sqlite3_stmt* s) { version = sqlite3_column_int(s, 0); }));
    if (version > kSchemaVersion) {
      return make_error("database: schema version {} is newer than this sbxd knows ({}); refusing to touch it",
                        version, kSchemaVersion);
    }
    while (version < kSchemaVersion) {
      SBX_TRY(exec("BEGIN IMMEDIATE", "begin migration"));
      auto r = exec(kMigrations[version], fmt::format("migrate schema {} -> {}", version, version + 1));
      if (r.ok()) {
        r = exec(fmt::format("PRAGMA user_version = {}", version + 1).c_str(), "set schema version");
      }
      if (!r.ok()) {
        (void)exec("ROLLBACK", "roll back migration");
        return r;
      }
      SBX_TRY(exec("COMMIT", "commit migration"));
      ++version;
    }
    return ok();
  }

  // " AND sandbox_id = ? AND owner_uid = ? ..." for the set fields of a filter.
  static std::string filter_sql(const RecordFilter& f, std::vector<Value>* values) {
    std::string sql = " WHERE 1=1";
    if (!f.sandbox_id.empty()) {
      sql += " AND sandbox_id = ?";
      values->push_back(f.sandbox_id);
    }
    if (f.owner_uid) {
      sql += " AND owner_uid = ?";
      values->push_back(int64_t(*f.owner_uid));
    }
    if (f.tenant) {
      sql += " AND tenant = ?";
      values->push_back(*f.tenant);
    }
    return sql;
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  auto impl = std::make_unique<Impl>();
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr) != SQLITE_OK) {
    return impl->sql_error(fmt::format("open '{}'", path));
  }
  sqlite3_busy_timeout(impl->db, 5000);
  SBX_TRY_CTX(impl->exec("PRAGMA journal_mode = WAL", "enable WAL"), "open '{}'", path);
  SBX_TRY_CTX(impl->exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", "set pragmas"), "open '{}'",
              path);
  SBX_TRY_CTX(impl->migrate(), "open '{}'", path);
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

int Store::schema_version() const { return impl_->version; }

Result<std::vector<SandboxRow>> Store::sandboxes() {
  std::vector<SandboxRow> rows;
  SBX_TRY(impl_->query(
      "SELECT id, name, owner_uid, tenant, state, spec, created_at, started_at, finished_at, exit_code, "
      "exit_signal, oom_killed, expires_at, monitor_pid, monitor_start, error FROM sandboxes ORDER BY created_at",
      {}, [&](sqlite3_stmt* s) {
        SandboxRow r;
        r.id = column_text(s, 0);
        r.name = column_text(s, 1);
        r.owner_uid = static_cast<uint32_t>(sqlite3_column_int64(s, 2));
        r.tenant = column_text(s, 3);
        r.state = column_text(s, 4);
        r.spec = column_json(s, 5);
        r.created_at = sqlite3_column_int64(s, 6);
        r.started_at = sqlite3_column_int64(s, 7);
        r.finished_at = sqlite3_column_int64(s, 8);
        r.exit_code = column_opt_int(s, 9);
        r.exit_signal = column_opt_int(s, 10);
        r.oom_killed = sqlite3_column_int(s, 11) != 0;
        r.expires_at = sqlite3_column_int64(s, 12);
        r.monitor_pid = sqlite3_column_int(s, 13);
        r.monitor_start = static_cast<uint64_t>(sqlite3_column_int64(s, 14));
        r.error = column_text(s, 15);
        rows.push_back(std::move(r));
      }));
  return rows;
}

Result<void> Store::put_sandbox(const SandboxRow& r) {
  return impl_->run(
      "INSERT OR REPLACE INTO sandboxes (id, name, owner_uid, tenant, state, spec, created_at, started_at, "
      "finished_at, exit_code, exit_signal, oom_killed, expires_at, monitor_pid, monitor_start, error) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {r.id, r.name, int64_t(r.owner_uid), r.tenant, r.state, api::dump_json(r.spec), r.created_at, r.started_at,
       r.finished_at, opt(r.exit_code), opt(r.exit_signal), int64_t(r.oom_killed), r.expires_at,
       int64_t(r.monitor_pid), int64_t(r.monitor_start), r.error});
}

Result<void> Store::delete_sandbox(const std::string& id) {
  return impl_->run("DELETE FROM sandboxes WHERE id = ?", {id});
}

Result<PrunedRecords> Store::prune_history(int64_t before_ms) {
  PrunedRecords out;
  SBX_ASSIGN(out.execs, impl_->run_counted("DELETE FROM execs WHERE started_at < ?", {before_ms}));
  SBX_ASSIGN(out.events, impl_->run_counted("DELETE FROM events WHERE time < ?", {before_ms}));
  return out;
}

Result<void> Store::add_exec(const ExecRow& r) {
  return impl_->run(
      "INSERT INTO execs (exec_id, sandbox_id, owner_uid, tenant, argv, caller_uid, started_at, duration_ms, "
      "exit_code, signal, timed_out, oom_killed, cpu_user_us, cpu_system_us, peak_rss_bytes, error) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {r.exec_id, r.sandbox_id, int64_t(r.owner_uid), r.tenant, api::dump_json(r.argv), int64_t(r.caller_uid), r.started_at,
       r.duration_ms, opt(r.exit_code), opt(r.signal), int64_t(r.timed_out), int64_t(r.oom_killed), r.cpu_user_us,
       r.cpu_system_us, r.peak_rss_bytes, r.error});
}

Result<std::vector<ExecRow>> Store::execs(const RecordFilter& filter, int limit) {
  std::vector<Value> values;
  std::string sql =
      "SELECT * FROM (SELECT exec_id, sandbox_id, owner_uid, tenant, argv, caller_uid, started_at, duration_ms, "
      "exit_code, signal, timed_out, oom_killed, cpu_user_us, cpu_system_us, peak_rss_bytes, error, rowid "
      "FROM execs" +
      Impl::filter_sql(filter, &values) + " ORDER BY rowid DESC LIMIT ?) ORDER BY rowid";
  values.push_back(int64_t(limit));
  std::vector<ExecRow> rows;
  SBX_TRY(impl_->query(sql, values, [&](sqlite3_stmt* s) {
    ExecRow r;
    r.exec_id = column_text(s, 0);
    r.sandbox_id = column_text(s, 1);
    r.owner_uid = static_cast<uint32_t>(sqlite3_column_int64(s, 2));
    r.tenant = column_text(s, 3);
    r.argv = column_json(s, 4);
    r.caller_uid = static_cast<uint32_t>(sqlite3_column_int64(s, 5));
    r.started_at = sqlite3_column_int64(s, 6);
    r.duration_ms = sqlite3_column_int64(s, 7);
    r.exit_code = column_opt_int(s, 8);
    r.signal = column_opt_int(s, 9);
    r.timed_out = sqlite3_column_int(s, 10) != 0;
    r.oom_killed = sqlite3_column_int(s, 11) != 0;
    r.cpu_user_us = sqlite3_column_int64(s, 12);
    r.cpu_system_us = sqlite3_column_int64(s, 13);
    r.peak_rss_bytes = sqlite3_column_int64(s, 14);
    r.error = column_text(s, 15);
    rows.push_back(std::move(r));
  }));
  return rows;
}

Result<int64_t> Store::add_event(EventRow r) {
  SBX_TRY(impl_->run("INSERT INTO events (time, type, sandbox_id, name, owner_uid, tenant, details) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     {r.time, r.type, r.sandbox_id, r.name, int64_t(r.owner_uid), r.tenant, api::dump_json(r.details)}));
  return sqlite3_last_insert_rowid(impl_->db);
}

Result<std::vector<EventRow>> Store::events(const RecordFilter& filter, int limit) {
  std::vector<Value> values;
  std::string sql =
      "SELECT * FROM (SELECT seq, time, type, sandbox_id, name, owner_uid, tenant, details FROM events" +
      Impl::filter_sql(filter, &values) + " ORDER BY seq DESC LIMIT ?) ORDER BY seq";
  values.push_back(int64_t(limit));
  std::vector<EventRow> rows;
  SBX_TRY(impl_->query(sql, values, [&](sqlite3_stmt* s) {
    EventRow r;
    r.seq = sqlite3_column_int64(s, 0);
    r.time = sqlite3_column_int64(s, 1);
    r.type = column_text(s, 2);
    r.sandbox_id = column_text(s, 3);
    r.name = column_text(s, 4);
    r.owner_uid = static_cast<uint32_t>(sqlite3_column_int64(s, 5));
    r.tenant = column_text(s, 6);
    r.details = column_json(s, 7);
    rows.push_back(std::move(r));
  }));
  return rows;
}

Result<std::vector<ImageRow>> Store::images() {
  std::vector<ImageRow> rows;
  SBX_TRY(impl_->query("SELECT name, id, created_at, record FROM images ORDER BY name", {}, [&](sqlite3_stmt* s) {
    rows.push_back({column_text(s, 0), column_text(s, 1), sqlite3_column_int64(s, 2), column_json(s, 3)});
  }));
  return rows;
}

Result<void> Store::put_image(const ImageRow& r) {
  return impl_->run("INSERT OR REPLACE INTO images (name, id, created_at, record) VALUES (?, ?, ?, ?)",
                    {r.name, r.id, r.created_at, api::dump_json(r.record)});
}

Result<void> Store::delete_image(const std::string& name) {
  return impl_->run("DELETE FROM images WHERE name = ?", {name});
}

Result<std::vector<LeaseRow>> Store::leases() {
  std::vector<LeaseRow> rows;
  SBX_TRY(impl_->query("SELECT address, sandbox_id, created_at FROM leases ORDER BY address", {}, [&](sqlite3_stmt* s) {
    rows.push_back({static_cast<uint32_t>(sqlite3_column_int64(s, 0)), column_text(s, 1), sqlite3_column_int64(s, 2)});
  }));
  return rows;
}

Result<void> Store::add_lease(const LeaseRow& r) {
  return impl_->run("INSERT INTO leases (address, sandbox_id, created_at) VALUES (?, ?, ?)",
                    {int64_t(r.address), r.sandbox_id, r.created_at});
}

Result<void> Store::delete_lease(const std::string& sandbox_id) {
  return impl_->run("DELETE FROM leases WHERE sandbox_id = ?", {sandbox_id});
}

Result<std::vector<UsernsSlotRow>> Store::userns_slots() {
  std::vector<UsernsSlotRow> rows;
  SBX_TRY(impl_->query("SELECT slot, sandbox_id, created_at FROM userns_slots ORDER BY slot", {}, [&](sqlite3_stmt* s) {
    rows.push_back({static_cast<uint32_t>(sqlite3_column_int64(s, 0)), column_text(s, 1), sqlite3_column_int64(s, 2)});
  }));
  return rows;
}

Result<void> Store::add_userns_slot(const UsernsSlotRow& r) {
  return impl_->run("INSERT INTO userns_slots (slot, sandbox_id, created_at) VALUES (?, ?, ?)",
                    {int64_t(r.slot), r.sandbox_id, r.created_at});
}

Result<void> Store::delete_userns_slot(const std::string& sandbox_id) {
  return impl_->run("DELETE FROM userns_slots WHERE sandbox_id = ?", {sandbox_id});
}

Result<std::vector<EnvironmentRow>> Store::environments() {
  std::vector<EnvironmentRow> rows;
  SBX_TRY(impl_->query("SELECT name, version, created_at, created_by, spec FROM environments ORDER BY name, version",
                       {}, [&](sqlite3_stmt* s) {
                         rows.push_back({column_text(s, 0), sqlite3_column_int(s, 1), sqlite3_column_int64(s, 2),
                                         static_cast<uint32_t>(sqlite3_column_int64(s, 3)), column_json(s, 4)});
                       }));
  return rows;
}

Result<void> Store::add_environment(const EnvironmentRow& r) {
  return impl_->run("INSERT INTO environments (name, version, created_at, created_by, spec) VALUES (?, ?, ?, ?, ?)",
                    {r.name, int64_t(r.version), r.created_at, int64_t(r.created_by), api::dump_json(r.spec)});
}

Result<int64_t> Store::delete_environment(const std::string& name, std::optional<int> version) {
  if (version) {
    return impl_->run_counted("DELETE FROM environments WHERE name = ? AND version = ?", {name, int64_t(*version)});
  }
  return impl_->run_counted("DELETE FROM environments WHERE name = ?", {name});
}

namespace {

// id, tenant, name, created, last_used: the columns every API key query reads first.
ApiKeyRow api_key_row(sqlite3_stmt* s) {
  ApiKeyRow r;
  r.id = column_text(s, 0);
  r.tenant = column_text(s, 1);
  r.name = column_text(s, 2);
  r.created = sqlite3_column_int64(s, 3);
  r.last_used = sqlite3_column_type(s, 4) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 4);
  return r;
}

}  // namespace

Result<bool> Store::add_api_key(const ApiKeyRow& r) {
  // Only a taken id is "not added"; any other constraint (a duplicate hash) stays an error.
  SBX_ASSIGN(int64_t added,
             impl_->run_counted("INSERT INTO api_keys (id, tenant, name, hash, created, last_used) "
                                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                                {r.id, r.tenant, r.name, r.hash, r.created,
                                 r.last_used != 0 ? Value(r.last_used) : Value()}));
  return added == 1;
}

Result<std::vector<ApiKeyRow>> Store::api_keys(const std::optional<std::string>& tenant) {
  std::vector<ApiKeyRow> rows;
  const char* sql = tenant ? "SELECT id, tenant, name, created, last_used FROM api_keys WHERE tenant = ? "
                             "ORDER BY created, id"
                           : "SELECT id, tenant, name, created, last_used FROM api_keys ORDER BY created, id";
  std::vector<Value> values;
  if (tenant) {
    values.push_back(*tenant);
  }
  SBX_TRY(impl_->query(sql, values, [&](sqlite3_stmt* s) { rows.push_back(api_key_row(s)); }));
  return rows;
}

Result<std::optional<ApiKeyRow>> Store::api_key(const std::string& id) {
  std::optional<ApiKeyRow> row;
  SBX_TRY(impl_->query("SELECT id, tenant, name, created, last_used, hash FROM api_keys WHERE id = ?", {id},
                       [&](sqlite3_stmt* s) {
                         row = api_key_row(s);
                         row->hash = column_text(s, 5);
                       }));
  return row;
}

Result<std::optional<ApiKeyRow>> Store::api_key_by_hash(const std::string& hash) {
  std::optional<ApiKeyRow> row;
  SBX_TRY(impl_->query("SELECT id, tenant, name, created, last_used, hash FROM api_keys WHERE hash = ?", {hash},
                       [&](sqlite3_stmt* s) {
                         row = api_key_row(s);
                         row->hash = column_text(s, 5);
                       }));
  return row;
}

Result<void> Store::set_api_key_last_used(const std::string& id, int64_t when) {
  return impl_->run("UPDATE api_keys SET last_used = ? WHERE id = ?", {when, id});
}

Result<bool> Store::delete_api_key(const std::string& id) {
  SBX_ASSIGN(int64_t deleted, impl_->run_counted("DELETE FROM api_keys WHERE id = ?", {id}));
  return deleted > 0;
}

Result<void> Store::check() { return impl_->query("SELECT count(*) FROM sandboxes", {}, [](sqlite3_stmt*) {}); }

}  // namespace sbx::daemon
