// sbxctl: the command-line client of sbxd. This file only wires CLI11 to the commands (cli/cmd_*.cc); what the
// options mean is in cli/args.cc and man/sbxctl.1.
#include <signal.h>

#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

#ifndef SBX_VERSION
#define SBX_VERSION "unknown"
#endif

namespace sbx::cli {

namespace {

struct Args {
  Globals g;
  CreateOptions create;
  ExecOptions exec;
  ListOptions list;
  EventsOptions events;
  ImportOptions import;
  BuildOptions build;
  EnvironmentOptions environment;
  bool quiet = false;
  bool interactive = false;
  bool keep = false;
  bool follow = false;
  bool force = false;
  std::string id;
  std::string tail;
  std::string stop_timeout;
  std::string signal = "KILL";
  std::string src;
  std::string dst;
  std::string limit;
  std::string key_name;
  std::vector<std::string> ids;
};

CLI::Option* repeatable(CLI::Option* o) {
  return o->allow_extra_args(false)->take_all();
}

void add_create_options(CLI::App* sub, CreateOptions& o, bool for_run) {
  sub->add_option("--name", o.name, "Name of the sandbox (unique; usable wherever an id is)");
  sub->add_option("--rootfs", o.rootfs, "Host directory with the root filesystem (read-only lower layer)");
  sub->add_option("--image", o.image, "Image (name or id) from the daemon's image store, instead of --rootfs");
  sub->add_option("-E,--environment", o.environment, "Environment NAME or NAME@VERSION to start from");
  sub->add_option_function<std::string>(
      "--entrypoint", [&o](const std::string& v) { o.entrypoint = v; },
      for_run ? "Program to run the command with (prepended to it)"
              : "Replaces the image's entrypoint and drops its cmd; '' for none");
  sub->add_option("--net,--network", o.network, "Network mode: none (loopback only) or bridge (NAT to the outside)");
  repeatable(sub->add_option("-p,--publish", o.publish,
                             "Publish [HOST_IP:]HOST_PORT:PORT[/tcp|/udp] (host address default 127.0.0.1; bridge)"));
  repeatable(sub->add_option("--allow", o.allow, "Only these destinations: IPv4 CIDR (repeatable; bridge)"));
  repeatable(sub->add_option("--allow-host", o.allow_hosts,
                             "Only names on this list resolve, and only their addresses are reachable: NAME or "
                             "*.DOMAIN (repeatable; bridge)"));
  repeatable(sub->add_option("--allow-port", o.allow_ports, "Only these destination ports (repeatable; bridge)"));
  repeatable(sub->add_option("--block-port", o.block_ports, "Never these destination ports (repeatable; bridge)"));
  sub->add_option("--bandwidth", o.bandwidth, "Cap traffic each way, bytes per second, e.g. 10M (bridge)");
  repeatable(sub->add_option("-l,--label", o.labels, "Label KEY=VALUE (repeatable)"));
  sub->add_option("-m,--memory", o.memory, "Memory limit, e.g. 512M");
  sub->add_option("--cpus", o.cpus, "CPU limit in CPUs, e.g. 1.5");
  sub->add_option("--pids", o.pids, "Maximum number of processes and threads");
  sub->add_option("--disk", o.disk, "Size of the writable layer, e.g. 1G");
  repeatable(sub->add_option("-e,--env", o.env, "Environment variable NAME=VALUE, or NAME to pass ours (repeatable)"));
  repeatable(sub->add_option("--mount", o.mounts, "Bind mount SOURCE:DESTINATION[:ro|rw] (default ro; repeatable)"));
  sub->add_option("--ttl", o.ttl, "Remove the sandbox after this long: seconds, or with s/m/h/d");
  sub->add_option("--seccomp", o.seccomp, "Seccomp profile: default, unconfined or a profile name");
  sub->add_option("-w,--cwd", o.cwd, "Working directory (absolute)");
  sub->add_option("-u,--user", o.user, "UID[:GID] to run as");
  sub->add_option("--hostname", o.hostname, "Hostname inside the sandbox");
  sub->add_flag("--read-only", o.read_only, "Mount the root filesystem read-only (/tmp, /dev/shm stay writable)");
  repeatable(sub->add_option("--cap-drop", o.cap_drop, "Drop a capability from root's set, or ALL (repeatable)"));
  repeatable(sub->add_option("--cap-add", o.cap_add, "Add a capability to root's set (root only; repeatable)"));
  repeatable(sub->add_option("--device", o.devices, "CDI device vendor.com/class=name to pass in (repeatable)"));
  sub->add_option("--userns", o.userns,
                  "User namespace: private (the default: root inside is an unprivileged host uid) or host (root "
                  "only)");
  if (!for_run) {
    sub->add_flag("--no-start", o.no_start, "Create the sandbox without starting it");
  }
  sub->add_option("command", o.command,
                  for_run ? "Command to run" : "Main command (default: the image's entrypoint and cmd; none: idle)");
  sub->positionals_at_end();
}

void add_exec_options(CLI::App* sub, ExecOptions& e, bool& interactive, bool for_run) {
  if (!for_run) {
    repeatable(sub->add_option("-e,--env", e.env, "Environment variable NAME=VALUE, or NAME to pass ours"));
    sub->add_option("-w,--cwd", e.cwd, "Working directory (absolute)");
    sub->add_option("-u,--user", e.user, "UID[:GID] to run as");
  }
  sub->add_option("--timeout", e.timeout, "Kill the command after this long: seconds, or with s/m/h");
  sub->add_flag("-i,--stdin", interactive, "Read all of standard input and pass it to the command");
  sub->add_option("--output-limit", e.output_limit, "Pass on at most this much output, e.g. 10M");
}

void add_sandbox_commands(CLI::App& app, Args& a) {
  auto* create = app.add_subcommand("create", "Create (and start) a sandbox; prints its id");
  add_create_options(create, a.create, false);

  auto* run = app.add_subcommand("run", "Create a sandbox, run a command in it, then remove it");
  add_create_options(run, a.create, true);
  add_exec_options(run, a.exec, a.interactive, true);
  run->add_flag("--keep", a.keep, "Keep the sandbox afterwards instead of removing it");

  auto* exec = app.add_subcommand("exec", "Run a command in a running sandbox");
  add_exec_options(exec, a.exec, a.interactive, false);
  exec->add_option("sandbox", a.id, "Sandbox id or name")->required();
  exec->add_option("command", a.create.command, "Command and arguments")->required();
  exec->positionals_at_end();

  auto* ls = app.add_subcommand("ls", "List sandboxes");
  ls->alias("list");
  ls->add_option("--state", a.list.state, "Only sandboxes in this state")
      ->check(CLI::IsMember({"created", "running", "exited"}));
  repeatable(ls->add_option("-l,--label", a.list.labels, "Only sandboxes with this label KEY[=VALUE] (repeatable)"));
  ls->add_option("--owner", a.list.owner, "Only sandboxes created by this uid");
  ls->add_flag("-q,--quiet", a.list.quiet, "Print only the ids");

  auto* inspect = app.add_subcommand("inspect", "Print sandboxes as JSON");
  inspect->add_option("sandbox", a.ids, "Sandbox ids or names")->required();

  auto* logs = app.add_subcommand("logs", "Print a sandbox's main command output");
  logs->add_option("sandbox", a.id, "Sandbox id or name")->required();
  logs->add_flag("-f,--follow", a.follow, "Keep printing until the main command ends");
  logs->add_option("-n,--tail", a.tail, "Only the last N lines");
}

void add_lifecycle_commands(CLI::App& app, Args& a) {
  auto* start = app.add_subcommand("start", "Start created or exited sandboxes");
  start->add_option("sandbox", a.ids, "Sandbox ids or names")->required();
  auto* stop = app.add_subcommand("stop", "Stop sandboxes: SIGTERM, then SIGKILL after the grace period");
  stop->add_option("sandbox", a.ids, "Sandbox ids or names")->required();
  stop->add_option("-t,--time", a.stop_timeout, "Seconds to wait before SIGKILL (default 10)");
  auto* restart = app.add_subcommand("restart", "Stop and start sandboxes");
  restart->add_option("sandbox", a.ids, "Sandbox ids or names")->required();
  restart->add_option("-t,--time", a.stop_timeout, "Seconds to wait before SIGKILL (default 10)");
  auto* kill = app.add_subcommand("kill", "Send a signal to sandboxes' main commands");
  kill->add_option("sandbox", a.ids, "Sandbox ids or names")->required();
  kill->add_option("-s,--signal", a.signal, "Signal name or number (default KILL)");
  auto* rm = app.add_subcommand("rm", "Remove sandboxes");
  rm->alias("remove");
  rm->add_option("sandbox", a.ids, "Sandbox ids or names")->required();
  rm->add_flag("-f,--force", a.force, "Stop running sandboxes first");
  auto* stats = app.add_subcommand("stats", "Resource use of sandboxes (default: all running)");
  stats->add_option("sandbox", a.ids, "Sandbox ids or names");
  auto* cp = app.add_subcommand("cp", "Copy files between the host and a sandbox (SANDBOX:PATH; - for stdio)");
  cp->add_option("src", a.src, "Source: a host path, SANDBOX:PATH or -")->required();
  cp->add_option("dest", a.dst, "Destination: a host path, SANDBOX:PATH or -")->required();
}

void add_daemon_commands(CLI::App& app, Args& a) {
  app.add_subcommand("info", "Show the daemon's version, state and health");
  auto* events = app.add_subcommand("events", "Print sandbox events as they happen");
  repeatable(events->add_option("--type", a.events.types, "Only events of this type (repeatable)"))
      ->check(CLI::IsMember({"created", "started", "exited", "oom", "destroyed"}));
  events->add_option("--sandbox", a.events.sandbox, "Only this sandbox's events");
  events->add_option("--history", a.events.history, "First print up to N recorded events");
  events->add_flag("--no-follow", a.events.no_follow, "Print recorded events and exit");
  auto* execs = app.add_subcommand("execs", "List recorded execs");
  execs->add_option("sandbox", a.id, "Only this sandbox's execs");
  execs->add_option("-n,--limit", a.limit, "At most N (default 50)");
}

void add_environment_options(CLI::App* sub, EnvironmentOptions& o, bool for_create) {
  sub->add_option("name", o.name, "Name of the environment")->required();
  auto* image = sub->add_option("--image", o.image, "Image (name or id) its sandboxes start from");
  if (for_create) {
    image->required();
  }
  sub->add_option("-m,--memory", o.memory, "Memory limit, e.g. 512M");
  sub->add_option("--cpus", o.cpus, "CPU limit in CPUs, e.g. 1.5");
  sub->add_option("--pids", o.pids, "Maximum number of processes and threads");
  sub->add_option("--disk", o.disk, "Size of the writable layer, e.g. 1G");
  repeatable(sub->add_option("-e,--env", o.env, "Environment variable NAME=VALUE, or NAME to pass ours (repeatable)"));
  sub->add_option("--seccomp", o.seccomp, "Seccomp profile: default, unconfined or a profile name");
  sub->add_option("--net,--network", o.network, "Network mode: none (loopback only) or bridge");
  sub->add_option("--ttl", o.ttl, "Remove its sandboxes after this long: seconds, or with s/m/h/d; 0: never");
  sub->add_option_function<bool>(
      "--read-only", [&o](bool v) { o.read_only = v; }, "Its sandboxes' root read-only (true or false)");
  repeatable(sub->add_option("--cap-drop", o.cap_drop, "Drop a capability from root's set, or ALL (repeatable)"));
  repeatable(sub->add_option("--device", o.devices, "CDI device vendor.com/class=name (repeatable)"));
  sub->add_option("--userns", o.userns, "private (default) or host: the host's user namespace (root only)");
  sub->add_option_function<std::string>(
      "--description", [&o](const std::string& v) { o.description = v; }, "Free text");
}

void add_image_commands(CLI::App& app, Args& a) {
  auto* image = app.add_subcommand("image", "Manage the daemon's images: import, build, ls, inspect, rm");
  image->require_subcommand(1);
  image->fallthrough();
  auto* import = image->add_subcommand("import", "Import an image archive, root filesystem tarball or directory");
  import->add_option("source", a.import.source, "File or directory to import; - for standard input")->required();
  import->add_option("--name", a.import.name, "Name to give the image")->required();
  import->add_option("--ref", a.import.ref, "Which image of an archive holding several");
  import->add_flag("--replace", a.import.replace, "Take the name from an existing image");
  import->add_flag("--stream", a.import.stream, "Send the file over the connection even as root");
  import->add_flag("-q,--quiet", a.import.quiet, "No progress on standard error");
  auto* build = image->add_subcommand("build", "Build an image from a definition with sbx-build-image (root)");
  build->add_option("definition", a.build.definition, "The image definition's name (sbx-build-image --list)")
      ->required();
  build->add_option("--name", a.build.name, "Name to give the image (default: the definition's name)");
  build->add_option("--cache", a.build.cache, "The builder's download cache directory");
  repeatable(build->add_option("--sources", a.build.sources, "Package sources file for the builder (repeatable)"));
  build->add_flag("-q,--quiet", a.build.quiet, "No progress from the builder or the import");
  auto* ls = image->add_subcommand("ls", "List images");
  ls->alias("list");
  ls->add_flag("-q,--quiet", a.quiet, "Print only the names");
  auto* inspect = image->add_subcommand("inspect", "Print images as JSON");
  inspect->add_option("image", a.ids, "Image names or ids")->required();
  auto* rm = image->add_subcommand("rm", "Remove images (refused while in use)");
  rm->alias("remove");
  rm->add_option("image", a.ids, "Image names or ids")->required();
}

void add_env_commands(CLI::App& app, Args& a) {
  auto* env = app.add_subcommand("env", "Manage environments, versioned templates for sandboxes");
  env->require_subcommand(1);
  env->fallthrough();
  add_environment_options(env->add_subcommand("create", "Create an environment (version 1)"), a.environment, true);
  add_environment_options(env->add_subcommand("update", "Make a new version of an environment"), a.environment,
                          false);
  auto* ls = env->add_subcommand("ls", "List environments (their latest versions)");
  ls->alias("list");
  ls->add_flag("-q,--quiet", a.quiet, "Print only the names");
  auto* inspect = env->add_subcommand("inspect", "Print environments as JSON");
  inspect->add_option("environment", a.ids, "NAME (latest version) or NAME@VERSION")->required();
  auto* rm = env->add_subcommand("rm", "Remove environments, or one version (NAME@VERSION)");
  rm->alias("remove");
  rm->add_option("environment", a.ids, "NAME or NAME@VERSION")->required();
}

void add_apikey_commands(CLI::App& app, Args& a) {
  auto* apikey = app.add_subcommand("apikey", "Manage the API keys of the HTTP shim (root only): create, ls, revoke");
  apikey->require_subcommand(1);
  apikey->fallthrough();
  auto* create = apikey->add_subcommand("create", "Create an API key for a tenant; prints the key, this once only");
  create->add_option("--tenant", a.g.tenant, "The tenant the key acts for (required)");
  create->add_option("--name", a.key_name, "A label for the key (up to 64 printable ASCII characters)");
  create->add_flag("-q,--quiet", a.quiet, "Print only the key");
  auto* ls = apikey->add_subcommand("ls", "List API keys (never the keys themselves)");
  ls->alias("list");
  ls->add_option("--tenant", a.g.tenant, "Only this tenant's keys");
  ls->add_flag("-q,--quiet", a.quiet, "Print only the ids");
  auto* revoke = apikey->add_subcommand("revoke", "Revoke API keys: they never verify again");
  revoke->alias("rm");
  revoke->add_option("id", a.ids, "Key ids")->required();
}

// The words up to where a subcommand should be, when it names none ("lss", "image lss"); "" otherwise.
std::string unknown_command(const CLI::App& app, int argc, char** argv) {
  const CLI::App* current = &app;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--socket" || arg == "--tenant") {
      ++i;
      continue;
    }
    if (arg.starts_with("-")) {
      continue;
    }
    const CLI::App* found = nullptr;
    for (const auto* sub : current->get_subcommands({})) {
      if (sub->check_name(arg)) {
        found = sub;
      }
    }
    if (found == nullptr) {
      return path + arg;
    }
    if (found->get_subcommands({}).empty()) {
      return "";
    }
    current = found;
    path += arg + " ";
  }
  return "";
}

json stop_params(const std::string& timeout) {
  if (timeout.empty()) {
    return json::object();
  }
  auto t = parse_seconds("--time", timeout, true);
  if (!t.ok()) {
    return json(nullptr);
  }
  return {{"timeout", *t}};
}

int lifecycle(const std::string& name, Args& a) {
  if (name == "start") {
    return cmd_each(a.g, "sandbox.start", a.ids, json::object());
  }
  if (name == "stop" || name == "restart") {
    json extra = stop_params(a.stop_timeout);
    if (extra.is_null()) {
      return fail(parse_seconds("--time", a.stop_timeout, true).error());
    }
    return cmd_each(a.g, "sandbox." + name, a.ids, extra);
  }
  if (name == "kill") {
    json sig = a.signal;
    if (!a.signal.empty() && a.signal.find_first_not_of("0123456789") == std::string::npos) {
      auto n = parse_count("--signal", a.signal);
      if (!n.ok()) {
        return fail(n.error());
      }
      sig = *n;
    }
    return cmd_each(a.g, "sandbox.kill", a.ids, {{"signal", sig}});
  }
  return cmd_each(a.g, "sandbox.remove", a.ids, a.force ? json{{"force", true}} : json::object());
}

int image_dispatch(const std::string& name, Args& a) {
  if (name == "import") {
    return cmd_image_import(a.g, a.import);
  }
  if (name == "build") {
    return cmd_image_build(a.g, a.build);
  }
  if (name == "ls") {
    return cmd_image_ls(a.g, a.quiet);
  }
  if (name == "inspect") {
    return cmd_image_inspect(a.g, a.ids);
  }
  return cmd_image_rm(a.g, a.ids);
}

int env_dispatch(const std::string& name, Args& a) {
  if (name == "create") {
    return cmd_env_create(a.g, a.environment);
  }
  if (name == "update") {
    return cmd_env_update(a.g, a.environment);
  }
  if (name == "ls") {
    return cmd_env_ls(a.g, a.quiet);
  }
  if (name == "inspect") {
    return cmd_env_inspect(a.g, a.ids);
  }
  return cmd_env_rm(a.g, a.ids);
}

int apikey_dispatch(const std::string& name, Args& a) {
  if (name == "create") {
    return cmd_apikey_create(a.g, a.key_name, a.quiet);
  }
  if (name == "ls") {
    return cmd_apikey_ls(a.g, a.quiet);
  }
  return cmd_apikey_revoke(a.g, a.ids);
}

int dispatch(const std::string& name, Args& a) {
  a.create.command = trailing_command(a.create.command);
  a.create.tenant = a.g.tenant;
  if (name == "create") {
    return cmd_create(a.g, a.create);
  }
  if (name == "run") {
    return cmd_run(a.g, a.create, a.exec, a.interactive, a.keep);
  }
  if (name == "exec") {
    return cmd_exec(a.g, a.id, a.create.command, a.exec, a.interactive);
  }
  if (name == "ls") {
    return cmd_ls(a.g, a.list);
  }
  if (name == "inspect") {
    return cmd_inspect(a.g, a.ids);
  }
  if (name == "logs") {
    return cmd_logs(a.g, a.id, a.follow, a.tail);
  }
  if (name == "stats") {
    return cmd_stats(a.g, a.ids);
  }
  if (name == "cp") {
    return cmd_cp(a.g, a.src, a.dst);
  }
  if (name == "info") {
    return cmd_info(a.g);
  }
  if (name == "events") {
    return cmd_events(a.g, a.events);
  }
  if (name == "execs") {
    return cmd_execs(a.g, a.id, a.limit);
  }
  return lifecycle(name, a);
}

}  // namespace

int run_main(int argc, char** argv) {
  CLI::App app{"sbxctl: control sbx sandboxes through the sbxd daemon", "sbxctl"};
  app.footer("Exit status: 125 for sbxctl's own errors; exec and run exit with the command's status.\n"
             "See sbxctl(1).");
  app.set_version_flag("--version", SBX_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  Args a;
  app.add_option("--socket", a.g.socket, "sbxd's socket (default: $SBX_SOCKET or /run/sbx/sbxd.sock)");
  app.add_flag("--json", a.g.json, "Print results as JSON, for scripts");
  app.add_option("--tenant", a.g.tenant, "Act for this tenant (trusted callers only)");
  add_sandbox_commands(app, a);
  add_lifecycle_commands(app, a);
  add_daemon_commands(app, a);
  add_image_commands(app, a);
  add_env_commands(app, a);
  add_apikey_commands(app, a);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app.exit(e);
    }
    if (std::string word = unknown_command(app, argc, argv); !word.empty()) {
      std::fprintf(stderr, "sbxctl: unknown command '%s'\nRun 'sbxctl --help' for the list.\n", word.c_str());
      return kExitError;
    }
    std::fprintf(stderr, "sbxctl: %s\nRun 'sbxctl --help' or 'sbxctl COMMAND --help' for usage.\n", e.what());
    return kExitError;
  }
  // Output to a closed pipe is an EPIPE the commands handle (exec and run then cancel the command).
  ::signal(SIGPIPE, SIG_IGN);
  const CLI::App* command = app.get_subcommands().front();
  std::string name = command->get_name();
  if (name == "image" || name == "env" || name == "apikey") {
    std::string sub = command->get_subcommands().front()->get_name();
    if (name == "apikey") {
      return apikey_dispatch(sub, a);
    }
    return name == "image" ? image_dispatch(sub, a) : env_dispatch(sub, a);
  }
  return dispatch(name, a);
}

}  // namespace sbx::cli

int main(int argc, char** argv) {
  return sbx::cli::run_main(argc, argv);
}
