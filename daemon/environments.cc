// environment.* methods: named, versioned sandbox templates. A version is never changed; update adds the next one.
// Each version pins its image's snapshot, so re-importing the image's name does not change what it creates.
#include <sys/stat.h>

#include <algorithm>
#include <map>

#include "daemon/daemon.h"
#include "daemon/environment_spec.h"
#include "daemon/image_spec.h"
#include "daemon/log.h"
#include "daemon/plan_builder.h"

namespace sbx::daemon {

namespace {

Result<void> check_manager(const Caller& caller, std::string_view what) {
  if (caller.role != Role::kRoot && caller.role != Role::kTrusted) {
    return api::api_error(api::kPermissionDenied, "uid {} may not {} environments (root and trusted callers only)",
                          caller.uid, what);
  }
  return ok();
}

std::vector<int> versions_of(const std::vector<EnvironmentRow>& rows, const std::string& name) {
  std::vector<int> out;
  for (const auto& r : rows) {
    if (r.name == name) {
      out.push_back(r.version);
    }
  }
  return out;
}

const EnvironmentRow* latest(const std::vector<EnvironmentRow>& rows, const std::string& name) {
  const EnvironmentRow* found = nullptr;
  for (const auto& r : rows) {
    if (r.name == name && (found == nullptr || r.version > found->version)) {
      found = &r;
    }
  }
  return found;
}

}  // namespace

Result<EnvironmentRow> Daemon::find_environment(const std::string& ref_text, std::string_view field) {
  SBX_ASSIGN(EnvironmentRef ref, parse_environment_ref(ref_text, field));
  SBX_ASSIGN(auto rows, store_->environments());
  for (const auto& r : rows) {
    if (r.name == ref.name && ref.version && r.version == *ref.version) {
      return r;
    }
  }
  if (!ref.version) {
    if (const EnvironmentRow* r = latest(rows, ref.name)) {
      return *r;
    }
  }
  return api::api_error(api::kNotFound, "no environment '{}'", ref_text);
}

Result<json> Daemon::resolve_create_image(const json& params, const json& environment) {
  if (params.contains("rootfs")) {
    return json();
  }
  if (params.contains("image")) {
    SBX_ASSIGN(auto images, store_->images());
    SBX_ASSIGN(const ImageRow* row, find_image(images, params["image"].get<std::string>()));
    return image_snapshot(*row);
  }
  return environment.is_object() ? environment.value("image", json()) : json();
}

// The environment's seccomp profile must exist now, not only when a sandbox is made from it.
Result<json> Daemon::environment_spec_for(const json& params, const json& base) {
  json image;
  if (params.contains("image")) {
    SBX_ASSIGN(auto images, store_->images());
    SBX_ASSIGN(const ImageRow* row, find_image(images, params["image"].get<std::string>()));
    image = image_snapshot(*row);
  }
  SBX_ASSIGN(json spec, next_environment_spec(params, base, image));
  if (spec.contains("seccomp")) {
    std::string dir = config_.seccomp_dir.empty() ? default_seccomp_dir() : config_.seccomp_dir;
    struct stat st {};
    if (::stat((dir + "/" + spec["seccomp"].get<std::string>() + ".json").c_str(), &st) < 0) {
      return api::param_error("seccomp", fmt::format("no profile named '{}' in {}",
                                                     spec["seccomp"].get<std::string>(), dir));
    }
  }
  return spec;
}

Result<json> Daemon::add_environment_version(const Caller& caller, const std::string& name, int version,
                                             json spec) {
  EnvironmentRow row{name, version, api::now_ms(), caller.uid, std::move(spec)};
  SBX_TRY(store_->add_environment(row));
  SBX_ASSIGN(auto rows, store_->environments());
  log_info("environment {}@{}: image {}", name, version, row.spec["image"].value("name", ""));
  return describe_environment(row, versions_of(rows, name));
}

void Daemon::environment_create(CallPtr call) {
  const json& p = call->params();
  std::string name = p["name"].get<std::string>();
  auto r = [&]() -> Result<json> {
    SBX_TRY(check_manager(call->caller(), "create"));
    SBX_TRY(check_name(name, "name"));
    SBX_ASSIGN(auto rows, store_->environments());
    if (latest(rows, name) != nullptr) {
      return api::api_error(api::kConflict, "an environment named '{}' exists (environment.update makes a new "
                                            "version)", name);
    }
    SBX_ASSIGN(json spec, environment_spec_for(p, json::object()));
    return add_environment_version(call->caller(), name, 1, std::move(spec));
  }();
  call->finish(r);
}

void Daemon::environment_update(CallPtr call) {
  const json& p = call->params();
  std::string name = p["name"].get<std::string>();
  auto r = [&]() -> Result<json> {
    SBX_TRY(check_manager(call->caller(), "update"));
    SBX_TRY(check_name(name, "name"));
    SBX_ASSIGN(auto rows, store_->environments());
    const EnvironmentRow* last = latest(rows, name);
    if (last == nullptr) {
      return api::api_error(api::kNotFound, "no environment '{}'", name);
    }
    SBX_ASSIGN(json spec, environment_spec_for(p, last->spec));
    return add_environment_version(call->caller(), name, last->version + 1, std::move(spec));
  }();
  call->finish(r);
}

void Daemon::environment_list(CallPtr call) {
  auto rows = store_->environments();
  if (!rows.ok()) {
    return call->fail(rows.error());
  }
  json out = json::array();
  for (const auto& r : *rows) {
    if (latest(*rows, r.name) == &r) {
      out.push_back(describe_environment(r, versions_of(*rows, r.name)));
    }
  }
  call->reply({{"environments", out}});
}

void Daemon::environment_inspect(CallPtr call) {
  auto r = [&]() -> Result<json> {
    SBX_ASSIGN(EnvironmentRow row, find_environment(call->params()["name"].get<std::string>(), "name"));
    SBX_ASSIGN(auto rows, store_->environments());
    json out = describe_environment(row, versions_of(rows, row.name));
    out["image"] = row.spec["image"];  // the whole pinned snapshot: layers and config
    return out;
  }();
  call->finish(r);
}

void Daemon::environment_remove(CallPtr call) {
  std::string text = call->params()["name"].get<std::string>();
  auto r = [&]() -> Result<json> {
    SBX_TRY(check_manager(call->caller(), "remove"));
    SBX_ASSIGN(EnvironmentRef ref, parse_environment_ref(text, "name"));
    SBX_ASSIGN(int64_t removed, store_->delete_environment(ref.name, ref.version));
    if (removed == 0) {
      return api::api_error(api::kNotFound, "no environment '{}'", text);
    }
    log_info("environment {}: removed {} version(s)", text, removed);
    collect_garbage();
    return json{{"removed_versions", removed}};
  }();
  call->finish(r);
}

}  // namespace sbx::daemon
