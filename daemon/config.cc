#include "daemon/config.h"

// Debian's libtomlplusplus is built with exceptions; sbx builds without them, so the parser is compiled here from
// the header (header-only mode) in its no-exceptions form.
#undef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 1
#undef TOML_SHARED_LIB
#define TOML_SHARED_LIB 0
#include <toml++/toml.h>

#include <cerrno>
#include <map>
#include <set>

#include "api/protocol.h"
#include "base/file.h"
#include "base/ipv4.h"

namespace sbx::daemon {

namespace {

// Reads the keys of one table into the config; each reader consumes its key.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string section) : table_(table), section_(std::move(section)) {}

  Result<void> string(const char* key, std::string* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      if (auto v = n.value<std::string>()) {
        *out = *v;
        return ok();
      }
      return type_error(key, "a string");
    });
  }
  Result<void> strings(const char* key, std::vector<std::string>* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      const toml::array* a = n.as_array();
      if (a == nullptr) {
        return type_error(key, "an array of strings");
      }
      out->clear();
      for (const auto& e : *a) {
        auto v = e.value<std::string>();
        if (!v) {
          return type_error(key, "an array of strings");
        }
        out->push_back(*v);
      }
      return ok();
    });
  }
  Result<void> uids(const char* key, std::vector<uint32_t>* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      const toml::array* a = n.as_array();
      if (a == nullptr) {
        return type_error(key, "an array of uids");
      }
      out->clear();
      for (const auto& e : *a) {
        auto v = e.value<int64_t>();
        if (!v || *v < 0 || *v > 0xfffffffeLL) {
          return type_error(key, "an array of uids");
        }
        out->push_back(static_cast<uint32_t>(*v));
      }
      return ok();
    });
  }
  Result<void> boolean(const char* key, bool* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      if (const auto* v = n.as_boolean()) {  // value<bool>() would also take an integer
        *out = v->get();
        return ok();
      }
      return type_error(key, "true or false");
    });
  }
  Result<void> integer(const char* key, int64_t* out, int64_t min) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      auto v = n.value<int64_t>();
      if (!v || *v < min) {
        return type_error(key, fmt::format("an integer >= {}", min));
      }
      *out = *v;
      return ok();
    });
  }
  // A byte size: an integer or a string such as "512M".
  Result<void> size(const char* key, uint64_t* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      if (auto v = n.value<int64_t>(); v && *v >= 0) {
        *out = static_cast<uint64_t>(*v);
        return ok();
      }
      if (auto s = n.value<std::string>()) {
        auto r = api::parse_size(*s);
        if (r.ok()) {
          *out = *r;
          return ok();
        }
      }
      return type_error(key, "a size (bytes, or a string such as \"512M\")");
    });
  }
  // As size(), where 0 or "none" means no limit.
  Result<void> optional_size(const char* key, std::optional<uint64_t>* out) {
    if (auto s = table_[key].value<std::string>(); s && *s == "none") {
      seen_.insert(key);
      out->reset();
      return ok();
    }
    uint64_t v = out->value_or(0);
    SBX_TRY(size(key, &v));
    *out = v == 0 ? std::nullopt : std::optional<uint64_t>(v);
    return ok();
  }
  Result<void> optional_number(const char* key, std::optional<double>* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      auto v = n.value<double>();
      if (!v || *v < 0) {
        return type_error(key, "a number >= 0");
      }
      *out = *v == 0 ? std::nullopt : std::optional<double>(*v);
      return ok();
    });
  }
  // Every key of the table must have been read.
  Result<void> no_unknown_keys() const {
    for (const auto& [key, node] : table_) {
      if (!seen_.count(std::string(key.str()))) {
        return make_error("[{}] {}: unknown key", section_, key.str());
      }
    }
    return ok();
  }

 private:
  template <typename F>
  Result<void> with(const char* key, F&& f) {
    const toml::node* n = table_.get(key);
    seen_.insert(key);
    if (n == nullptr) {
      return ok();
    }
    return f(*n);
  }
  Error type_error(const char* key, std::string_view what) const {
    return make_error("[{}] {}: must be {}", section_, key, what);
  }

  const toml::table& table_;
  std::string section_;
  std::set<std::string> seen_;
};

Result<void> read_daemon(TableReader& t, DaemonConfig* c) {
  SBX_TRY(t.string("socket", &c->socket));
  SBX_TRY(t.string("socket_group", &c->socket_group));
  std::string mode;
  SBX_TRY(t.string("socket_mode", &mode));
  if (!mode.empty()) {
    char* end = nullptr;
    unsigned long m = std::strtoul(mode.c_str(), &end, 8);
    if (*end != '\0' || m > 0777) {
      return make_error("[daemon] socket_mode: must be an octal mode such as \"0660\"");
    }
    c->socket_mode = static_cast<uint32_t>(m);
  }
  SBX_TRY(t.string("state_dir", &c->state_dir));
  SBX_TRY(t.string("run_dir", &c->run_dir));
  SBX_TRY(t.string("monitor", &c->monitor));
  SBX_TRY(t.boolean("spare_monitor", &c->spare_monitor));
  SBX_TRY(t.string("image_tool", &c->image_tool));
  SBX_TRY(t.string("seccomp_dir", &c->seccomp_dir));
  SBX_TRY(t.uids("trusted_uids", &c->trusted_uids));
  SBX_TRY(t.strings("rootfs_dirs", &c->rootfs_dirs));
  SBX_TRY(t.string("log_level", &c->log_level));
  SBX_TRY(t.strings("cdi_spec_dirs", &c->cdi_spec_dirs));
  return t.no_unknown_keys();
}

Result<void> read_cgroup(TableReader& t, DaemonConfig* c) {
  SBX_TRY(t.string("mode", &c->cgroup_mode));
  SBX_TRY(t.string("root", &c->cgroup_root));
  SBX_TRY(t.string("parent", &c->cgroup_parent));
  SBX_TRY(t.string("parent_name", &c->cgroup_parent_name));
  return t.no_unknown_keys();
}

Result<void> read_defaults(TableReader& t, DaemonConfig* c) {
  SBX_TRY(t.optional_size("memory", &c->memory));
  std::optional<uint64_t> pids = c->pids;
  int64_t p = pids.value_or(0);
  SBX_TRY(t.integer("pids", &p, 0));
  c->pids = p == 0 ? std::nullopt : std::optional<uint64_t>(p);
  SBX_TRY(t.optional_number("vcpus", &c->vcpus));
  SBX_TRY(t.optional_size("disk", &c->disk));
  SBX_TRY(t.integer("ttl", &c->ttl, 0));
  SBX_TRY(t.string("seccomp", &c->seccomp));
  SBX_TRY(t.strings("capabilities", &c->capabilities));
  return t.no_unknown_keys();
}

Result<void> read_limits(TableReader& t, DaemonConfig* c) {
  SBX_TRY(t.size("max_request_bytes", &c->max_request_bytes));
  SBX_TRY(t.size("max_file_bytes", &c->max_file_bytes));
  SBX_TRY(t.size("exec_output_limit", &c->exec_output_limit));
  SBX_TRY(t.size("max_exec_output_limit", &c->max_exec_output_limit));
  SBX_TRY(t.size("log_max_bytes", &c->log_max_bytes));
  SBX_TRY(t.integer("max_sandboxes", &c->max_sandboxes, 0));
  SBX_TRY(t.integer("max_sandboxes_per_owner", &c->max_sandboxes_per_owner, 0));
  SBX_TRY(t.integer("max_concurrent_execs", &c->max_concurrent_execs, 1));
  SBX_TRY(t.integer("history_days", &c->history_days, 0));
  return t.no_unknown_keys();
}

Result<void> read_images(TableReader& t, DaemonConfig* c) {
  SBX_TRY(t.integer("max_entries", &c->image_max_entries, 1));
  SBX_TRY(t.size("max_bytes", &c->image_max_bytes));
  SBX_TRY(t.size("max_archive_bytes", &c->image_max_archive_bytes));
  SBX_TRY(t.integer("max_concurrent_imports", &c->max_concurrent_imports, 1));
  return t.no_unknown_keys();
}

Result<void> read_network(TableReader& t, DaemonConfig* c) {
  SBX_TRY(t.string("default", &c->network_default));
  SBX_TRY(t.string("bridge", &c->bridge));
  SBX_TRY(t.string("subnet", &c->subnet));
  int64_t mtu = c->mtu;
  SBX_TRY(t.integer("mtu", &mtu, 576));
  if (mtu > 65535) {
    return make_error("[network] mtu: must be at most 65535");
  }
  c->mtu = static_cast<uint32_t>(mtu);
  SBX_TRY(t.strings("dns_servers", &c->dns_servers));
  SBX_TRY(t.string("nft_table", &c->nft_table));
  SBX_TRY(t.boolean("enable_ip_forward", &c->enable_ip_forward));
  return t.no_unknown_keys();
}

// A [userns] id or count as read (1 and up), narrowed to 32 bits.
Result<uint32_t> userns_number(const char* key, int64_t v) {
  if (v > UINT32_MAX) {
    return make_error("[userns] {}: must be at most {}", key, UINT32_MAX);
  }
  return static_cast<uint32_t>(v);
}

Result<void> read_userns(TableReader& t, DaemonConfig* c) {
  SBX_TRY(t.boolean("enabled", &c->userns));
  int64_t first = c->userns_first, size = c->userns_size, count = c->userns_count;
  SBX_TRY(t.integer("first", &first, 1));
  SBX_TRY(t.integer("size", &size, 1));
  SBX_TRY(t.integer("count", &count, 1));
  SBX_ASSIGN(c->userns_first, userns_number("first", first));
  SBX_ASSIGN(c->userns_size, userns_number("size", size));
  SBX_ASSIGN(c->userns_count, userns_number("count", count));
  return t.no_unknown_keys();
}

// The pool's own shape; whether it collides with the host's users is checked at start-up (userns_pool.cc).
Result<void> check_userns(const DaemonConfig& c) {
  uint64_t end = uint64_t{c.userns_first} + uint64_t{c.userns_size} * c.userns_count;
  if (end > UINT32_MAX) {
    return make_error("[userns] first + size * count = {} runs past 4294967295", end);
  }
  if (c.userns_size < 65536) {
    // Images' files are owned by ids up to 65534 (nobody): a smaller namespace shows them as unmapped.
    return make_error("[userns] size: {} is below 65536, the ids an image's files may use", c.userns_size);
  }
  return ok();
}

Result<void> check_network(const DaemonConfig& c) {
  if (c.network_default != "none" && c.network_default != "bridge") {
    return make_error("[network] default: must be none or bridge");
  }
  if (c.bridge.empty() || c.bridge.size() > 15 || c.bridge.find_first_of("/: \t") != std::string::npos) {
    return make_error("[network] bridge: '{}' is not an interface name (1 to 15 bytes)", c.bridge);
  }
  SBX_ASSIGN_CTX(Ipv4Net subnet, parse_ipv4_net(c.subnet), "[network] subnet");
  if (subnet.prefix < 8 || subnet.prefix > 28) {
    return make_error("[network] subnet: {} must be a /8 to /28 network", c.subnet);
  }
  for (const std::string& server : c.dns_servers) {
    SBX_TRY_CTX(parse_ipv4(server), "[network] dns_servers");
  }
  if (c.nft_table.empty() || c.nft_table.size() > 64 ||
      c.nft_table.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) {
    return make_error("[network] nft_table: '{}' must be 1 to 64 of a-z, 0-9, '_' and '-'", c.nft_table);
  }
  return ok();
}

Result<void> check_config(const DaemonConfig& c) {
  for (const auto* path : {&c.socket, &c.state_dir, &c.run_dir}) {
    if (path->empty() || (*path)[0] != '/') {
      return make_error("paths must be absolute: '{}'", *path);
    }
  }
  if (c.log_level != "error" && c.log_level != "warn" && c.log_level != "info" && c.log_level != "debug") {
    return make_error("[daemon] log_level: must be error, warn, info or debug");
  }
  if (c.cgroup_mode != "auto" && c.cgroup_mode != "v1" && c.cgroup_mode != "v2") {
    return make_error("[cgroup] mode: must be auto, v1 or v2");
  }
  if (c.max_request_bytes < 4096) {
    return make_error("[limits] max_request_bytes: must be at least 4096");
  }
  if (c.log_max_bytes < 4096) {
    return make_error("[limits] log_max_bytes: must be at least 4096");
  }
  SBX_TRY(check_userns(c));
  return check_network(c);
}

}  // namespace

Result<DaemonConfig> parse_config(std::string_view text, std::string_view source) {
  toml::parse_result parsed = toml::parse(text, source);
  if (!parsed) {
    const auto& err = parsed.error();
    return make_error("{}:{}:{}: {}", source, err.source().begin.line, err.source().begin.column,
                      err.description());
  }
  DaemonConfig c;
  const toml::table& root = parsed.table();
  using Reader = Result<void> (*)(TableReader&, DaemonConfig*);
  const std::map<std::string, Reader> sections = {
      {"daemon", read_daemon},     {"cgroup", read_cgroup}, {"defaults", read_defaults},
      {"limits", read_limits},     {"images", read_images}, {"network", read_network},
      {"userns", read_userns}};
  for (const auto& [key, node] : root) {
    auto it = sections.find(std::string(key.str()));
    if (it == sections.end() || !node.is_table()) {
      return make_error("{}: unknown section or key '{}' (sections: daemon, cgroup, defaults, limits, images, network, userns)", source,
                        key.str());
    }
    TableReader reader(*node.as_table(), it->first);
    SBX_TRY_CTX(it->second(reader, &c), "{}", source);
  }
  SBX_TRY_CTX(check_config(c), "{}", source);
  return c;
}

Result<DaemonConfig> load_config(const std::string& path, bool required) {
  auto text = read_file(path, 1 << 20);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT && !required) {
      return DaemonConfig{};
    }
    return std::move(text).error().context("read config");
  }
  return parse_config(*text, path);
}

std::string default_monitor_path() { return SBX_LIBEXECDIR "/sbx-monitor"; }
std::string default_seccomp_dir() { return SBX_SECCOMP_DIR; }
std::string default_image_tool_path() { return SBX_LIBEXECDIR "/sbx-image"; }

}  // namespace sbx::daemon
