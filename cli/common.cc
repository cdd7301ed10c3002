// What every sbxctl command shares: reporting errors, connecting, printing.
#include <unistd.h>

#include <cstdio>

#include "base/file.h"
#include "cli/commands.h"

namespace sbx::cli {

int fail(const Error& error) {
  return fail(error.message());
}

int fail(std::string_view message) {
  std::fflush(stdout);
  std::fprintf(stderr, "sbxctl: %.*s\n", static_cast<int>(message.size()), message.data());
  return kExitError;
}

void warn(std::string_view message) {
  std::fflush(stdout);
  std::fprintf(stderr, "sbxctl: %.*s\n", static_cast<int>(message.size()), message.data());
}

Result<api::Client> connect(const Globals& g) {
  SBX_ASSIGN(api::Client client, api::Client::connect(g.socket.empty() ? api::default_socket_path() : g.socket));
  client.set_tenant(g.tenant);
  return client;
}

void print_json(const json& value) {
  print_text(value.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

void print_text(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

Result<void> write_out(int fd, std::string_view data) {
  if (fd == STDOUT_FILENO) {
    std::fflush(stdout);
  }
  return write_all(fd, data);
}

std::string current_dir() {
  char buf[4096];
  if (::getcwd(buf, sizeof buf) == nullptr) {
    return "/";
  }
  return buf;
}

Result<std::string> read_stdin() {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sys_error("read standard input");
    }
    if (n == 0) {
      return data;
    }
    data.append(buf, static_cast<size_t>(n));
  }
}

std::string sandbox_id(const json& sandbox) {
  if (sandbox.is_object()) {
    auto it = sandbox.find("id");
    if (it != sandbox.end() && it->is_string()) {
      return it->get<std::string>();
    }
  }
  return "";
}

int inspect_each(const Globals& g, const std::string& method, const char* key, const std::vector<std::string>& names) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  json found = json::array();
  int status = 0;
  for (const auto& name : names) {
    auto r = client->call(method, {{key, name}});
    if (!r.ok()) {
      status = fail(r.error());
      continue;
    }
    found.push_back(std::move(*r));
  }
  if (names.size() == 1 && found.size() == 1) {
    print_json(found[0]);
  } else if (!found.empty()) {
    print_json(found);
  }
  return status;
}

}  // namespace sbx::cli
