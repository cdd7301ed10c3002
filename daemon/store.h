#pragma once
// The daemon's persistent state: one sqlite database (WAL) under the state dir, schema versioned with
// PRAGMA user_version and migrated forward at open. Sandboxes (their request, owner and lifecycle), every exec
// and every event are recorded; sandbox rows go when the sandbox is removed, exec and event rows stay (the audit
// trail). All calls are synchronous: the database is local and the statements are small.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace sbx::daemon {

using json = nlohmann::json;

struct SandboxRow {
  std::string id;
  std::string name;
  uint32_t owner_uid = 0;
  std::string tenant;
  std::string state;  // created | running | exited
  json spec;          // the normalized create request
  int64_t created_at = 0;  // epoch ms; 0: never
  int64_t started_at = 0;
  int64_t finished_at = 0;
  std::optional<int> exit_code;
  std::optional<int> exit_signal;
  bool oom_killed = false;
  int64_t expires_at = 0;  // epoch ms; 0: no TTL
  int monitor_pid = 0;
  uint64_t monitor_start = 0;  // /proc/<pid>/stat start time of the monitor, against pid reuse
  std::string error;           // why the last run ended abnormally, if it did
};

struct ExecRow {
  std::string exec_id;
  std::string sandbox_id;
  uint32_t owner_uid = 0;  // the sandbox's owner and tenant, for who may read the record
  std::string tenant;
  json argv;
  uint32_t caller_uid = 0;
  int64_t started_at = 0;
  int64_t duration_ms = 0;
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool timed_out = false;
  bool oom_killed = false;
  int64_t cpu_user_us = 0;
  int64_t cpu_system_us = 0;
  int64_t peak_rss_bytes = 0;
  std::string error;
};

struct EventRow {
  int64_t seq = 0;
  int64_t time = 0;
  std::string type;
  std::string sandbox_id;
  std::string name;
  uint32_t owner_uid = 0;
  std::string tenant;
  json details;
};

// An image in the store, by name. `record` holds the rest (format, source, config, user, layers, size): what the
// importer reported, kept as it came so that a field added later needs no migration.
struct ImageRow {
  std::string name;
  std::string id;  // "sha256:<hex>" of the image config
  int64_t created_at = 0;
  json record;
};

// One version of an environment; versions are never changed, only added and removed.
struct EnvironmentRow {
  std::string name;
  int version = 0;
  int64_t created_at = 0;
  uint32_t created_by = 0;
  json spec;  // image {name, id, layers, ...}, limits, env, seccomp, network, ttl, description
};

// Which exec and event records a query returns; unset fields match everything.
struct RecordFilter {
  std::string sandbox_id;
  std::optional<uint32_t> owner_uid;
  std::optional<std::string> tenant;
};

struct PrunedRecords {
  int64_t execs = 0;
  int64_t events = 0;
};

struct LeaseRow {
  uint32_t address = 0;
  std::string sandbox_id;
  int64_t created_at = 0;
};

// A slot of the [userns] pool: host ids first + slot * size onwards belong to the sandbox.
struct UsernsSlotRow {
  uint32_t slot = 0;
  std::string sandbox_id;
  int64_t created_at = 0;
};

// An API key of the HTTP shim: who it acts for, and the SHA-256 hex of its text (never the text itself).
struct ApiKeyRow {
  std::string id;
  std::string tenant;
  std::string name;
  std::string hash;       // empty in the rows api_keys() returns: listing never reads it
  int64_t created = 0;    // epoch ms
  int64_t last_used = 0;  // epoch ms; 0: never
};

class Store {
 public:
  // Opens (creating) the database and migrates it to the current schema.
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  int schema_version() const;

  Result<std::vector<SandboxRow>> sandboxes();
  Result<void> put_sandbox(const SandboxRow& row);  // insert or replace
  Result<void> delete_sandbox(const std::string& id);

  Result<void> add_exec(const ExecRow& row);
  // The newest `limit` records matching the filter, returned oldest first.
  Result<std::vector<ExecRow>> execs(const RecordFilter& filter, int limit);

  Result<int64_t> add_event(EventRow row);  // returns its seq
  Result<std::vector<EventRow>> events(const RecordFilter& filter, int limit);

  Result<std::vector<ImageRow>> images();
  Result<void> put_image(const ImageRow& row);  // insert or replace, by name
  Result<void> delete_image(const std::string& name);

  // Every version of every environment, by name then version.
  // Bridge-mode addresses (host byte order); add_lease fails when the address or the sandbox already has one.
  Result<std::vector<LeaseRow>> leases();
  Result<void> add_lease(const LeaseRow& row);
  Result<void> delete_lease(const std::string& sandbox_id);
  // User-namespace slots; add_userns_slot fails when the slot or the sandbox already has one.
  Result<std::vector<UsernsSlotRow>> userns_slots();
  Result<void> add_userns_slot(const UsernsSlotRow& row);
  Result<void> delete_userns_slot(const std::string& sandbox_id);

  Result<std::vector<EnvironmentRow>> environments();
  Result<void> add_environment(const EnvironmentRow& row);  // fails when that version exists
  // Deletes one version, or all of them; returns how many went.
  Result<int64_t> delete_environment(const std::string& name, std::optional<int> version);

  // API keys. add_api_key returns false, adding nothing, when the id is taken (the caller draws another).
  Result<bool> add_api_key(const ApiKeyRow& row);
  // Every key, or a tenant's, by creation time; without their hashes.
  Result<std::vector<ApiKeyRow>> api_keys(const std::optional<std::string>& tenant);
  Result<std::optional<ApiKeyRow>> api_key(const std::string& id);
  // The key with that hash (an indexed lookup: apikey.verify runs it on every request of the shim).
  Result<std::optional<ApiKeyRow>> api_key_by_hash(const std::string& hash);
  Result<void> set_api_key_last_used(const std::string& id, int64_t when);
  // Returns whether a key of that id was there.
  Result<bool> delete_api_key(const std::string& id);

  Result<void> check();
  // Deletes the exec records that started, and the events that happened, before `before_ms` (epoch ms).
  Result<PrunedRecords> prune_history(int64_t before_ms);  // a trivial query: is the database usable?

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sbx::daemon
