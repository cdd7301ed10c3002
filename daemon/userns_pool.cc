#include "daemon/userns_pool.h"

#include <algorithm>

#include "api/protocol.h"
#include "base/file.h"
#include "runtime/userns.h"

namespace sbx::daemon {

namespace {

bool overlaps(const IdRange& a, const IdRange& b) {
  return a.first < b.first + b.count && b.first < a.first + a.count;
}

IdRange pool_range(const DaemonConfig& c) {
  return {c.userns_first, uint64_t{c.userns_size} * c.userns_count};
}

Result<void> check_subids(const IdRange& pool, const std::vector<IdRange>& ranges, std::string_view file) {
  for (const IdRange& r : ranges) {
    if (overlaps(pool, r)) {
      return make_error("[userns] the pool {}..{} overlaps the range {}..{} of {}", pool.first,
                        pool.first + pool.count - 1, r.first, r.first + r.count - 1, file);
    }
  }
  return ok();
}

// Every uid and gid of /etc/passwd and gid of /etc/group, read as files: enumerating through NSS (getpwent) would
// map libnss_systemd and its kin into sbxd for good, 3 MiB of RSS for a check made once.
std::vector<uint32_t> host_user_ids() {
  std::vector<uint32_t> ids;
  for (const char* path : {"/etc/passwd", "/etc/group"}) {
    auto text = read_file(path, 64 << 20);
    if (text.ok()) {
      std::vector<uint32_t> more = parse_account_ids(*text);
      ids.insert(ids.end(), more.begin(), more.end());
    }
  }
  return ids;
}

std::vector<IdRange> read_subids(const char* path) {
  auto text = read_file(path);
  return text.ok() ? parse_subid_ranges(*text) : std::vector<IdRange>();
}

// Calls `fn` with each line of `text`, without its newline.
template <typename Fn>
void for_each_line(std::string_view text, Fn fn) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    fn(text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    pos = end == std::string_view::npos ? text.size() : end + 1;
  }
}

// The first `max` ':'-separated fields of a line (the last holding the rest).
std::vector<std::string_view> split_fields(std::string_view line, size_t max) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (fields.size() + 1 < max) {
    size_t colon = line.find(':', pos);
    if (colon == std::string_view::npos) {
      break;
    }
    fields.push_back(line.substr(pos, colon - pos));
    pos = colon + 1;
  }
  fields.push_back(line.substr(pos));
  return fields;
}

}  // namespace

std::vector<uint32_t> parse_account_ids(std::string_view text) {
  std::vector<uint32_t> ids;
  for_each_line(text, [&ids](std::string_view line) {
    // name:password:id[:gid:...]: the third field, and for passwd the fourth.
    std::vector<std::string_view> fields = split_fields(line, 5);
    for (size_t i = 2; i < std::min<size_t>(fields.size(), 4); ++i) {
      auto id = parse_u64(fields[i]);
      if (id.ok() && *id <= UINT32_MAX) {
        ids.push_back(static_cast<uint32_t>(*id));
      }
    }
  });
  return ids;
}

std::vector<IdRange> parse_subid_ranges(std::string_view text) {
  std::vector<IdRange> ranges;
  for_each_line(text, [&ranges](std::string_view line) {
    std::vector<std::string_view> fields = split_fields(line, 3);
    if (fields.size() == 3) {
      auto first = parse_u64(fields[1]);
      auto count = parse_u64(trim(fields[2]));
      if (first.ok() && count.ok()) {
        ranges.push_back({*first, *count});
      }
    }
  });
  return ranges;
}

Result<void> check_userns_pool(const DaemonConfig& config, const std::vector<IdRange>& subuids,
                               const std::vector<IdRange>& subgids, const std::vector<uint32_t>& host_ids) {
  IdRange pool = pool_range(config);
  SBX_TRY(check_subids(pool, subuids, "/etc/subuid"));
  SBX_TRY(check_subids(pool, subgids, "/etc/subgid"));
  for (uint32_t id : host_ids) {
    if (id >= pool.first && id < pool.first + pool.count && id != 65534) {
      return make_error("[userns] the pool {}..{} holds id {} of a host user or group", pool.first,
                        pool.first + pool.count - 1, id);
    }
  }
  return ok();
}

Result<void> check_userns_pool_on_host(const DaemonConfig& config) {
  return check_userns_pool(config, read_subids("/etc/subuid"), read_subids("/etc/subgid"), host_user_ids());
}

bool spec_wants_userns(const nlohmann::json& spec) {
  auto it = spec.find("userns");
  return it != spec.end() && it->is_boolean() && it->get<bool>();
}

Result<void> UsernsPool::start(const std::vector<const SandboxRow*>& sandboxes) {
  std::map<std::string, const SandboxRow*> wanting;
  for (const SandboxRow* row : sandboxes) {
    if (spec_wants_userns(row->spec)) {
      wanting[row->id] = row;
    }
  }
  SBX_ASSIGN_CTX(auto rows, store_.userns_slots(), "read the user-namespace slots");
  slots_.clear();
  for (const UsernsSlotRow& r : rows) {
    if (!wanting.count(r.sandbox_id) || r.slot >= config_.userns_count) {
      // Gone, or the pool shrank under it: a sandbox that still wants one gets a new slot below.
      (void)store_.delete_userns_slot(r.sandbox_id);
      continue;
    }
    slots_[r.sandbox_id] = r.slot;
  }
  for (const auto& [id, row] : wanting) {
    if (!slots_.count(id)) {
      SBX_TRY(attach(*row));
    }
  }
  return ok();
}

Result<void> UsernsPool::attach(const SandboxRow& row) {
  if (!spec_wants_userns(row.spec) || slots_.count(row.id)) {
    return ok();
  }
  std::vector<uint32_t> taken;
  for (const auto& [id, slot] : slots_) {
    taken.push_back(slot);
  }
  std::sort(taken.begin(), taken.end());
  uint32_t slot = 0;
  for (uint32_t t : taken) {
    if (t != slot) {
      break;
    }
    ++slot;
  }
  if (slot >= config_.userns_count) {
    return api::api_error(api::kLimitExceeded,
                          "no user-namespace range is free: all {} of the [userns] pool are held by sandboxes "
                          "(remove some, or raise [userns] count in sbxd.toml)", config_.userns_count);
  }
  SBX_TRY_CTX(store_.add_userns_slot({slot, row.id, api::now_ms()}), "record the user namespace of sandbox '{}'",
              row.id);
  slots_[row.id] = slot;
  return ok();
}

Result<void> UsernsPool::detach(const SandboxRow& row) {
  auto it = slots_.find(row.id);
  if (it == slots_.end()) {
    return ok();
  }
  SBX_TRY_CTX(store_.delete_userns_slot(row.id), "free the user namespace of sandbox '{}'", row.id);
  slots_.erase(it);
  return ok();
}

Result<std::optional<rt::UserNamespacePlan>> UsernsPool::plan(const SandboxRow& row) const {
  if (!spec_wants_userns(row.spec)) {
    return std::optional<rt::UserNamespacePlan>();
  }
  auto it = slots_.find(row.id);
  if (it == slots_.end()) {
    return make_error("sandbox '{}' has no user-namespace range", row.id);
  }
  return std::optional<rt::UserNamespacePlan>(rt::contiguous_userns(host_first(it->second), config_.userns_size));
}

nlohmann::json UsernsPool::describe(const SandboxRow& row) const {
  auto it = slots_.find(row.id);
  if (it == slots_.end()) {
    return nullptr;
  }
  uint32_t first = host_first(it->second);
  return {{"uid", first}, {"gid", first}, {"size", config_.userns_size}};
}

}  // namespace sbx::daemon
