// exec, run and logs: the commands whose output streams from the sandbox to our stdout/stderr.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/protocol.h"
#include "cli/commands.h"

namespace sbx::cli {

namespace {

volatile sig_atomic_t g_signal = 0;

void on_signal(int sig) {
  g_signal = sig;
}

// SIGINT, SIGTERM and SIGHUP are remembered and interrupt the blocking read (no SA_RESTART), so that the exec can
// be abandoned (sbxd kills it when we hang up) and run can still remove its sandbox.
void catch_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    ::sigaction(sig, &sa, nullptr);
  }
}

std::string string_of(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Copies base64 output notifications to our stdout/stderr. When our stdout is a closed pipe, the connection is
// shut down: the call then ends and sbxd kills the exec, as a shell pipeline would with SIGPIPE.
class OutputRelay {
 public:
  OutputRelay(api::Client& client, std::string method) : client_(client), method_(std::move(method)) {}

  void operator()(const std::string& method, const json& params) {
    if (method != method_ || !params.is_object() || stdout_broken_) {
      return;
    }
    auto data = api::base64_decode(string_of(params, "data_b64"));
    if (!data.ok()) {
      if (!warned_) {
        warn(fmt::format("sbxd sent output that is not base64: {}", data.error().message()));
        warned_ = true;
      }
      return;
    }
    bool to_stderr = string_of(params, "stream") == "stderr";
    if (to_stderr && stderr_broken_) {
      return;
    }
    auto w = write_out(to_stderr ? STDERR_FILENO : STDOUT_FILENO, *data);
    if (!w.ok() && to_stderr) {
      stderr_broken_ = true;
    } else if (!w.ok()) {
      stdout_broken_ = true;
      ::shutdown(client_.fd(), SHUT_RDWR);
    }
  }

  bool stdout_broken() const { return stdout_broken_; }

 private:
  api::Client& client_;
  std::string method_;
  bool stdout_broken_ = false;
  bool stderr_broken_ = false;
  bool warned_ = false;
};

// Runs sandbox.exec with its output relayed; returns the exit status the command's end maps to.
int stream_exec(api::Client& client, json params, bool json_mode, const char* method = "sandbox.exec") {
  double timeout_s = params.contains("timeout") ? params["timeout"].get<double>() : 0;
  OutputRelay relay(client, "exec.output");
  client.set_interrupt_check([] { return g_signal != 0; });
  auto r = client.call(method, std::move(params), std::ref(relay));
  client.set_interrupt_check({});
  if (g_signal != 0) {
    return 128 + g_signal;
  }
  if (relay.stdout_broken()) {
    return 128 + SIGPIPE;
  }
  if (!r.ok()) {
    int status = exec_error_status(client.last_error().code, client.last_error().data);
    fail(r.error());
    return status;
  }
  if (json_mode) {
    print_json(*r);
  }
  ExecStatus st = exec_status(*r, timeout_s);
  for (const auto& note : st.notes) {
    warn("note: " + note);
  }
  return st.exit_code;
}

// Adds stdin_b64 (all of our stdin) and stream=false for --json.
Result<void> add_input(json& params, bool read_input, bool json_mode) {
  if (read_input) {
    SBX_ASSIGN(std::string input, read_stdin());
    params["stdin_b64"] = api::base64_encode(input);
  }
  if (json_mode) {
    params["stream"] = false;
  }
  return ok();
}

// sandbox.exec or sandbox.run with `params` (stdin added with -i), output streamed; returns the exit status.
int call_streamed(const Globals& g, Result<json> params, bool read_input, const char* method) {
  if (!params.ok()) {
    return fail(params.error());
  }
  if (auto in = add_input(*params, read_input, g.json); !in.ok()) {
    return fail(in.error());
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  catch_signals();
  return stream_exec(*client, std::move(*params), g.json, method);
}

}  // namespace

int cmd_exec(const Globals& g, const std::string& id, const std::vector<std::string>& argv, const ExecOptions& e,
             bool read_input) {
  return call_streamed(g, exec_params(id, argv, e, process_env()), read_input, "sandbox.exec");
}

// With --keep: an idle sandbox, the command as an exec in it, and the sandbox left running for more.
int cmd_run(const Globals& g, const CreateOptions& o, const ExecOptions& e, bool read_input, bool keep) {
  std::vector<std::string> argv = run_argv(o);
  if (argv.empty()) {
    return fail("run needs a command: sbxctl run [OPTIONS] --rootfs DIR|--image IMAGE|--environment ENV [--] "
                "COMMAND [ARG...]");
  }
  if (!keep) {
    // One sandbox.run, whose sandbox is the command's and goes with it.
    return call_streamed(g, run_params(o, e, current_dir(), process_env()), read_input, "sandbox.run");
  }
  auto create = create_params(o, current_dir(), process_env(), false);
  if (!create.ok()) {
    return fail(create.error());
  }
  // The exec's params are checked before a sandbox exists; its id is filled in below.
  auto exec = exec_params("", argv, e, process_env());
  if (!exec.ok()) {
    return fail(exec.error());
  }
  if (auto in = add_input(*exec, read_input, g.json); !in.ok()) {
    return fail(in.error());
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  catch_signals();
  auto sandbox = client->call("sandbox.create", std::move(*create));
  if (!sandbox.ok()) {
    return fail(sandbox.error());
  }
  std::string id = sandbox_id(*sandbox);
  int status = 128 + g_signal;
  if (g_signal == 0) {
    (*exec)["id"] = id;
    status = stream_exec(*client, std::move(*exec), g.json);
  }
  warn(fmt::format("kept sandbox {}", id));
  return status;
}

int cmd_logs(const Globals& g, const std::string& id, bool follow, const std::string& tail) {
  json params = {{"id", id}};
  if (follow) {
    params["follow"] = true;
  }
  if (!tail.empty()) {
    auto n = parse_count("--tail", tail, 0);
    if (!n.ok()) {
      return fail(n.error());
    }
    params["tail"] = *n;
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  OutputRelay relay(*client, "logs.output");
  auto r = client->call("sandbox.logs", std::move(params), std::ref(relay));
  if (relay.stdout_broken()) {
    return 128 + SIGPIPE;
  }
  if (!r.ok()) {
    return fail(r.error());
  }
  return 0;
}

}  // namespace sbx::cli
