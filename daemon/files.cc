// file.*: files inside a running sandbox's root (see runtime/rootfs_access.h for how paths stay inside it).
#include "daemon/daemon.h"
#include "runtime/rootfs_access.h"
#include "runtime/userns.h"

namespace sbx::daemon {

namespace {

// The errno of a file operation decides the API code: a missing path is "not found", refusals are "permission
// denied", a bad path is "invalid params"; the errno stays in the error's data.
Error classify(Error e) {
  switch (e.sys_errno()) {
    case ENOENT:
    case ENOTDIR:
      return std::move(e).with_code(api::kNotFound);
    case EACCES:
    case EPERM:
    case EXDEV:
    case EROFS:
      return std::move(e).with_code(api::kPermissionDenied);
    case EINVAL:
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP:
      return std::move(e).with_code(api::kInvalidParams);
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return std::move(e).with_code(api::kLimitExceeded);
    default:
      return e;
  }
}

// An id inside the sandbox as the host's: through its user namespace, if it has one.
Result<uint32_t> host_id(const std::optional<rt::UserNamespacePlan>& userns, bool gid, uint32_t inside,
                         std::string_view field) {
  if (!userns) {
    return inside;
  }
  auto host = rt::map_to_host(gid ? userns->gid_map : userns->uid_map, inside);
  if (!host) {
    return api::param_error(field, fmt::format("{} is not mapped in the sandbox's user namespace", inside));
  }
  return *host;
}

Result<json> file_write(int root, const json& p, const DaemonConfig& config,
                        const std::optional<rt::UserNamespacePlan>& userns) {
  SBX_ASSIGN(std::string data, api::base64_decode(p["data_b64"].get<std::string>()));
  if (data.size() > config.max_file_bytes) {
    return api::api_error(api::kLimitExceeded, "{} bytes exceed the daemon's file limit of {} (max_file_bytes)",
                          data.size(), config.max_file_bytes);
  }
  rt::WriteOptions o;
  o.mode = p.value("mode", 0644u);
  if (o.mode > 07777) {
    return api::param_error("mode", "must be permission bits (0 to 07777)");
  }
  if (p.contains("uid")) {
    SBX_ASSIGN(o.uid, host_id(userns, false, p["uid"].get<uint32_t>(), "uid"));
  }
  if (p.contains("gid")) {
    SBX_ASSIGN(o.gid, host_id(userns, true, p["gid"].get<uint32_t>(), "gid"));
  }
  o.append = p.value("append", false);
  o.mkdirs = p.value("mkdirs", false);
  SBX_ASSIGN(uint64_t n, rt::write_in_root(root, p["path"].get<std::string>(), data, o));
  return json{{"bytes", n}};
}

Result<json> file_read(int root, const json& p, const DaemonConfig& config) {
  int64_t offset = p.value("offset", int64_t(0));
  int64_t length = p.value("length", static_cast<int64_t>(config.max_file_bytes));
  if (offset < 0 || length < 0) {
    return api::param_error(offset < 0 ? "offset" : "length", "must be >= 0");
  }
  uint64_t max = std::min<uint64_t>(static_cast<uint64_t>(length), config.max_file_bytes);
  SBX_ASSIGN(rt::ReadResult r, rt::read_in_root(root, p["path"].get<std::string>(), offset, max));
  return json{{"data_b64", api::base64_encode(r.data)}, {"size", r.size}, {"eof", r.eof}};
}

Result<json> file_list(int root, const json& p) {
  SBX_ASSIGN(auto entries, rt::list_in_root(root, p["path"].get<std::string>()));
  json out = json::array();
  for (const auto& e : entries) {
    out.push_back({{"name", e.name}, {"type", e.type}, {"size", e.size}, {"mode", e.mode}, {"mtime", e.mtime}});
  }
  return json{{"entries", out}};
}

// One file.* call as the sandbox's root (SandboxFsIdentity), which ends with it: the daemon's thread is itself
// again before it replies.
Result<json> run_file_op(const std::string& m, int root, const json& p, const DaemonConfig& config,
                         const rt::SandboxState& state) {
  SBX_ASSIGN(rt::SandboxFsIdentity as_root, rt::SandboxFsIdentity::assume(state));
  if (m == "file.write") {
    return file_write(root, p, config, state.userns);
  }
  if (m == "file.read") {
    return file_read(root, p, config);
  }
  if (m == "file.list") {
    return file_list(root, p);
  }
  SBX_TRY(rt::remove_in_root(root, p["path"].get<std::string>(), p.value("recursive", false)));
  return json::object();
}

}  // namespace

void Daemon::file_op(CallPtr call) {
  const json& p = call->params();
  auto found = find(call->caller(), p["id"]);
  if (!found.ok()) {
    return call->fail(found.error());
  }
  const SandboxRow& row = (*found)->row;
  if (row.state != "running") {
    return call->fail(api::api_error(api::kInvalidState, "sandbox '{}' is not running", row.name));
  }
  auto state = rt::read_state(run_state_path(row.id));
  if (!state.ok()) {
    return call->fail(std::move(state).error().context(fmt::format("sandbox '{}'", row.id)));
  }
  auto root = rt::open_sandbox_root(*state);
  if (!root.ok()) {
    return call->fail(std::move(root).error().with_code(api::kInvalidState));
  }
  Result<json> r = run_file_op(call->method(), root->get(), p, config_, *state);
  if (!r.ok()) {
    Error e = std::move(r).error();
    return call->fail(e.code() != 0 ? e : classify(std::move(e)));
  }
  call->reply(*r);
}

}  // namespace sbx::daemon
