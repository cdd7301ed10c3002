// apikey.* methods: keys the HTTP shim authenticates web clients with. root creates, lists and revokes them for a
// tenant; the shim (a trusted uid) verifies a client's key on each request and then acts for the key's tenant.
// Only the SHA-256 of a key is stored (daemon/api_key_spec.h); the key text is in create's reply and nowhere else,
// neither in the database, nor in the log, nor in the events.
#include "daemon/api_key_spec.h"
#include "daemon/daemon.h"
#include "daemon/log.h"

namespace sbx::daemon {

namespace {

// A verified key's last_used is written at most this often: the shim verifies on every request, and one write per
// request would cost more than the lookup itself.
constexpr int64_t kLastUsedIntervalMs = 60 * 1000;
// Ids are 48 random bits: a collision is rare, several in a row mean something is wrong with the random source.
constexpr int kIdAttempts = 8;

Result<void> check_root(const Caller& caller, std::string_view what) {
  if (caller.role != Role::kRoot) {
    return api::api_error(api::kPermissionDenied, "uid {} may not {} API keys (root only)", caller.uid, what);
  }
  return ok();
}

// Every way a key can fail to verify gets this one error: the caller learns nothing about why.
Error invalid_key() { return api::api_error(api::kPermissionDenied, "invalid API key"); }

json time_or_null(int64_t ms) { return ms != 0 ? json(api::format_time_ms(ms)) : json(); }

// A key as apikey.list shows it: never its hash.
json describe_key(const ApiKeyRow& r) {
  return {{"id", r.id},
          {"tenant", r.tenant},
          {"name", r.name},
          {"created", api::format_time_ms(r.created)},
          {"last_used", time_or_null(r.last_used)}};
}

}  // namespace

// The audit trail: an event whose id is the key's id and whose name is its label; never the key.
void Daemon::record_key_event(const std::string& type, const Caller& caller, const ApiKeyRow& key) {
  SandboxRow audit;
  audit.id = key.id;
  audit.name = key.name;
  audit.owner_uid = caller.uid;
  audit.tenant = key.tenant;
  emit(type, audit, {{"key_id", key.id}, {"tenant", key.tenant}});
}

void Daemon::apikey_create(CallPtr call) {
  const Caller& caller = call->caller();
  auto r = [&]() -> Result<json> {
    SBX_TRY(check_root(caller, "create"));
    if (caller.tenant.empty()) {
      return api::param_error("tenant", "required: the tenant the key acts for");
    }
    ApiKeyRow row;
    row.tenant = caller.tenant;
    row.name = call->params().value("name", "");
    SBX_TRY(api_keys::check_key_name(row.name));
    SBX_ASSIGN(std::string secret, api_keys::random_bytes(api_keys::kKeyBytes));
    const std::string key = api_keys::key_text(secret);
    SBX_ASSIGN(row.hash, api_keys::key_hash(key));
    row.created = api::now_ms();
    for (int attempt = 0;; ++attempt) {
      if (attempt == kIdAttempts) {
        return make_error("create API key: {} random ids in a row were taken", kIdAttempts);
      }
      SBX_ASSIGN(std::string id_bytes, api_keys::random_bytes(api_keys::kIdBytes));
      row.id = api_keys::key_id(id_bytes);
      SBX_ASSIGN(bool added, store_->add_api_key(row));
      if (added) {
        break;
      }
    }
    record_key_event("apikey.created", caller, row);
    log_info("API key {} created for tenant {} by uid {}", row.id, row.tenant, caller.uid);
    return json{{"id", row.id},
                {"key", key},
                {"tenant", row.tenant},
                {"name", row.name},
                {"created", api::format_time_ms(row.created)}};
  }();
  if (!r.ok() && r.error().code() == 0) {
    log_error("apikey.create for tenant {}: {}", caller.tenant, r.error().message());
  }
  call->finish(r);
}

void Daemon::apikey_list(CallPtr call) {
  const Caller& caller = call->caller();
  auto r = [&]() -> Result<json> {
    SBX_TRY(check_root(caller, "list"));
    std::optional<std::string> tenant;
    if (!caller.tenant.empty()) {
      tenant = caller.tenant;
    }
    SBX_ASSIGN(auto rows, store_->api_keys(tenant));
    json keys = json::array();
    for (const auto& row : rows) {
      keys.push_back(describe_key(row));
    }
    return json{{"keys", std::move(keys)}};
  }();
  call->finish(r);
}

void Daemon::apikey_revoke(CallPtr call) {
  const Caller& caller = call->caller();
  const std::string id = call->params()["id"].get<std::string>();
  auto r = [&]() -> Result<json> {
    SBX_TRY(check_root(caller, "revoke"));
    SBX_ASSIGN(auto row, store_->api_key(id));
    // With a tenant, the call acts for it: another tenant's key does not exist for it.
    if (!row || (!caller.tenant.empty() && row->tenant != caller.tenant)) {
      return api::api_error(api::kNotFound, "no API key '{}'", id);
    }
    SBX_ASSIGN(bool deleted, store_->delete_api_key(id));
    if (!deleted) {
      return api::api_error(api::kNotFound, "no API key '{}'", id);
    }
    record_key_event("apikey.revoked", caller, *row);
    log_info("API key {} of tenant {} revoked by uid {}", row->id, row->tenant, caller.uid);
    return json{{"id", id}, {"revoked", true}};
  }();
  call->finish(r);
}

void Daemon::apikey_verify(CallPtr call) {
  const Caller& caller = call->caller();
  if (caller.role != Role::kRoot && caller.role != Role::kTrusted) {
    return call->fail(api::api_error(api::kPermissionDenied,
                                     "uid {} may not verify API keys (root and trusted callers only)", caller.uid));
  }
  const std::string& key = call->params()["key"].get_ref<const std::string&>();
  if (!api_keys::looks_like_key(key)) {
    return call->fail(invalid_key());
  }
  auto hash = api_keys::key_hash(key);
  auto row = hash.ok() ? store_->api_key_by_hash(*hash) : Result<std::optional<ApiKeyRow>>(hash.error());
  if (!row.ok()) {
    // The daemon's failure, not the key's: an internal error, so that the shim does not turn it into a 401.
    log_error("apikey.verify: {}", row.error().message());
    return call->fail(row.error());
  }
  if (!*row) {
    return call->fail(invalid_key());
  }
  const ApiKeyRow& found = **row;
  const int64_t now = api::now_ms();
  if (now - found.last_used >= kLastUsedIntervalMs) {
    if (auto w = store_->set_api_key_last_used(found.id, now); !w.ok()) {
      log_warn("apikey.verify: record the use of key {}: {}", found.id, w.error().message());
    }
  }
  call->reply({{"id", found.id}, {"tenant", found.tenant}, {"name", found.name}});
}

}  // namespace sbx::daemon
