// apikey create, ls and revoke: the API keys the HTTP shim authenticates web clients with (root only). A key is
// printed once, by create; sbxd keeps only its hash, so it cannot be shown again.
#include "api/protocol.h"
#include "cli/commands.h"
#include "cli/format.h"

namespace sbx::cli {

namespace {

std::string keys_table(const json& keys) {
  Table t({"ID", "TENANT", "NAME", "CREATED", "LAST USED"});
  const int64_t now = api::now_ms();
  for (const auto& k : keys) {
    const std::string name = string_member(k, "name");
    t.add_row({field(k, "id"), field(k, "tenant"), name.empty() ? "-" : name, ago_field(k, "created", now),
               member(k, "last_used").is_null() ? "never" : ago_field(k, "last_used", now)});
  }
  return t.render();
}

}  // namespace

int cmd_apikey_create(const Globals& g, const std::string& name, bool quiet) {
  if (g.tenant.empty()) {
    return fail("apikey create: --tenant is required (the tenant the key acts for)");
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("apikey.create", name.empty() ? json::object() : json{{"name", name}});
  if (!r.ok()) {
    return fail(r.error());
  }
  const std::string key = string_member(*r, "key");
  if (g.json) {
    print_json(*r);
  } else if (quiet) {
    print_text(key + "\n");
  } else {
    print_text(fmt::format("Created API key {} for tenant {}. It is shown only this once (sbxd keeps only its "
                           "hash):\n{}\n",
                           string_member(*r, "id"), string_member(*r, "tenant"), key));
  }
  return 0;
}

int cmd_apikey_ls(const Globals& g, bool quiet) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("apikey.list");
  if (!r.ok()) {
    return fail(r.error());
  }
  const json& keys = member(*r, "keys");
  if (g.json) {
    print_json(*r);
  } else if (quiet) {
    std::string out;
    for (const auto& k : keys) {
      out += string_member(k, "id") + "\n";
    }
    print_text(out);
  } else {
    print_text(keys_table(keys.is_array() ? keys : json::array()));
  }
  return 0;
}

int cmd_apikey_revoke(const Globals& g, const std::vector<std::string>& ids) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  json results = json::array();
  int status = 0;
  for (const auto& id : ids) {
    auto r = client->call("apikey.revoke", {{"id", id}});
    if (!r.ok()) {
      status = fail(r.error());
      continue;
    }
    if (g.json) {
      results.push_back(*r);
    } else {
      print_text(fmt::format("{}: revoked\n", id));
    }
  }
  if (g.json && !results.empty()) {
    print_json(ids.size() == 1 ? results[0] : results);
  }
  return status;
}

}  // namespace sbx::cli
