#include <doctest/doctest.h>

#include "cli/image_args.h"

using namespace sbx;
using namespace sbx::cli;

namespace {

EnvLookup fake_env(std::optional<std::string> build_image = std::nullopt) {
  return [build_image](const std::string& name) -> std::optional<std::string> {
    if (name == "HOME") {
      return "/home/me";
    }
    if (name == "SBX_BUILD_IMAGE") {
      return build_image;
    }
    return std::nullopt;
  };
}

ImportOptions import_of(std::string source) {
  ImportOptions o;
  o.source = std::move(source);
  o.name = "py";
  return o;
}

}  // namespace

TEST_SUITE("cli.image_args") {

TEST_CASE("root imports a path by path, everyone else and stdin and --stream by streaming") {
  CHECK(*import_mode(import_of("a.tar"), true, false) == ImportMode::kPath);
  CHECK(*import_mode(import_of("dir"), true, true) == ImportMode::kPath);
  CHECK(*import_mode(import_of("-"), true, false) == ImportMode::kStream);
  CHECK(*import_mode(import_of("a.tar"), false, false) == ImportMode::kStream);
  ImportOptions o = import_of("a.tar");
  o.stream = true;
  CHECK(*import_mode(o, true, false) == ImportMode::kStream);
}

TEST_CASE("a directory cannot be streamed, and the error says how to tar it") {
  auto r = import_mode(import_of("rootfs"), false, true);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("'rootfs' is a directory, which cannot be streamed") == 0);
  CHECK(r.error().message().find("tar -C rootfs -cf - . | sbxctl image import - --name py") != std::string::npos);
  ImportOptions o = import_of("rootfs");
  o.stream = true;
  CHECK_FALSE(import_mode(o, true, true).ok());
}

TEST_CASE("import params: an absolute source in path mode, stream in stream mode, the rest only when given") {
  ImportOptions o = import_of("imgs/../py.tar");
  CHECK(import_params(o, ImportMode::kPath, "/home/me") == json{{"name", "py"}, {"source", "/home/me/py.tar"}});
  CHECK(import_params(o, ImportMode::kStream, "/home/me") == json{{"name", "py"}, {"stream", true}});
  o.ref = "python:3.12";
  o.replace = true;
  o.quiet = true;
  json p = import_params(o, ImportMode::kStream, "/");
  CHECK(p["ref"] == "python:3.12");
  CHECK(p["replace"] == true);
  CHECK(p["progress"] == false);
}

TEST_CASE("image build runs the builder with the definition, an output file and the options given") {
  BuildOptions o;
  o.definition = "defs/python.toml";
  CHECK(build_argv("/b", o, "/tmp/x/image.tar") ==
        std::vector<std::string>{"/b", "defs/python.toml", "--output", "/tmp/x/image.tar"});
  o.cache = "/var/cache/sbx";
  o.sources = {"a.list", "b.list"};
  o.quiet = true;
  CHECK(build_argv("/b", o, "/o") == std::vector<std::string>{"/b", "defs/python.toml", "--output", "/o", "--cache",
                                                              "/var/cache/sbx", "--sources", "a.list", "--sources",
                                                              "b.list", "--quiet"});
  CHECK(default_image_name("defs/python.toml") == "python");
  CHECK(default_image_name("python") == "python");
  CHECK(default_image_name("./py-3.12") == "py-3");
}

TEST_CASE("the builder is $SBX_BUILD_IMAGE when set and not empty, else the installed one") {
  CHECK(builder_path(fake_env(), "/usr/libexec/sbx/sbx-build-image") == "/usr/libexec/sbx/sbx-build-image");
  CHECK(builder_path(fake_env("/src/sbx-build-image"), "/i") == "/src/sbx-build-image");
  CHECK(builder_path(fake_env(""), "/i") == "/i");
}

TEST_CASE("env create needs an image and sends only what was given") {
  EnvironmentOptions o;
  o.name = "py";
  auto missing = environment_params(o, fake_env(), nullptr);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message().starts_with("--image: required"));
  o.image = "python";
  CHECK(*environment_params(o, fake_env(), nullptr) == json{{"name", "py"}, {"image", "python"}});
  o.memory = "256M";
  o.cpus = "1.5";
  o.env = {"A=1", "HOME"};
  o.seccomp = "default";
  o.network = "none";
  o.ttl = "1h";
  o.description = "";
  json p = *environment_params(o, fake_env(), nullptr);
  CHECK(p["limits"] == json{{"memory", 256ull << 20}, {"vcpus", 1.5}});
  CHECK(p["env"] == json{"A=1", "HOME=/home/me"});
  CHECK(p["seccomp"] == "default");
  CHECK(p["network"] == "none");
  CHECK(p["ttl"] == 3600);
  CHECK(p["description"] == "");
  o.ttl = "0";
  CHECK((*environment_params(o, fake_env(), nullptr))["ttl"] == 0);
}

TEST_CASE("env update keeps the previous version's limits that are not given") {
  EnvironmentOptions o;
  o.name = "py";
  json previous = {{"name", "py"}, {"limits", {{"memory", 1024}, {"vcpus", 2}, {"pids", nullptr}}}};
  CHECK(*environment_params(o, fake_env(), previous) == json{{"name", "py"}});
  o.memory = "2048";
  CHECK((*environment_params(o, fake_env(), previous))["limits"] == json{{"memory", 2048}, {"vcpus", 2}});
  CHECK((*environment_params(o, fake_env(), json::object()))["limits"] == json{{"memory", 2048}});
}

TEST_CASE("env options are checked with the option's name") {
  EnvironmentOptions o;
  o.name = "py";
  o.image = "python";
  o.memory = "lots";
  CHECK(environment_params(o, fake_env(), nullptr).error().message().starts_with("--memory: invalid size 'lots'"));
  o.memory.clear();
  o.ttl = "-1";
  CHECK(environment_params(o, fake_env(), nullptr).error().message().starts_with("--ttl: "));
}

}  // TEST_SUITE
