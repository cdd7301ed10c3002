#include "runtime/seccomp.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "runtime/json_describe.h"
#include "runtime/seccomp_internal.h"

#include <seccomp.h>

namespace sbx::rt {

namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxErrno = 4095;  // MAX_ERRNO: larger values are not errnos
constexpr unsigned kMaxArgIndex = 5;

// ---------------------------------------------------------------------------------------------------------------
// Names: actions, operators, architectures.

struct ActionName {
  std::string_view name;
  SeccompAction action;
};

constexpr ActionName kActionNames[] = {
    {"SCMP_ACT_ALLOW", SeccompAction::kAllow},
    {"SCMP_ACT_ERRNO", SeccompAction::kErrno},
    {"SCMP_ACT_KILL", SeccompAction::kKill},
    {"SCMP_ACT_KILL_THREAD", SeccompAction::kKill},
    {"SCMP_ACT_KILL_PROCESS", SeccompAction::kKillProcess},
    {"SCMP_ACT_TRAP", SeccompAction::kTrap},
    {"SCMP_ACT_LOG", SeccompAction::kLog},
    {"SCMP_ACT_TRACE", SeccompAction::kTrace},
};

struct OpName {
  std::string_view name;
  SeccompOp op;
  scmp_compare scmp;
};

constexpr OpName kOpNames[] = {
    {"SCMP_CMP_NE", SeccompOp::kNotEqual, SCMP_CMP_NE},
    {"SCMP_CMP_LT", SeccompOp::kLessThan, SCMP_CMP_LT},
    {"SCMP_CMP_LE", SeccompOp::kLessEqual, SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SeccompOp::kEqual, SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SeccompOp::kGreaterEqual, SCMP_CMP_GE},
    {"SCMP_CMP_GT", SeccompOp::kGreaterThan, SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SeccompOp::kMaskedEqual, SCMP_CMP_MASKED_EQ},
};

// libseccomp's architecture names, and the Go names (Docker's "includes.arches") of those that differ.
constexpr const char* kArchNames[] = {"x86",    "x86_64",   "x32",       "arm",         "aarch64", "mips",  "mipsel",
                                      "mips64", "mipsel64", "mips64n32", "mipsel64n32", "ppc",     "ppc64", "ppc64le",
                                      "s390",   "s390x",    "parisc",    "parisc64",    "riscv64"};

struct GoArchName {
  std::string_view scmp, go;
};
constexpr GoArchName kGoArchNames[] = {
    {"x86", "386"}, {"x86_64", "amd64"}, {"aarch64", "arm64"}, {"mipsel", "mipsle"}, {"mipsel64", "mips64le"}};

constexpr std::string_view kArchPrefix = "SCMP_ARCH_";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
  return out;
}

// "SCMP_ARCH_X86_64" -> libseccomp's token, or 0 when the name is not one libseccomp knows.
uint32_t arch_token(std::string_view name) {
  if (name.substr(0, kArchPrefix.size()) != kArchPrefix) {
    return 0;
  }
  return seccomp_arch_resolve_name(lower(name.substr(kArchPrefix.size())).c_str());
}

// Every spelling of the native architecture a profile may use in includes/excludes: "amd64", "x86_64",
// "SCMP_ARCH_X86_64".
std::vector<std::string> native_arch_names() {
  uint32_t native = seccomp_arch_native();
  for (const char* arch : kArchNames) {
    std::string_view name = arch;
    if (seccomp_arch_resolve_name(arch) == native) {
      std::vector<std::string> names{std::string(name), std::string(kArchPrefix) + upper(name)};
      for (const auto& g : kGoArchNames) {
        if (g.scmp == name) {
          names.emplace_back(g.go);
        }
      }
      return names;
    }
  }
  return {};
}

bool syscall_known(const std::string& name) {
  if (seccomp_syscall_resolve_name(name.c_str()) != __NR_SCMP_ERROR) {
    return true;
  }
  for (const char* arch : kArchNames) {
    uint32_t token = seccomp_arch_resolve_name(arch);
    if (token != 0 && seccomp_syscall_resolve_name_arch(token, name.c_str()) != __NR_SCMP_ERROR) {
      return true;
    }
  }
  return false;
}

std::string action_name(SeccompAction action, unsigned err) {
  for (const auto& a : kActionNames) {
    if (a.action == action) {
      if (action == SeccompAction::kErrno || action == SeccompAction::kTrace) {
        return fmt::format("{}({})", a.name, err);
      }
      return std::string(a.name);
    }
  }
  return "?";
}

std::string normalize_cap(std::string_view cap) {
  std::string c = upper(cap);
  return c.rfind("CAP_", 0) == 0 ? c : "CAP_" + c;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON access without exceptions: every value's type is checked before it is read.

// A member of `obj`; null counts as absent (Go encoders write nil slices as null).
const Json* find_field(const Json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

Result<void> check_fields(const Json& obj, std::string_view where, std::initializer_list<std::string_view> known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return make_error("{}unknown field '{}'", where.empty() ? "" : fmt::format("{}: ", where), it.key());
    }
  }
  return ok();
}

Result<void> expect_object(const Json& j, const std::string& field) {
  if (!j.is_object()) {
    return make_error("{}: expected an object, got {}", field, describe_json(j));
  }
  return ok();
}

Result<uint64_t> get_u64(const Json& j, const std::string& field) {
  if (!j.is_number_unsigned()) {
    return make_error("{}: expected a non-negative integer, got {}", field, describe_json(j));
  }
  return j.get<uint64_t>();
}

Result<std::string> get_string(const Json& j, const std::string& field) {
  if (!j.is_string()) {
    return make_error("{}: expected a string, got {}", field, describe_json(j));
  }
  return j.get<std::string>();
}

Result<std::vector<std::string>> get_strings(const Json& j, const std::string& field) {
  if (!j.is_array()) {
    return make_error("{}: expected an array of strings, got {}", field, describe_json(j));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    SBX_ASSIGN(auto s, get_string(j[i], fmt::format("{}[{}]", field, i)));
    out.push_back(std::move(s));
  }
  return out;
}

// Records where and why a document failed to parse (nlohmann's DOM parser without exceptions reports neither).
class ParseErrorSax : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    position_ = position;
    std::string_view what = ex.what();
    auto tag_end = what.find("] ");  // drops nlohmann's "[json.exception.parse_error.101] " tag
    message_ = std::string(tag_end == std::string_view::npos ? what : what.substr(tag_end + 2));
    return false;
  }

  size_t position_ = 0;
  std::string message_ = "parse error";
};

Result<Json> parse_json(std::string_view text) {
  Json root = Json::parse(text, nullptr, false);
  if (!root.is_discarded()) {
    return root;
  }
  ParseErrorSax sax;
  (void)Json::sax_parse(text, &sax);
  // nlohmann counts the offending byte as read: report its 0-based offset.
  return make_error("malformed JSON at byte {}: {}", sax.position_ > 0 ? sax.position_ - 1 : 0, sax.message_);
}

// ---------------------------------------------------------------------------------------------------------------
// Profile parsing.

Result<SeccompAction> parse_action(const Json& j, const std::string& field) {
  SBX_ASSIGN(std::string name, get_string(j, field));
  for (const auto& a : kActionNames) {
    if (a.name == name) {
      return a.action;
    }
  }
  if (name == "SCMP_ACT_NOTIFY") {
    return make_error("{}: action 'SCMP_ACT_NOTIFY' is not supported (sbx runs no seccomp listener)", field);
  }
  return make_error("{}: unknown action '{}'", field, name);
}

Result<unsigned> parse_errno(const Json& j, const std::string& field) {
  SBX_ASSIGN(uint64_t err, get_u64(j, field));
  if (err > kMaxErrno) {
    return make_error("{}: {} is out of range 0..{}", field, err, kMaxErrno);
  }
  return static_cast<unsigned>(err);
}

Result<SeccompArg> parse_arg(const Json& j, const std::string& field) {
  SBX_TRY(expect_object(j, field));
  SBX_TRY(check_fields(j, field, {"index", "value", "valueTwo", "op"}));
  SeccompArg arg;
  for (const char* required : {"index", "value", "op"}) {
    if (find_field(j, required) == nullptr) {
      return make_error("{}.{}: required field is missing", field, required);
    }
  }
  SBX_ASSIGN(uint64_t index, get_u64(*find_field(j, "index"), field + ".index"));
  if (index > kMaxArgIndex) {
    return make_error("{}.index: {} is out of range 0..{}", field, index, kMaxArgIndex);
  }
  arg.index = static_cast<unsigned>(index);
  SBX_ASSIGN(arg.value, get_u64(*find_field(j, "value"), field + ".value"));
  if (const Json* two = find_field(j, "valueTwo")) {
    SBX_ASSIGN(arg.value_two, get_u64(*two, field + ".valueTwo"));
  }
  SBX_ASSIGN(std::string op, get_string(*find_field(j, "op"), field + ".op"));
  auto it = std::find_if(std::begin(kOpNames), std::end(kOpNames), [&](const OpName& o) { return o.name == op; });
  if (it == std::end(kOpNames)) {
    return make_error("{}.op: unknown operator '{}'", field, op);
  }
  arg.op = it->op;
  return arg;
}

Result<std::vector<SeccompArg>> parse_args(const Json& j, const std::string& field) {
  if (!j.is_array()) {
    return make_error("{}: expected an array, got {}", field, describe_json(j));
  }
  std::vector<SeccompArg> args;
  for (size_t i = 0; i < j.size(); ++i) {
    SBX_ASSIGN(SeccompArg arg, parse_arg(j[i], fmt::format("{}[{}]", field, i)));
    for (const auto& earlier : args) {
      if (earlier.index == arg.index) {
        // libseccomp cannot AND two comparisons of one argument in a rule (EINVAL); runc silently ORs them instead.
        return make_error(
            "{}[{}].index: argument {} is already compared in this rule; write a separate rule per "
            "comparison",
            field, i, arg.index);
      }
    }
    args.push_back(arg);
  }
  return args;
}

// "includes"/"excludes": {caps, arches, minKernel}. minKernel is accepted and ignored.
Result<void> parse_condition(const Json& j, const std::string& field, std::vector<std::string>& caps,
                             std::vector<std::string>& arches) {
  SBX_TRY(expect_object(j, field));
  SBX_TRY(check_fields(j, field, {"caps", "arches", "minKernel"}));
  if (const Json* c = find_field(j, "caps")) {
    SBX_ASSIGN(caps, get_strings(*c, field + ".caps"));
  }
  if (const Json* a = find_field(j, "arches")) {
    SBX_ASSIGN(arches, get_strings(*a, field + ".arches"));
  }
  if (const Json* k = find_field(j, "minKernel")) {
    SBX_TRY(get_string(*k, field + ".minKernel"));
  }
  return ok();
}

Result<std::vector<std::string>> parse_names(const Json& j, const std::string& field) {
  const Json* names = find_field(j, "names");
  const Json* name = find_field(j, "name");
  if (names != nullptr && name != nullptr) {
    return make_error("{}: give 'names' or 'name', not both", field);
  }
  std::vector<std::string> out;
  std::string where = field + (names != nullptr ? ".names" : ".name");
  if (names != nullptr) {
    SBX_ASSIGN(out, get_strings(*names, where));
  } else if (name != nullptr) {
    SBX_ASSIGN(std::string one, get_string(*name, where));
    out.push_back(std::move(one));
  }
  if (out.empty()) {
    return make_error("{}: no syscall names ('names' is missing or empty)", field);
  }
  for (size_t i = 0; i < out.size(); ++i) {
    std::string at = names != nullptr ? fmt::format("{}[{}]", where, i) : where;
    if (!syscall_known(out[i])) {
      return make_error("{}: unknown syscall '{}'", at, out[i]);
    }
  }
  return out;
}

Result<SeccompRule> parse_rule(const Json& j, const std::string& field) {
  SBX_TRY(expect_object(j, field));
  SBX_TRY(check_fields(j, field, {"names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes"}));
  SeccompRule rule;
  SBX_ASSIGN(rule.names, parse_names(j, field));
  const Json* action = find_field(j, "action");
  if (action == nullptr) {
    return make_error("{}.action: required field is missing", field);
  }
  SBX_ASSIGN(rule.action, parse_action(*action, field + ".action"));
  if (const Json* err = find_field(j, "errnoRet")) {
    if (rule.action != SeccompAction::kErrno && rule.action != SeccompAction::kTrace) {
      return make_error("{}.errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE", field);
    }
    SBX_ASSIGN(rule.errno_ret, parse_errno(*err, field + ".errnoRet"));
  }
  if (const Json* args = find_field(j, "args")) {
    SBX_ASSIGN(rule.args, parse_args(*args, field + ".args"));
  }
  if (const Json* inc = find_field(j, "includes")) {
    SBX_TRY(parse_condition(*inc, field + ".includes", rule.includes_caps, rule.includes_arches));
  }
  if (const Json* exc = find_field(j, "excludes")) {
    SBX_TRY(parse_condition(*exc, field + ".excludes", rule.excludes_caps, rule.excludes_arches));
  }
  return rule;
}

Result<std::vector<std::string>> parse_arch_list(const Json& j, const std::string& field) {
  SBX_ASSIGN(auto arches, get_strings(j, field));
  for (size_t i = 0; i < arches.size(); ++i) {
    if (arch_token(arches[i]) == 0) {
      return make_error("{}[{}]: unknown architecture '{}'", field, i, arches[i]);
    }
  }
  return arches;
}

// Docker's archMap: [{architecture, subArchitectures}]; the entry of the native architecture gives the list.
Result<std::vector<std::string>> parse_arch_map(const Json& j) {
  if (!j.is_array()) {
    return make_error("archMap: expected an array, got {}", describe_json(j));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    std::string field = fmt::format("archMap[{}]", i);
    SBX_TRY(expect_object(j[i], field));
    SBX_TRY(check_fields(j[i], field, {"architecture", "subArchitectures"}));
    const Json* arch = find_field(j[i], "architecture");
    if (arch == nullptr) {
      return make_error("{}.architecture: required field is missing", field);
    }
    SBX_ASSIGN(std::string name, get_string(*arch, field + ".architecture"));
    std::vector<std::string> subs;
    if (const Json* s = find_field(j[i], "subArchitectures")) {
      SBX_ASSIGN(subs, get_strings(*s, field + ".subArchitectures"));
    }
    if (arch_token(name) != seccomp_arch_native() || !out.empty()) {
      continue;  // another machine's entry: its names need not be known to this libseccomp
    }
    for (size_t k = 0; k < subs.size(); ++k) {
      if (arch_token(subs[k]) == 0) {
        return make_error("{}.subArchitectures[{}]: unknown architecture '{}'", field, k, subs[k]);
      }
    }
    out.push_back(std::move(name));
    out.insert(out.end(), subs.begin(), subs.end());
  }
  return out;
}

Result<std::vector<std::string>> parse_architectures(const Json& root) {
  const Json* arches = find_field(root, "architectures");
  const Json* map = find_field(root, "archMap");
  if (arches != nullptr && map != nullptr && !arches->empty() && !map->empty()) {
    return make_error("architectures: give 'architectures' or 'archMap', not both");
  }
  if (map != nullptr && (arches == nullptr || arches->empty())) {
    return parse_arch_map(*map);
  }
  if (arches != nullptr) {
    return parse_arch_list(*arches, "architectures");
  }
  return std::vector<std::string>{};
}

Result<void> check_unsupported(const Json& root) {
  if (const Json* flags = find_field(root, "flags")) {
    SBX_ASSIGN(auto list, get_strings(*flags, "flags"));
    if (!list.empty()) {
      return make_error("flags: seccomp filter flags are not supported (got '{}')", list[0]);
    }
  }
  if (const Json* listener = find_field(root, "listenerPath")) {
    SBX_ASSIGN(std::string path, get_string(*listener, "listenerPath"));
    if (!path.empty()) {
      return make_error("listenerPath: seccomp notify listeners are not supported");
    }
  }
  return ok();
}

Result<SeccompProfile> parse_profile(const Json& root) {
  if (!root.is_object()) {
    return make_error("expected a JSON object at the top level, got {}", describe_json(root));
  }
  SBX_TRY(check_fields(root, "",
                       {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
                        "listenerPath", "listenerMetadata", "comment"}));
  SBX_TRY(check_unsupported(root));
  SeccompProfile profile;
  const Json* action = find_field(root, "defaultAction");
  if (action == nullptr) {
    return make_error("defaultAction: required field is missing");
  }
  SBX_ASSIGN(profile.default_action, parse_action(*action, "defaultAction"));
  if (const Json* err = find_field(root, "defaultErrnoRet")) {
    SBX_ASSIGN(profile.default_errno, parse_errno(*err, "defaultErrnoRet"));
  }
  SBX_ASSIGN(profile.architectures, parse_architectures(root));
  if (const Json* syscalls = find_field(root, "syscalls")) {
    if (!syscalls->is_array()) {
      return make_error("syscalls: expected an array, got {}", describe_json(*syscalls));
    }
    for (size_t i = 0; i < syscalls->size(); ++i) {
      SBX_ASSIGN(SeccompRule rule, parse_rule((*syscalls)[i], fmt::format("syscalls[{}]", i)));
      profile.rules.push_back(std::move(rule));
    }
  }
  return profile;
}

// ---------------------------------------------------------------------------------------------------------------
// Compiling with libseccomp.

struct CtxRelease {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxRelease>;

uint32_t scmp_action(SeccompAction action, unsigned err) {
  switch (action) {
    case SeccompAction::kAllow:
      return SCMP_ACT_ALLOW;
    case SeccompAction::kErrno:
      return SCMP_ACT_ERRNO(err);
    case SeccompAction::kKill:
      return SCMP_ACT_KILL_THREAD;
    case SeccompAction::kKillProcess:
      return SCMP_ACT_KILL_PROCESS;
    case SeccompAction::kTrap:
      return SCMP_ACT_TRAP;
    case SeccompAction::kLog:
      return SCMP_ACT_LOG;
    case SeccompAction::kTrace:
      return SCMP_ACT_TRACE(err);
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_compare scmp_op(SeccompOp op) {
  for (const auto& o : kOpNames) {
    if (o.op == op) {
      return o.scmp;
    }
  }
  return _SCMP_CMP_MIN;
}

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

bool any_arch_matches(const std::vector<std::string>& arches, const std::vector<std::string>& native) {
  return std::any_of(arches.begin(), arches.end(), [&](const std::string& a) { return contains(native, a); });
}

// Docker's semantics: every cap of "includes" must be kept, no cap of "excludes" may be; "arches" name the native
// architecture (in Go's, libseccomp's or the SCMP_ARCH_ spelling).
bool rule_applies(const SeccompRule& rule, const std::vector<std::string>& caps,
                  const std::vector<std::string>& native) {
  for (const auto& c : rule.includes_caps) {
    if (!std::binary_search(caps.begin(), caps.end(), normalize_cap(c))) {
      return false;
    }
  }
  for (const auto& c : rule.excludes_caps) {
    if (std::binary_search(caps.begin(), caps.end(), normalize_cap(c))) {
      return false;
    }
  }
  if (!rule.includes_arches.empty() && !any_arch_matches(rule.includes_arches, native)) {
    return false;
  }
  return !any_arch_matches(rule.excludes_arches, native);
}

Result<void> add_arches(void* ctx, const std::vector<std::string>& arches) {
  for (const auto& name : arches) {
    uint32_t token = arch_token(name);
    if (token == 0) {
      return make_error("unknown architecture '{}'", name);
    }
    int rc = seccomp_arch_add(ctx, token);
    if (rc < 0 && rc != -EEXIST) {  // the native architecture is in every new context already
      return Error::from_errno(fmt::format("add architecture '{}'", name), -rc);
    }
  }
  return ok();
}

// Where each (syscall, conditions) pair got its action, to refuse a profile that gives one call two actions
// (libseccomp would silently keep the first).
using Seen = std::map<std::string, std::pair<size_t, std::string>>;

Result<void> add_rule(void* ctx, const SeccompRule& rule, size_t index, const SeccompProfile& profile, Seen& seen) {
  unsigned err = rule.errno_ret.value_or(profile.default_errno);
  uint32_t action = scmp_action(rule.action, err);
  std::string action_text = action_name(rule.action, err);
  std::vector<scmp_arg_cmp> cmps;
  std::string conditions;
  for (const auto& a : rule.args) {
    cmps.push_back(scmp_arg_cmp{a.index, scmp_op(a.op), a.value, a.value_two});
    conditions += fmt::format(";{}:{}:{}:{}", a.index, static_cast<int>(a.op), a.value, a.value_two);
  }
  for (const auto& name : rule.names) {
    auto [it, inserted] = seen.try_emplace(name + conditions, index, action_text);
    if (!inserted && it->second.second != action_text) {
      return make_error("syscalls[{}]: '{}' is given {} here but {} by syscalls[{}]", index, name, action_text,
                        it->second.second, it->second.first);
    }
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR || action == scmp_action(profile.default_action, profile.default_errno)) {
      continue;  // no native number (known elsewhere only), or the default already does this
    }
    int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(cmps.size()), cmps.data());
    if (rc < 0) {
      return Error::from_errno(fmt::format("syscalls[{}]: add rule for '{}'", index, name), -rc);
    }
  }
  return ok();
}

Result<std::vector<sock_filter>> export_bpf(void* ctx) {
  Fd fd(::memfd_create("sbx-seccomp-bpf", MFD_CLOEXEC));
  if (!fd) {
    return sys_error("memfd_create for the BPF program");
  }
  int rc = seccomp_export_bpf(ctx, fd.get());
  if (rc < 0) {
    return Error::from_errno("seccomp_export_bpf", -rc);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return sys_error("fstat the exported BPF program");
  }
  size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes == 0 || bytes % sizeof(sock_filter) != 0) {
    return make_error("seccomp_export_bpf wrote {} bytes, not a whole number of instructions", bytes);
  }
  std::vector<sock_filter> insns(bytes / sizeof(sock_filter));
  if (insns.size() > BPF_MAXINSNS) {
    return make_error("the filter has {} instructions, more than the kernel's limit of {}", insns.size(), BPF_MAXINSNS);
  }
  auto* out = reinterpret_cast<char*>(insns.data());
  for (size_t done = 0; done < bytes;) {
    ssize_t n = ::pread(fd.get(), out + done, bytes - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return n < 0 ? sys_error("read the exported BPF program") : make_error("read the exported BPF program: EOF");
    }
    done += static_cast<size_t>(n);
  }
  return insns;
}

Result<void> set_attrs(void* ctx) {
  struct Attr {
    scmp_filter_attr attr;
    uint32_t value;
    const char* what;
  };
  const Attr attrs[] = {
      {SCMP_FLTATR_CTL_NNP, 0, "no_new_privs off (the runtime sets it)"},
      {SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "kill the process on a foreign architecture"},
      {SCMP_FLTATR_CTL_OPTIMIZE, 2, "binary-tree optimisation"},
  };
  for (const auto& a : attrs) {
    int rc = seccomp_attr_set(ctx, a.attr, a.value);
    if (rc < 0) {
      return Error::from_errno(fmt::format("seccomp_attr_set {}", a.what), -rc);
    }
  }
  return ok();
}

}  // namespace

std::vector<std::string> normalize_caps(const std::vector<std::string>& caps) {
  std::vector<std::string> out;
  out.reserve(caps.size());
  for (const auto& c : caps) {
    out.push_back(normalize_cap(c));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<SeccompProfile> parse_seccomp_profile(std::string_view json, std::string_view source) {
  auto root = parse_json(json);
  if (!root.ok()) {
    return std::move(root).error().context(source);
  }
  auto profile = parse_profile(*root);
  if (!profile.ok()) {
    return std::move(profile).error().context(source);
  }
  return profile;
}

Result<std::shared_ptr<const SeccompFilter>> compile_seccomp_profile(const SeccompProfile& profile,
                                                                     const std::vector<std::string>& kept_caps) {
  Ctx ctx(seccomp_init(scmp_action(profile.default_action, profile.default_errno)));
  if (!ctx) {
    return make_error("seccomp_init with default action {} failed",
                      action_name(profile.default_action, profile.default_errno));
  }
  SBX_TRY(set_attrs(ctx.get()));
  SBX_TRY(add_arches(ctx.get(), profile.architectures));
  std::vector<std::string> caps = normalize_caps(kept_caps);
  std::vector<std::string> native = native_arch_names();
  Seen seen;
  for (size_t i = 0; i < profile.rules.size(); ++i) {
    if (rule_applies(profile.rules[i], caps, native)) {
      SBX_TRY(add_rule(ctx.get(), profile.rules[i], i, profile, seen));
    }
  }
  auto filter = std::make_shared<SeccompFilter>();
  SBX_ASSIGN(filter->insns, export_bpf(ctx.get()));
  return std::shared_ptr<const SeccompFilter>(std::move(filter));
}

int apply_seccomp_filter(const SeccompFilter& filter) noexcept {
  if (!valid_program_length(filter.insns.size())) {
    return EINVAL;
  }
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(filter.insns.size());
  prog.filter = const_cast<sock_filter*>(filter.insns.data());
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    return errno;
  }
  return 0;
}

}  // namespace sbx::rt
