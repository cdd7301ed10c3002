#include <doctest/doctest.h>

#include "cli/args.h"

using namespace sbx;
using namespace sbx::cli;

namespace {

EnvLookup fake_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (name == "HOME") {
      return "/home/me";
    }
    return std::nullopt;
  };
}

}  // namespace

TEST_SUITE("cli.args") {

TEST_CASE("sizes take plain bytes and K/M/G/T suffixes, and errors name the option") {
  CHECK(*parse_size_option("--memory", "512M") == 512ull << 20);
  CHECK(*parse_size_option("--memory", "1G") == 1ull << 30);
  CHECK(*parse_size_option("--memory", "1.5G") == 3ull << 29);
  CHECK(*parse_size_option("--disk", "4096") == 4096);
  CHECK(*parse_size_option("--disk", "2Gi") == 2ull << 30);
  auto bad = parse_size_option("--memory", "5X");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().starts_with("--memory: invalid size '5X'"));
  CHECK_FALSE(parse_size_option("--memory", "").ok());
  CHECK_FALSE(parse_size_option("--memory", "-1M").ok());
}

TEST_CASE("cpus, counts and durations are checked before anything is sent") {
  CHECK(*parse_cpus("1.5") == 1.5);
  CHECK(*parse_cpus("2") == 2);
  CHECK(*parse_cpus(".5") == 0.5);
  CHECK_FALSE(parse_cpus("0").ok());
  CHECK_FALSE(parse_cpus("-1").ok());
  CHECK_FALSE(parse_cpus("1e3").ok());
  CHECK_FALSE(parse_cpus("one").ok());
  CHECK(parse_cpus("x").error().message() == "--cpus: 'x' is not a number of CPUs such as 0.5 or 2");

  CHECK(*parse_count("--pids", "100") == 100);
  CHECK_FALSE(parse_count("--pids", "0").ok());
  CHECK(*parse_count("--tail", "0", 0) == 0);
  CHECK_FALSE(parse_count("--pids", "12a").ok());
  CHECK_FALSE(parse_count("--pids", "99999999999").ok());

  CHECK(*parse_seconds("--ttl", "90", false) == 90);
  CHECK(*parse_seconds("--ttl", "10m", false) == 600);
  CHECK(*parse_seconds("--ttl", "2h", false) == 7200);
  CHECK(*parse_seconds("--ttl", "1d", false) == 86400);
  CHECK(*parse_seconds("--timeout", "1.5", true) == 1.5);
  CHECK(*parse_seconds("--timeout", "30s", true) == 30);
  CHECK_FALSE(parse_seconds("--ttl", "1.5", false).ok());
  CHECK_FALSE(parse_seconds("--ttl", "0", false).ok());
  CHECK_FALSE(parse_seconds("--ttl", "m", false).ok());
  CHECK_FALSE(parse_seconds("--ttl", "5w", false).ok());
}

TEST_CASE("a user is UID or UID:GID in numbers") {
  CHECK(*parse_user("1000") == "1000");
  CHECK(*parse_user("1000:100") == "1000:100");
  CHECK(*parse_user("0:0") == "0:0");
  CHECK_FALSE(parse_user("root").ok());
  CHECK_FALSE(parse_user("1000:").ok());
  CHECK_FALSE(parse_user(":100").ok());
  CHECK_FALSE(parse_user("").ok());
  CHECK(parse_user("bob").error().message().starts_with("--user: 'bob' is not UID[:GID]"));
}

TEST_CASE("labels become an object; a key alone has an empty value; the last repeat wins") {
  auto l = parse_labels({"app=web", "tier=", "flag", "app=db", "eq=a=b"});
  REQUIRE(l.ok());
  CHECK(*l == json{{"app", "db"}, {"tier", ""}, {"flag", ""}, {"eq", "a=b"}});
  CHECK_FALSE(parse_labels({"=x"}).ok());
  CHECK_FALSE(parse_labels({""}).ok());
}

TEST_CASE("env takes NAME=VALUE, and NAME alone passes the caller's value or nothing") {
  auto e = parse_env({"A=1", "HOME", "UNSET", "B=", "C=x=y"}, fake_env());
  REQUIRE(e.ok());
  CHECK(*e == json{"A=1", "HOME=/home/me", "B=", "C=x=y"});
  CHECK_FALSE(parse_env({"=1"}, fake_env()).ok());
}

TEST_CASE("mounts are SOURCE:DESTINATION[:ro|rw], read-only by default, with the source made absolute") {
  auto m = parse_mount("data:/data", "/home/me");
  REQUIRE(m.ok());
  CHECK(*m == json{{"source", "/home/me/data"}, {"destination", "/data"}, {"read_only", true}});
  CHECK((*parse_mount("/srv/x:/x:rw", "/"))["read_only"] == false);
  CHECK((*parse_mount("/srv/x:/x:ro", "/"))["read_only"] == true);
  CHECK((*parse_mount("../up:/x/./y/", "/a/b"))["source"] == "/a/up");
  CHECK((*parse_mount("../up:/x/./y/", "/a/b"))["destination"] == "/x/y");
  CHECK_FALSE(parse_mount("/srv", "/").ok());
  CHECK_FALSE(parse_mount("/srv:rel", "/").ok());
  CHECK_FALSE(parse_mount("/srv:/x:rx", "/").ok());
  CHECK_FALSE(parse_mount(":/x", "/").ok());
  CHECK_FALSE(parse_mount("/a:/b:ro:extra", "/").ok());
  CHECK(parse_mount("/srv:/x:rx", "/").error().message() ==
        "--mount: '/srv:/x:rx': unknown mode 'rx' (expected SOURCE:DESTINATION[:ro|rw])");
}

TEST_CASE("paths are made absolute and normalised lexically") {
  CHECK(absolute_path("x", "/a") == "/a/x");
  CHECK(absolute_path("./x/../y//z/", "/a") == "/a/y/z");
  CHECK(absolute_path("/..", "/a") == "/");
  CHECK(absolute_path(".", "/") == "/");
  CHECK(absolute_path("/abs", "/ignored") == "/abs");
}

TEST_CASE("create options translate to sandbox.create params, leaving out what was not given") {
  CreateOptions o;
  CHECK(*create_params(o, "/cwd", fake_env()) == json::object());
  o.name = "web";
  o.rootfs = "rootfs";
  o.labels = {"app=web"};
  o.memory = "512M";
  o.cpus = "1.5";
  o.pids = "64";
  o.disk = "1G";
  o.env = {"A=1"};
  o.mounts = {"/srv:/srv"};
  o.ttl = "1h";
  o.seccomp = "default";
  o.cwd = "/work";
  o.user = "1000:1000";
  o.hostname = "box";
  o.no_start = true;
  o.command = {"sleep", "100"};
  o.tenant = "t1";
  auto p = create_params(o, "/cwd", fake_env());
  REQUIRE(p.ok());
  json want = {{"name", "web"},
               {"rootfs", "/cwd/rootfs"},
               {"labels", {{"app", "web"}}},
               {"limits", {{"memory", 512ull << 20}, {"vcpus", 1.5}, {"pids", 64}, {"disk", 1ull << 30}}},
               {"env", {"A=1"}},
               {"mounts", {{{"source", "/srv"}, {"destination", "/srv"}, {"read_only", true}}}},
               {"ttl", 3600},
               {"seccomp", "default"},
               {"cwd", "/work"},
               {"user", "1000:1000"},
               {"hostname", "box"},
               {"cmd", {"sleep", "100"}},
               {"start", false},
               {"tenant", "t1"}};
  CHECK(*p == want);
  CHECK_FALSE((*create_params(o, "/cwd", fake_env(), false)).contains("cmd"));
}

TEST_CASE("network options make a bridge-mode object; a mode alone stays a string") {
  CreateOptions o;
  o.network = "none";
  CHECK((*create_params(o, "/cwd", fake_env()))["network"] == "none");
  o.network.clear();
  o.publish = {"8080:80"};
  o.allow_hosts = {"api.github.com"};
  o.allow_ports = {"443"};
  o.block_ports = {"25"};
  o.bandwidth = "1M";
  json n = (*create_params(o, "/cwd", fake_env()))["network"];
  CHECK(n == json{{"mode", "bridge"}, {"ports", {"8080:80"}}, {"allow_hosts", {"api.github.com"}},
                  {"allow_ports", {443}}, {"block_ports", {25}}, {"bandwidth", 1 << 20}});
  o.block_ports = {"smtp"};
  auto bad = create_params(o, "/cwd", fake_env());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().find("--block-port") != std::string::npos);
}

TEST_CASE("create refuses bad values with the option's name") {
  CreateOptions o;
  o.rootfs = "/r";
  o.image = "alpine";
  CHECK(create_params(o, "/", fake_env()).error().message() == "--rootfs and --image exclude each other");
  o.image.clear();
  o.cwd = "relative";
  CHECK(create_params(o, "/", fake_env()).error().message().starts_with("--cwd:"));
  o.cwd.clear();
  o.memory = "lots";
  CHECK(create_params(o, "/", fake_env()).error().message().starts_with("--memory:"));
  o.memory.clear();
  o.ttl = "soon";
  CHECK(create_params(o, "/", fake_env()).error().message().starts_with("--ttl:"));
}

TEST_CASE("an environment is NAME or NAME@VERSION, with VERSION a positive number") {
  CHECK(check_environment_ref("--environment", "py").ok());
  CHECK(check_environment_ref("--environment", "py@1").ok());
  CHECK(check_environment_ref("--environment", "py@12").ok());
  for (const char* bad : {"py@x", "py@", "@1", "", "py@0", "py@1@2", "py@-1", "py@1.5"}) {
    CHECK_FALSE_MESSAGE(check_environment_ref("--environment", bad).ok(), bad);
  }
  CHECK(check_environment_ref("--environment", "py@x").error().message() ==
        "--environment: 'py@x' is not NAME or NAME@VERSION (VERSION a number such as 2)");
  CHECK(check_environment_ref("", "py@x").error().message() ==
        "'py@x' is not NAME or NAME@VERSION (VERSION a number such as 2)");
}

TEST_CASE("create takes an image or an environment, an entrypoint ('' for none) and a network mode") {
  CreateOptions o;
  o.image = "sha256:abc";
  o.environment = "py@2";
  o.network = "none";
  o.entrypoint = "";
  o.command = {"-c", "1"};
  json p = *create_params(o, "/", fake_env());
  CHECK(p == json{{"image", "sha256:abc"}, {"environment", "py@2"}, {"entrypoint", json::array()},
                  {"network", "none"}, {"cmd", {"-c", "1"}}});
  o.entrypoint = "python3";
  CHECK((*create_params(o, "/", fake_env()))["entrypoint"] == json{"python3"});
  o.environment = "py@two";
  CHECK(create_params(o, "/", fake_env()).error().message().starts_with("--environment: 'py@two'"));
}

TEST_CASE("run's sandbox idles when it comes from an image or environment; --entrypoint goes before the command") {
  CreateOptions o;
  o.environment = "py";
  o.entrypoint = "python3";
  o.command = {"-c", "print(1)"};
  json p = *create_params(o, "/", fake_env(), false);
  CHECK(p == json{{"environment", "py"}, {"entrypoint", json::array()}});
  CHECK(run_argv(o) == std::vector<std::string>{"python3", "-c", "print(1)"});
  o.entrypoint = "";
  CHECK(run_argv(o) == std::vector<std::string>{"-c", "print(1)"});
  o.environment.clear();
  o.rootfs = "/r";
  CHECK_FALSE((*create_params(o, "/", fake_env(), false)).contains("entrypoint"));
  o.command.clear();
  CHECK(run_argv(o).empty());
}

TEST_CASE("run without --keep is one sandbox.run: the sandbox's params, argv, and the exec options' I/O") {
  CreateOptions o;
  o.image = "python";
  o.entrypoint = "python3";
  o.command = {"-c", "print(1)"};
  o.env = {"A=1"};
  o.cwd = "/work";
  ExecOptions e;
  e.timeout = "1.5";
  e.output_limit = "1K";
  e.stream = false;
  json p = *run_params(o, e, "/", fake_env());
  CHECK(p == json{{"image", "python"},
                  {"env", {"A=1"}},
                  {"cwd", "/work"},
                  {"argv", {"python3", "-c", "print(1)"}},
                  {"timeout", 1.5},
                  {"output_limit", 1024},
                  {"stream", false}});
  o.command.clear();
  o.entrypoint.reset();
  CHECK_FALSE(run_params(o, e, "/", fake_env()).ok());  // no command
  e.timeout = "soon";
  o.command = {"true"};
  CHECK(run_params(o, e, "/", fake_env()).error().message().starts_with("--timeout"));
}

TEST_CASE("exec options translate to sandbox.exec params") {
  ExecOptions e;
  CHECK(*exec_params("box", {"ls", "-l"}, e, fake_env()) == json{{"id", "box"}, {"argv", {"ls", "-l"}}});
  e.env = {"X=1", "HOME"};
  e.cwd = "/tmp";
  e.user = "1000";
  e.timeout = "2.5";
  e.output_limit = "1M";
  e.stream = false;
  json want = {{"id", "box"}, {"argv", {"sh"}},        {"env", {"X=1", "HOME=/home/me"}}, {"cwd", "/tmp"},
               {"user", "1000"}, {"timeout", 2.5},     {"output_limit", 1 << 20},           {"stream", false}};
  CHECK(*exec_params("box", {"sh"}, e, fake_env()) == want);
  e.timeout = "2m";
  CHECK((*exec_params("box", {"sh"}, e, fake_env()))["timeout"] == 120);
  CHECK((*exec_params("box", {"sh"}, e, fake_env()))["timeout"].is_number_integer());
  CHECK_FALSE(exec_params("box", {}, e, fake_env()).ok());
  e.timeout = "never";
  CHECK(exec_params("box", {"sh"}, e, fake_env()).error().message().starts_with("--timeout:"));
}

TEST_CASE("label selectors match KEY=VALUE exactly and KEY with any value") {
  json labels = {{"app", "web"}, {"tier", ""}};
  CHECK(label_matches(labels, "app=web"));
  CHECK(label_matches(labels, "app"));
  CHECK(label_matches(labels, "tier="));
  CHECK(label_matches(labels, "tier"));
  CHECK_FALSE(label_matches(labels, "app=db"));
  CHECK_FALSE(label_matches(labels, "app="));
  CHECK_FALSE(label_matches(labels, "env"));
  CHECK_FALSE(label_matches(nullptr, "app"));
}

TEST_CASE("a trailing command loses the '--' that separated it") {
  CHECK(trailing_command({"--", "ls", "--", "-l"}) == std::vector<std::string>{"ls", "--", "-l"});
  CHECK(trailing_command({"ls"}) == std::vector<std::string>{"ls"});
  CHECK(trailing_command({}).empty());
}

TEST_CASE("an exec's end maps to a shell's exit status, with notes") {
  CHECK(exec_status({{"exit_code", 3}, {"signal", nullptr}}, 0).exit_code == 3);
  CHECK(exec_status({{"exit_code", 0}}, 0).notes.empty());
  CHECK(exec_status({{"exit_code", nullptr}, {"signal", 9}}, 0).exit_code == 137);
  CHECK(exec_status({{"exit_code", nullptr}, {"signal", 15}}, 0).exit_code == 143);
  auto t = exec_status({{"exit_code", nullptr}, {"signal", 9}, {"timed_out", true}}, 1.5);
  CHECK(t.exit_code == 124);
  REQUIRE(t.notes.size() == 1);
  CHECK(t.notes[0] == "the command timed out after 1.5s and was killed");
  auto oom = exec_status({{"signal", 9}, {"oom_killed", true}, {"truncated", true}}, 0);
  CHECK(oom.exit_code == 137);
  CHECK(oom.notes.size() == 2);
  CHECK(exec_status(json::array(), 0).exit_code == 125);
  CHECK(exec_status(json::object(), 0).exit_code == 125);
}

TEST_CASE("a command that cannot start exits 127 when missing and 126 when not executable") {
  CHECK(exec_error_status(-32005, {{"errno", ENOENT}, {"errname", "ENOENT"}}) == 127);
  CHECK(exec_error_status(-32005, {{"errno", EACCES}}) == 126);
  CHECK(exec_error_status(-32005, {{"errno", ENOEXEC}}) == 126);
  CHECK(exec_error_status(-32005, {{"errno", ENOMEM}}) == 125);
  CHECK(exec_error_status(-32000, {{"errno", ENOENT}}) == 125);  // no such sandbox
  CHECK(exec_error_status(-32002, nullptr) == 125);
}

TEST_CASE("cp operands: SANDBOX:PATH is in a sandbox, anything starting with / or . is on the host") {
  CHECK(parse_cp_target("box:/etc/passwd").sandbox == "box");
  CHECK(parse_cp_target("box:/etc/passwd").path == "/etc/passwd");
  CHECK(parse_cp_target("box:tmp/x").path == "/tmp/x");
  CHECK(parse_cp_target("box:/tmp/").path == "/tmp/");
  CHECK(parse_cp_target("box:/").path == "/");
  CHECK(parse_cp_target("./a:b").sandbox.empty());
  CHECK(parse_cp_target("/a:b").sandbox.empty());
  CHECK(parse_cp_target("file").sandbox.empty());
  CHECK(parse_cp_target("-").sandbox.empty());
  CHECK(parse_cp_target(":x").sandbox.empty());
}

TEST_CASE("path pieces") {
  CHECK(base_name("/a/b") == "b");
  CHECK(base_name("/a/b/") == "b");
  CHECK(base_name("b") == "b");
  CHECK(base_name("/") == "");
  CHECK(dir_name("/a/b") == "/a");
  CHECK(dir_name("/a") == "/");
  CHECK(dir_name("/a/b/") == "/a");
  CHECK(join_path("/", "x") == "/x");
  CHECK(join_path("/a", "x") == "/a/x");
}

}  // TEST_SUITE

TEST_SUITE("cli.args.security") {

TEST_CASE("--read-only, --cap-drop, --cap-add, --device and --userns become create params") {
  CreateOptions o;
  o.read_only = true;
  o.cap_drop = {"ALL"};
  o.cap_add = {"CAP_NET_BIND_SERVICE"};
  o.devices = {"vendor.com/gpu=0"};
  o.userns = "host";
  json p = *create_params(o, "/cwd", fake_env());
  CHECK(p["read_only"] == true);
  CHECK(p["cap_drop"] == json{"ALL"});
  CHECK(p["cap_add"] == json{"CAP_NET_BIND_SERVICE"});
  CHECK(p["devices"] == json{"vendor.com/gpu=0"});
  CHECK(p["userns"] == false);
  o.userns = "private";
  CHECK((*create_params(o, "/cwd", fake_env()))["userns"] == true);
  o.userns = "shared";
  auto bad = create_params(o, "/cwd", fake_env());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message().find("--userns") == 0);
  CHECK_FALSE(create_params(CreateOptions{}, "/cwd", fake_env())->contains("userns"));
}

}  // TEST_SUITE
