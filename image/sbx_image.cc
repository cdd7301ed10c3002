// sbx-image: imports a container image into sbx's layer store, in a process of its own so that parsing untrusted
// archives never runs inside sbxd. JSON lines on stdout: progress (at most 10 a second), then "done" or "error".
#include <clocale>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

#include <sys/stat.h>

#include "base/file.h"
#include "image/import.h"

namespace {

using sbx::Error;
using sbx::Result;
using sbx::image::ImportOptions;
using nlohmann::json;

constexpr char kUsage[] =
    "usage: sbx-image import --source PATH --store DIR --work DIR [--ref NAME]\n"
    "                        [--max-entries N] [--max-bytes N] [--max-archive-bytes N]\n"
    "       sbx-image --help\n"
    "\n"
    "Imports an OCI image archive, a docker-save archive, a root filesystem tarball (uncompressed, gzip, bzip2, xz\n"
    "or zstd) or a directory into the layer store DIR: each layer ends up in DIR/<hex of its diff_id>, unpacked\n"
    "under the (empty, private) work directory and verified first. Writes JSON lines to stdout: progress events,\n"
    "then {\"event\":\"done\",...} (exit 0) or {\"event\":\"error\",\"message\":...} (exit 1).\n"
    "\n"
    "  --source PATH            an archive (regular file) or a directory (imported as one layer)\n"
    "  --store DIR              the layer store\n"
    "  --work DIR               an empty directory on the store's file system, private to this import\n"
    "  --ref NAME               the image to take from an archive that holds several\n"
    "  --max-entries N          archive entries in all layers (default 300000)\n"
    "  --max-bytes N            uncompressed file content in all layers (default 34359738368, 32 GiB)\n"
    "  --max-archive-bytes N    bytes read from the source (default 68719476736, 64 GiB)\n";

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void emit(const json& j) {
  std::string line = dump(j) + "\n";
  (void)sbx::write_all(STDOUT_FILENO, line);
}

int fail(const Error& e) {
  emit(json{{"event", "error"}, {"message", e.message()}});
  std::fprintf(stderr, "sbx-image: %s\n", e.message().c_str());
  return 1;
}

Result<uint64_t> parse_limit(std::string_view name, const std::string& value) {
  auto v = sbx::parse_u64(value);
  if (!v.ok() || *v == 0) {
    return sbx::make_error("{}: '{}' is not a positive integer", name, value);
  }
  return *v;
}

// Sets the option `name` (without its value's "=") from `value`.
Result<void> set_option(ImportOptions& o, std::string_view name, const std::string& value) {
  if (name == "--source") {
    o.source = value;
  } else if (name == "--store") {
    o.store = value;
  } else if (name == "--work") {
    o.work = value;
  } else if (name == "--ref") {
    o.ref = value;
  } else if (name == "--max-entries") {
    SBX_ASSIGN(o.limits.max_entries, parse_limit(name, value));
  } else if (name == "--max-bytes") {
    SBX_ASSIGN(o.limits.max_bytes, parse_limit(name, value));
  } else if (name == "--max-archive-bytes") {
    SBX_ASSIGN(o.limits.max_archive_bytes, parse_limit(name, value));
  } else {
    return sbx::make_error("unknown option '{}' (see sbx-image --help)", name);
  }
  return sbx::ok();
}

// `import` and its options, each as "--name VALUE" or "--name=VALUE".
Result<ImportOptions> parse_import_args(int argc, char** argv) {
  ImportOptions o;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      return sbx::make_error("unexpected argument '{}' (see sbx-image --help)", arg);
    }
    std::string value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return sbx::make_error("option '{}' needs a value", arg);
    }
    SBX_TRY(set_option(o, arg, value));
  }
  for (auto [name, value] : {std::pair{"--source", &o.source}, {"--store", &o.store}, {"--work", &o.work}}) {
    if (value->empty()) {
      return sbx::make_error("missing {} (see sbx-image --help)", name);
    }
  }
  return o;
}

// Progress lines, at most one per 100 ms.
class ProgressPrinter {
 public:
  void operator()(const sbx::image::Progress& p) {
    struct timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
    if (last_ms_ >= 0 && ms - last_ms_ < 100) {
      return;
    }
    last_ms_ = ms;
    emit(json{{"event", "progress"},
              {"phase", std::string(p.phase)},
              {"layer", p.layer},
              {"layers", p.layers},
              {"bytes", p.bytes},
              {"total", p.total}});
  }

 private:
  int64_t last_ms_ = -1;
};

}  // namespace

int main(int argc, char** argv) {
  // Archive names in pax headers are UTF-8; in a UTF-8 locale libarchive hands them over unconverted.
  std::setlocale(LC_CTYPE, "C.UTF-8");
  std::signal(SIGPIPE, SIG_IGN);
  ::umask(022);
  std::string_view command = argc >= 2 ? argv[1] : "";
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command != "import") {
    return fail(sbx::make_error("{} (see sbx-image --help)",
                                command.empty() ? "missing command" : fmt::format("unknown command '{}'", command)));
  }
  auto options = parse_import_args(argc, argv);
  if (!options.ok()) {
    return fail(options.error());
  }
  ProgressPrinter printer;
  auto result = sbx::image::import_image(*options, [&](const sbx::image::Progress& p) { printer(p); });
  if (!result.ok()) {
    return fail(result.error());
  }
  emit(sbx::image::result_to_json(*result));
  return 0;
}
