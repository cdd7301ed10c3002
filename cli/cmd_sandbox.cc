// create, ls, inspect, start/stop/restart/kill/rm and stats.
#include <algorithm>

#include "api/protocol.h"
#include "cli/commands.h"
#include "cli/format.h"

namespace sbx::cli {

namespace {

std::string source_of(const json& sb) {
  std::string image = string_member(sb, "image");
  std::string rootfs = string_member(sb, "rootfs");
  return !image.empty() ? image : !rootfs.empty() ? rootfs : "-";
}

std::string sandboxes_table(const json& sandboxes) {
  Table t({"ID", "NAME", "STATE", "CREATED", "IMAGE/ROOTFS", "COMMAND", "LABELS"});
  int64_t now = api::now_ms();
  for (const auto& sb : sandboxes) {
    std::string cmd = format_command(member(sb, "cmd"));
    t.add_row({field(sb, "id"), field(sb, "name"), format_state(sb), ago_field(sb, "created_at", now),
               ellipsize(source_of(sb), 32), ellipsize(cmd, 32), ellipsize(format_labels(member(sb, "labels")), 40)});
  }
  return t.render();
}

void add_stats_row(Table& t, const json& sb, const json& s) {
  const json& usec = member(s, "cpu_usage_usec");
  std::string cpu = usec.is_number() ? format_duration_ms(usec.get<int64_t>() / 1000) : "-";
  std::string throttled = field(s, "cpu_nr_throttled");
  const json& tusec = member(s, "cpu_throttled_usec");
  if (tusec.is_number() && tusec.get<int64_t>() > 0) {
    throttled += " (" + format_duration_ms(tusec.get<int64_t>() / 1000) + ")";
  }
  const json& net = member(s, "network");
  t.add_row({field(sb, "id"), field(sb, "name"), cpu, size_field(member(s, "memory_current")),
             size_field(member(s, "memory_peak")), field(s, "pids_current"), field(s, "oom_kills"), throttled,
             net.is_object() ? size_field(member(net, "rx_bytes")) : "-",
             net.is_object() ? size_field(member(net, "tx_bytes")) : "-"});
}

Result<json> running_sandboxes(api::Client& client, const Globals& g) {
  json params = {{"state", "running"}};
  if (!g.tenant.empty()) {
    params["tenant"] = g.tenant;
  }
  SBX_ASSIGN(json list, client.call("sandbox.list", std::move(params)));
  return member(list, "sandboxes");
}

}  // namespace

int cmd_create(const Globals& g, const CreateOptions& o) {
  auto params = create_params(o, current_dir(), process_env());
  if (!params.ok()) {
    return fail(params.error());
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("sandbox.create", std::move(*params));
  if (!r.ok()) {
    return fail(r.error());
  }
  if (g.json) {
    print_json(*r);
  } else {
    print_text(sandbox_id(*r) + "\n");
  }
  return 0;
}

int cmd_ls(const Globals& g, const ListOptions& o) {
  json params = json::object();
  if (!o.state.empty()) {
    params["state"] = o.state;
  }
  // The daemon filters on one label; further ones are checked here.
  if (!o.labels.empty()) {
    params["label"] = o.labels[0];
  }
  if (!o.owner.empty()) {
    auto uid = parse_count("--owner", o.owner, 0);
    if (!uid.ok()) {
      return fail(uid.error());
    }
    params["owner"] = *uid;
  }
  if (!g.tenant.empty()) {
    params["tenant"] = g.tenant;
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("sandbox.list", std::move(params));
  if (!r.ok()) {
    return fail(r.error());
  }
  json sandboxes = json::array();
  for (const auto& sb : member(*r, "sandboxes")) {
    bool all = std::all_of(o.labels.begin(), o.labels.end(),
                           [&](const std::string& l) { return label_matches(member(sb, "labels"), l); });
    if (all) {
      sandboxes.push_back(sb);
    }
  }
  if (g.json) {
    print_json({{"sandboxes", sandboxes}});
  } else if (o.quiet) {
    std::string ids;
    for (const auto& sb : sandboxes) {
      ids += sandbox_id(sb) + "\n";
    }
    print_text(ids);
  } else {
    print_text(sandboxes_table(sandboxes));
  }
  return 0;
}

int cmd_inspect(const Globals& g, const std::vector<std::string>& ids) {
  return inspect_each(g, "sandbox.inspect", "id", ids);
}

int cmd_each(const Globals& g, const std::string& method, const std::vector<std::string>& ids, const json& extra) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  json results = json::array();
  int status = 0;
  for (const auto& id : ids) {
    json params = extra.is_object() ? extra : json::object();
    params["id"] = id;
    auto r = client->call(method, std::move(params));
    if (!r.ok()) {
      status = fail(r.error());
      continue;
    }
    if (g.json) {
      results.push_back(std::move(*r));
    } else {
      print_text(id + "\n");
    }
  }
  if (g.json && !results.empty()) {
    print_json(ids.size() == 1 ? results[0] : results);
  }
  return status;
}

int cmd_stats(const Globals& g, const std::vector<std::string>& ids) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  json sandboxes = json::array();
  int status = 0;
  for (const auto& id : ids) {
    auto sb = client->call("sandbox.inspect", {{"id", id}});
    if (!sb.ok()) {
      status = fail(sb.error());
      continue;
    }
    sandboxes.push_back(std::move(*sb));
  }
  if (ids.empty()) {
    auto running = running_sandboxes(*client, g);
    if (!running.ok()) {
      return fail(running.error());
    }
    sandboxes = std::move(*running);
  }
  Table t({"ID", "NAME", "CPU", "MEMORY", "MEMORY PEAK", "PIDS", "OOM KILLS", "THROTTLED", "NET RX", "NET TX"});
  json results = json::array();
  for (const auto& sb : sandboxes) {
    auto r = client->call("sandbox.stats", {{"id", member(sb, "id")}});
    if (!r.ok()) {
      status = fail(fmt::format("{}: {}", field(sb, "id"), r.error().message()));
      continue;
    }
    add_stats_row(t, sb, *r);
    json entry = {{"id", member(sb, "id")}, {"name", member(sb, "name")}, {"stats", *r}};
    results.push_back(std::move(entry));
  }
  if (g.json) {
    print_json(ids.size() == 1 && results.size() == 1 ? results[0]["stats"] : results);
  } else if (status == 0 || t.rows() > 0) {
    print_text(t.render());
  }
  return status;
}

}  // namespace sbx::cli
