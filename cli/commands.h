#pragma once
// sbxctl's subcommands: each takes the parsed options, talks to sbxd and returns the process's exit status.
// Errors go to stderr as "sbxctl: <message>" with status 125; exec and run return their command's status.
#include <string>
#include <string_view>
#include <vector>

#include "api/client.h"
#include "cli/args.h"
#include "cli/image_args.h"

namespace sbx::cli {

inline constexpr int kExitError = 125;

struct Globals {
  std::string socket;
  bool json = false;
  std::string tenant;
};

struct ListOptions {
  std::string state;
  std::vector<std::string> labels;
  std::string owner;
  bool quiet = false;
};

struct EventsOptions {
  std::vector<std::string> types;
  std::string sandbox;
  std::string history;  // count of past events to show first
  bool no_follow = false;
};

// Shared by the commands (common.cc).
int fail(const Error& error);
int fail(std::string_view message);
void warn(std::string_view message);
Result<api::Client> connect(const Globals& g);
void print_json(const json& value);
void print_text(std::string_view text);
// Writes raw bytes to fd 1 or 2 (binary safe, whole).
Result<void> write_out(int fd, std::string_view data);
// The current directory, for making relative host paths absolute.
std::string current_dir();
// Reads all of stdin.
Result<std::string> read_stdin();
std::string sandbox_id(const json& sandbox);
// Calls `method` with {key: name} for each name and prints the results as JSON: the object for one name, an array
// for several. 125 when any failed (each failure reported, the others still printed).
int inspect_each(const Globals& g, const std::string& method, const char* key, const std::vector<std::string>& names);

int cmd_create(const Globals& g, const CreateOptions& o);
int cmd_run(const Globals& g, const CreateOptions& o, const ExecOptions& e, bool read_input, bool keep);
int cmd_exec(const Globals& g, const std::string& id, const std::vector<std::string>& argv, const ExecOptions& e,
             bool read_input);
int cmd_logs(const Globals& g, const std::string& id, bool follow, const std::string& tail);

int cmd_ls(const Globals& g, const ListOptions& o);
int cmd_inspect(const Globals& g, const std::vector<std::string>& ids);
// start, stop, restart, kill, rm: one call per sandbox with the same extra params.
int cmd_each(const Globals& g, const std::string& method, const std::vector<std::string>& ids, const json& extra);
int cmd_stats(const Globals& g, const std::vector<std::string>& ids);

int cmd_cp(const Globals& g, const std::string& src, const std::string& dst);

// image import|build|ls|inspect|rm (cmd_image.cc).
int cmd_image_import(const Globals& g, const ImportOptions& o);
int cmd_image_build(const Globals& g, const BuildOptions& o);
int cmd_image_ls(const Globals& g, bool quiet);
int cmd_image_inspect(const Globals& g, const std::vector<std::string>& names);
int cmd_image_rm(const Globals& g, const std::vector<std::string>& names);

// env create|update|ls|inspect|rm (cmd_env.cc).
int cmd_env_create(const Globals& g, const EnvironmentOptions& o);
int cmd_env_update(const Globals& g, const EnvironmentOptions& o);
int cmd_env_ls(const Globals& g, bool quiet);
int cmd_env_inspect(const Globals& g, const std::vector<std::string>& refs);
int cmd_env_rm(const Globals& g, const std::vector<std::string>& refs);

// apikey create|ls|revoke (cmd_apikey.cc). create needs g.tenant.
int cmd_apikey_create(const Globals& g, const std::string& name, bool quiet);
int cmd_apikey_ls(const Globals& g, bool quiet);
int cmd_apikey_revoke(const Globals& g, const std::vector<std::string>& ids);

int cmd_info(const Globals& g);
int cmd_events(const Globals& g, const EventsOptions& o);
int cmd_execs(const Globals& g, const std::string& id, const std::string& limit);

}  // namespace sbx::cli
