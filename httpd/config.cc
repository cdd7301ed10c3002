#include "httpd/config.h"

// As in daemon/config.cc: Debian's libtomlplusplus is built with exceptions, sbx without, so the parser is compiled
// here from the header in its no-exceptions form.
#undef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 1
#undef TOML_SHARED_LIB
#define TOML_SHARED_LIB 0
#include <toml++/toml.h>

#include <charconv>
#include <set>

#include "api/protocol.h"
#include "base/file.h"

namespace sbx::httpd {

namespace {

class Reader {
 public:
  explicit Reader(const toml::table& table) : table_(table) {}

  Result<void> string(const char* key, std::string* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      if (auto v = n.value<std::string>()) {
        *out = *v;
        return ok();
      }
      return type_error(key, "a string");
    });
  }
  Result<void> integer(const char* key, int64_t* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      if (n.is_integer()) {
        *out = *n.value<int64_t>();
        return ok();
      }
      return type_error(key, "an integer");
    });
  }
  Result<void> number(const char* key, double* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      if (n.is_integer() || n.is_floating_point()) {
        *out = *n.value<double>();
        return ok();
      }
      return type_error(key, "a number");
    });
  }
  Result<void> size(const char* key, uint64_t* out) {
    return with(key, [&](const toml::node& n) -> Result<void> {
      if (auto v = n.value<int64_t>(); v && n.is_integer() && *v >= 0) {
        *out = static_cast<uint64_t>(*v);
        return ok();
      }
      if (auto s = n.value<std::string>()) {
        if (auto r = api::parse_size(*s); r.ok()) {
          *out = *r;
          return ok();
        }
      }
      return type_error(key, "a size (bytes, or a string such as \"64M\")");
    });
  }
  Result<void> no_unknown_keys() const {
    for (const auto& [key, node] : table_) {
      if (!seen_.count(std::string(key.str()))) {
        return make_error("{}: unknown key", key.str());
      }
    }
    return ok();
  }

 private:
  template <typename F>
  Result<void> with(const char* key, F&& f) {
    seen_.insert(key);
    const toml::node* n = table_.get(key);
    return n == nullptr ? ok() : f(*n);
  }
  static Error type_error(const char* key, std::string_view what) { return make_error("{}: must be {}", key, what); }

  const toml::table& table_;
  std::set<std::string> seen_;
};

}  // namespace

Result<HttpdConfig> parse_config(std::string_view toml_text, std::string_view source) {
  toml::parse_result parsed = toml::parse(toml_text, source);
  if (!parsed) {
    const auto& e = parsed.error();
    return make_error("{}:{}:{}: {}", source, e.source().begin.line, e.source().begin.column, e.description());
  }
  HttpdConfig c;
  Reader r(parsed.table());
  auto read = [&]() -> Result<void> {
    SBX_TRY(r.string("listen", &c.listen));
    SBX_TRY(r.string("socket", &c.socket));
    SBX_TRY(r.integer("threads", &c.threads));
    SBX_TRY(r.number("rate", &c.rate));
    SBX_TRY(r.number("burst", &c.burst));
    SBX_TRY(r.integer("auth_failures", &c.auth_failures));
    SBX_TRY(r.number("auth_failure_window", &c.auth_failure_window));
    SBX_TRY(r.size("max_body", &c.max_body));
    SBX_TRY(r.number("heartbeat", &c.heartbeat));
    return r.no_unknown_keys();
  };
  if (auto res = read(); !res.ok()) {
    return std::move(res).error().context(source);
  }
  SBX_TRY_CTX(validate(c), "{}", source);
  return c;
}

Result<HttpdConfig> load_config(const std::string& path) {
  SBX_ASSIGN_CTX(std::string text, read_file(path), "read config");
  return parse_config(text, path);
}

Result<ListenAddress> parse_listen(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return make_error("listen address '{}': expected HOST:PORT", text);
  }
  ListenAddress out;
  out.host = std::string(text.substr(0, colon));
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  std::string_view port = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (ec != std::errc() || end != port.data() + port.size() || out.port < 1 || out.port > 65535) {
    return make_error("listen address '{}': port must be 1 to 65535", text);
  }
  return out;
}

Result<void> validate(const HttpdConfig& c) {
  SBX_TRY(parse_listen(c.listen));
  if (c.threads < 1 || c.threads > 4096) {
    return make_error("threads: must be 1 to 4096");
  }
  if (!(c.rate > 0)) {
    return make_error("rate: must be > 0");
  }
  if (!(c.burst >= 1)) {
    return make_error("burst: must be >= 1");
  }
  if (c.auth_failures < 1) {
    return make_error("auth_failures: must be >= 1");
  }
  if (!(c.auth_failure_window > 0)) {
    return make_error("auth_failure_window: must be > 0");
  }
  if (c.max_body < 1024) {
    return make_error("max_body: must be at least 1K");
  }
  if (!(c.heartbeat > 0)) {
    return make_error("heartbeat: must be > 0");
  }
  return ok();
}

}  // namespace sbx::httpd
