#pragma once
// sbxctl's pure part for images and environments: `image import|build` and `env create|update` options ->
// JSON-RPC params and argv. No I/O; unit-tested in tests/unit/cli_image_args_test.cc.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/args.h"

namespace sbx::cli {

struct ImportOptions {
  std::string source;  // a file or directory; "-" for stdin
  std::string name;
  std::string ref;
  bool replace = false;
  bool stream = false;
  bool quiet = false;
};

// Path mode: the daemon opens the source itself (root only). Stream mode: sbxctl sends its bytes over the
// connection (image.data notifications).
enum class ImportMode { kPath, kStream };

// Path mode when the caller is root, the source is not stdin and --stream was not given; otherwise stream,
// which a directory cannot be (the error says how to tar it).
Result<ImportMode> import_mode(const ImportOptions& o, bool root, bool source_is_dir);

// Params of image.import; `source` (made absolute) in path mode, `stream: true` otherwise.
json import_params(const ImportOptions& o, ImportMode mode, const std::string& cwd);

// At most this many raw bytes in one image.data notification.
inline constexpr size_t kImportChunkBytes = size_t{1} << 20;

struct BuildOptions {
  std::string definition;  // a name the builder knows (its images/NAME.conf)
  std::string name;        // default: from the definition
  std::string cache;
  std::vector<std::string> sources;
  bool quiet = false;
};

// The image name `image build DEF` uses without --name: DEF's last path component without its extension.
std::string default_image_name(std::string_view definition);
// sbx-build-image DEF --output OUTPUT [--cache DIR] [--sources FILE]... [--quiet]
std::vector<std::string> build_argv(const std::string& builder, const BuildOptions& o, const std::string& output);
// The builder to run: $SBX_BUILD_IMAGE when set and not empty, else the installed one.
std::string builder_path(const EnvLookup& lookup, const std::string& installed);

// What `env create` and `env update` take.
struct EnvironmentOptions {
  std::string name;
  std::string image;
  std::string memory;
  std::string cpus;
  std::string pids;
  std::string disk;
  std::vector<std::string> env;
  std::string seccomp;
  std::string network;
  std::string ttl;  // seconds, or with s/m/h/d; 0: none
  std::optional<bool> read_only;
  std::vector<std::string> cap_drop;
  std::vector<std::string> devices;
  std::string userns;  // "", "private" or "host"
  std::optional<std::string> description;
};

// Params of environment.create (`previous` null) or environment.update. For an update, the limits given are
// put over `previous`'s (the latest version: a limit not given is kept), since the daemon replaces them whole.
Result<json> environment_params(const EnvironmentOptions& o, const EnvLookup& lookup, const json& previous);

}  // namespace sbx::cli
