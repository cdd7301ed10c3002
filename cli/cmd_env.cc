// env create, update, ls, inspect and rm: environments, the daemon's versioned templates for sandboxes.
#include "api/protocol.h"
#include "cli/commands.h"
#include "cli/format.h"

namespace sbx::cli {

namespace {

bool has_limits(const EnvironmentOptions& o) {
  return !o.memory.empty() || !o.cpus.empty() || !o.pids.empty() || !o.disk.empty();
}

int print_environment(const Globals& g, const json& env) {
  if (g.json) {
    print_json(env);
  } else {
    print_text(string_member(env, "ref") + "\n");
  }
  return 0;
}

std::string cpus_cell(const json& limits) {
  const json& v = member(limits, "vcpus");
  if (v.is_number_float()) {
    return fmt::format("{}", v.get<double>());
  }
  return cell(v);
}

std::string environments_table(const json& envs) {
  Table t({"NAME", "VERSION", "IMAGE", "MEMORY", "CPUS", "CREATED"});
  int64_t now = api::now_ms();
  for (const auto& e : envs) {
    const json& limits = member(e, "limits");
    t.add_row({field(e, "name"), field(e, "version"), field(member(e, "image"), "name"),
               size_field(member(limits, "memory")), cpus_cell(limits), ago_field(e, "created_at", now)});
  }
  return t.render();
}

// Checks every NAME[@VERSION] before anything is sent.
Result<void> check_refs(const std::vector<std::string>& refs) {
  for (const auto& ref : refs) {
    SBX_TRY(check_environment_ref("", ref));
  }
  return ok();
}

// removed_versions is a count; a list of version numbers is shown as one too.
std::string removed_text(const std::string& ref, const json& result) {
  const json& removed = member(result, "removed_versions");
  if (removed.is_array()) {
    std::string list;
    for (const auto& v : removed) {
      list += (list.empty() ? "" : ", ") + cell(v);
    }
    return fmt::format("{}: removed version{} {}\n", ref, removed.size() == 1 ? "" : "s", list);
  }
  if (removed.is_number_integer()) {
    int64_t n = removed.get<int64_t>();
    return fmt::format("{}: removed {} version{}\n", ref, n, n == 1 ? "" : "s");
  }
  return fmt::format("{}: removed\n", ref);
}

}  // namespace

int cmd_env_create(const Globals& g, const EnvironmentOptions& o) {
  auto params = environment_params(o, process_env(), nullptr);
  if (!params.ok()) {
    return fail(params.error());
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("environment.create", std::move(*params));
  if (!r.ok()) {
    return fail(r.error());
  }
  return print_environment(g, *r);
}

int cmd_env_update(const Globals& g, const EnvironmentOptions& o) {
  // Checked before anything is sent; the limits are merged below.
  if (auto p = environment_params(o, process_env(), json::object()); !p.ok()) {
    return fail(p.error());
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  json previous = json::object();
  if (has_limits(o)) {
    auto latest = client->call("environment.inspect", {{"name", o.name}});
    if (!latest.ok()) {
      return fail(latest.error());
    }
    previous = std::move(*latest);
  }
  auto params = environment_params(o, process_env(), previous);
  if (!params.ok()) {
    return fail(params.error());
  }
  auto r = client->call("environment.update", std::move(*params));
  if (!r.ok()) {
    return fail(r.error());
  }
  return print_environment(g, *r);
}

int cmd_env_ls(const Globals& g, bool quiet) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("environment.list");
  if (!r.ok()) {
    return fail(r.error());
  }
  const json& envs = member(*r, "environments");
  if (g.json) {
    print_json(*r);
  } else if (quiet) {
    std::string out;
    for (const auto& e : envs) {
      out += string_member(e, "name") + "\n";
    }
    print_text(out);
  } else {
    print_text(environments_table(envs.is_array() ? envs : json::array()));
  }
  return 0;
}

int cmd_env_inspect(const Globals& g, const std::vector<std::string>& refs) {
  if (auto c = check_refs(refs); !c.ok()) {
    return fail(c.error());
  }
  return inspect_each(g, "environment.inspect", "name", refs);
}

int cmd_env_rm(const Globals& g, const std::vector<std::string>& refs) {
  if (auto c = check_refs(refs); !c.ok()) {
    return fail(c.error());
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  json results = json::array();
  int status = 0;
  for (const auto& ref : refs) {
    auto r = client->call("environment.remove", {{"name", ref}});
    if (!r.ok()) {
      status = fail(r.error());
      continue;
    }
    if (g.json) {
      results.push_back({{"name", ref}, {"removed_versions", member(*r, "removed_versions")}});
    } else {
      print_text(removed_text(ref, *r));
    }
  }
  if (g.json && !results.empty()) {
    print_json(refs.size() == 1 ? results[0] : results);
  }
  return status;
}

}  // namespace sbx::cli
