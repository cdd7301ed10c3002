#include "runtime/state.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/file.h"

namespace sbx::rt {

namespace {

using nlohmann::json;

json rlimits_to_json(const Rlimits& r) {
  json j = {{"core", r.core}};
  if (r.nofile) {
    j["nofile"] = *r.nofile;
  }
  if (r.nproc) {
    j["nproc"] = *r.nproc;
  }
  if (r.fsize) {
    j["fsize"] = *r.fsize;
  }
  return j;
}

json id_map_to_json(const std::vector<IdMapping>& map) {
  json lines = json::array();
  for (const IdMapping& m : map) {
    lines.push_back({m.inside, m.host, m.count});
  }
  return lines;
}

Result<std::vector<IdMapping>> id_map_from_json(const json& j, const std::string& path) {
  std::vector<IdMapping> map;
  for (const json& line : j) {
    if (!line.is_array() || line.size() != 3 || !line[0].is_number_unsigned() || !line[1].is_number_unsigned() ||
        !line[2].is_number_unsigned()) {
      return make_error("state file '{}': an id map line is not [inside, host, count]", path);
    }
    map.push_back({line[0].get<uint32_t>(), line[1].get<uint32_t>(), line[2].get<uint32_t>()});
  }
  return map;
}

std::optional<uint64_t> optional_u64(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) {
    return std::nullopt;
  }
  return it->get<uint64_t>();
}

}  // namespace

Result<void> write_state(const std::string& path, const SandboxState& state) {
  json j = {
      {"version", 1},
      {"id", state.id},
      {"init_pid", state.init_pid},
      {"init_start_time", state.init_start_time},
      {"keep_caps", state.security.keep_caps},
      {"seccomp_profile", state.security.seccomp_profile},
      {"rlimits", rlimits_to_json(state.security.rlimits)},
  };
  if (state.userns) {
    j["uid_map"] = id_map_to_json(state.userns->uid_map);
    j["gid_map"] = id_map_to_json(state.userns->gid_map);
  }
  std::string tmp = path + ".tmp";
  SBX_TRY(create_file(tmp, j.dump() + "\n", 0600));
  if (::rename(tmp.c_str(), path.c_str()) < 0) {
    return sys_error("rename '{}' to '{}'", tmp, path);
  }
  return ok();
}

Result<SandboxState> read_state(const std::string& path) {
  SBX_ASSIGN(std::string text, read_file(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j["id"].is_string() || !j["init_pid"].is_number_integer() ||
      !j["init_start_time"].is_number_unsigned() || !j["keep_caps"].is_array() ||
      !j["seccomp_profile"].is_string() || !j["rlimits"].is_object()) {
    return make_error("state file '{}' is malformed", path);
  }
  SandboxState s;
  s.id = j["id"].get<std::string>();
  s.init_pid = j["init_pid"].get<pid_t>();
  s.init_start_time = j["init_start_time"].get<uint64_t>();
  for (const auto& c : j["keep_caps"]) {
    if (!c.is_string()) {
      return make_error("state file '{}': keep_caps holds a non-string", path);
    }
    s.security.keep_caps.push_back(c.get<std::string>());
  }
  s.security.seccomp_profile = j["seccomp_profile"].get<std::string>();
  const json& r = j["rlimits"];
  s.security.rlimits.core = optional_u64(r, "core").value_or(0);
  s.security.rlimits.nofile = optional_u64(r, "nofile");
  s.security.rlimits.nproc = optional_u64(r, "nproc");
  s.security.rlimits.fsize = optional_u64(r, "fsize");
  if (j.contains("uid_map") && j.contains("gid_map") && j["uid_map"].is_array() && j["gid_map"].is_array()) {
    UserNamespacePlan userns;
    SBX_ASSIGN(userns.uid_map, id_map_from_json(j["uid_map"], path));
    SBX_ASSIGN(userns.gid_map, id_map_from_json(j["gid_map"], path));
    s.userns = std::move(userns);
  }
  return s;
}

Result<uint64_t> process_start_time(pid_t pid) {
  SBX_ASSIGN(std::string stat, read_file(fmt::format("/proc/{}/stat", pid)));
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) {
    return make_error("/proc/{}/stat is malformed", pid);
  }
  // After "pid (comm)" come fields 3, 4, ...; the start time is field 22.
  size_t pos = paren + 2;
  for (int field = 3; field < 22; ++field) {
    pos = stat.find(' ', pos);
    if (pos == std::string::npos) {
      return make_error("/proc/{}/stat is malformed", pid);
    }
    ++pos;
  }
  return parse_u64(stat.substr(pos, stat.find(' ', pos) - pos));
}

Result<Fd> open_init_pidfd(const SandboxState& state) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, state.init_pid, 0));
  if (fd < 0) {
    return sys_error("open sandbox init (pid {})", state.init_pid);
  }
  Fd pidfd(fd);
  // Checked after the pidfd pins the process: a pid recycled since the state was written fails here.
  auto start = process_start_time(state.init_pid);
  if (!start.ok() || *start != state.init_start_time) {
    return Error(fmt::format("sandbox init (pid {}) is gone", state.init_pid), ESRCH);
  }
  return pidfd;
}

}  // namespace sbx::rt
