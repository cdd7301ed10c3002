// info, events and execs: the daemon's state and history.
#include <cstdio>

#include "api/protocol.h"
#include "cli/commands.h"
#include "cli/format.h"

namespace sbx::cli {

namespace {

std::string health_line(const json& health) {
  std::string out = field(health, "status");
  const json& checks = member(health, "checks");
  if (!checks.is_object()) {
    return out;
  }
  std::string parts;
  for (const auto& [name, v] : checks.items()) {
    std::string s = v.is_boolean() ? (v.get<bool>() ? "ok" : "failed") : v.is_object() ? field(v, "status") : cell(v);
    parts += fmt::format("{}{} {}", parts.empty() ? "" : ", ", name, s);
  }
  return fmt::format("{} ({})", out, parts);
}

std::string info_text(const json& info, const json* health) {
  const json& sbs = member(info, "sandboxes");
  const json& caller = member(info, "caller");
  auto uptime = member(info, "uptime_s");
  std::vector<std::pair<std::string, std::string>> f = {
      {"Version", field(info, "version")},
      {"API version", field(info, "api_version")},
      {"Cgroup mode", field(info, "cgroup_mode")},
      {"PID", field(info, "pid")},
      {"Uptime", uptime.is_number() ? format_duration_ms(uptime.get<int64_t>() * 1000) : "-"},
      {"Sandboxes", fmt::format("{} ({} running, {} created, {} exited)", field(sbs, "total"), field(sbs, "running"),
                                field(sbs, "created"), field(sbs, "exited"))},
      {"Caller", fmt::format("uid {}, gid {}, role {}", field(caller, "uid"), field(caller, "gid"),
                             field(caller, "role"))},
  };
  if (health != nullptr) {
    f.emplace_back("Health", health_line(*health));
  }
  return render_fields(f);
}

std::string execs_table(const json& execs) {
  Table t({"EXEC ID", "SANDBOX", "STARTED", "DURATION", "EXIT", "CPU", "PEAK RSS", "COMMAND"});
  int64_t now = api::now_ms();
  for (const auto& e : execs) {
    const json& dur = member(e, "duration_ms");
    const json& user = member(e, "cpu_user_us");
    const json& sys = member(e, "cpu_system_us");
    std::string cpu = user.is_number() && sys.is_number()
                          ? format_duration_ms((user.get<int64_t>() + sys.get<int64_t>()) / 1000)
                          : "-";
    t.add_row({field(e, "exec_id"), field(e, "id"), ago_field(e, "started_at", now),
               dur.is_number() ? format_duration_ms(dur.get<int64_t>()) : "-", format_exec_end(e), cpu,
               size_field(member(e, "peak_rss_bytes")), ellipsize(format_command(member(e, "argv")), 48)});
  }
  return t.render();
}

class EventPrinter {
 public:
  EventPrinter(bool json_mode, const std::vector<std::string>& types) : json_(json_mode), types_(types) {}

  // Prints an event once: ones at or below the highest sequence number printed are skipped.
  void print(const json& ev) {
    const json& seq = member(ev, "seq");
    if (seq.is_number_integer()) {
      if (seq.get<int64_t>() <= last_seq_) {
        return;
      }
      last_seq_ = seq.get<int64_t>();
    }
    if (!types_.empty() && std::find(types_.begin(), types_.end(), field(ev, "type")) == types_.end()) {
      return;
    }
    print_text((json_ ? ev.dump(-1, ' ', false, json::error_handler_t::replace) : format_event(ev)) + "\n");
  }

 private:
  bool json_;
  std::vector<std::string> types_;
  int64_t last_seq_ = -1;
};

Result<void> follow_events(api::Client& client, const EventsOptions& o, EventPrinter& printer) {
  // Subscribe first, then read the history, so that nothing falls between them; sequence numbers drop repeats.
  json early = json::array();
  auto keep = [&](const std::string& method, const json& params) {
    if (method == "event") {
      early.push_back(params);
    }
  };
  if (!o.no_follow) {
    json sub = json::object();
    if (!o.types.empty()) {
      sub["types"] = o.types;
    }
    if (!o.sandbox.empty()) {
      sub["id"] = o.sandbox;
    }
    SBX_ASSIGN(json r, client.call("events.subscribe", std::move(sub), keep));
  }
  if (!o.history.empty() || o.no_follow) {
    json params = {{"limit", 100}};
    if (!o.history.empty()) {
      SBX_ASSIGN(params["limit"], parse_count("--history", o.history, 0));
    }
    if (!o.sandbox.empty()) {
      params["id"] = o.sandbox;
    }
    SBX_ASSIGN(json r, client.call("events.list", std::move(params), keep));
    for (const auto& ev : member(r, "events")) {
      printer.print(ev);
    }
  }
  for (const auto& ev : early) {
    printer.print(ev);
  }
  while (!o.no_follow) {
    SBX_ASSIGN(api::Notification n, client.next_notification());
    if (n.method == "event") {
      printer.print(n.params);
    }
  }
  return ok();
}

}  // namespace

int cmd_info(const Globals& g) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto info = client->call("daemon.info");
  if (!info.ok()) {
    return fail(info.error());
  }
  if (g.json) {
    print_json(*info);
    return 0;
  }
  auto health = client->call("daemon.health");
  print_text(info_text(*info, health.ok() ? &*health : nullptr));
  return 0;
}

int cmd_events(const Globals& g, const EventsOptions& o) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  EventPrinter printer(g.json, o.types);
  auto r = follow_events(*client, o, printer);
  if (!r.ok()) {
    return fail(r.error());
  }
  return 0;
}

int cmd_execs(const Globals& g, const std::string& id, const std::string& limit) {
  json params = json::object();
  if (!id.empty()) {
    params["id"] = id;
  }
  if (!limit.empty()) {
    auto n = parse_count("--limit", limit);
    if (!n.ok()) {
      return fail(n.error());
    }
    params["limit"] = *n;
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("execs.list", std::move(params));
  if (!r.ok()) {
    return fail(r.error());
  }
  if (g.json) {
    print_json(*r);
  } else {
    print_text(execs_table(member(*r, "execs")));
  }
  return 0;
}

}  // namespace sbx::cli
