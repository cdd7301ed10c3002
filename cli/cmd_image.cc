// image import, build, ls, inspect and rm: the daemon's image store.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "api/protocol.h"
#include "base/file.h"
#include "cli/commands.h"
#include "cli/format.h"

#ifndef SBX_LIBEXECDIR
#define SBX_LIBEXECDIR "/usr/local/libexec/sbx"
#endif

extern char** environ;

namespace sbx::cli {

namespace {

using Clock = std::chrono::steady_clock;

// image.progress on stderr: one line redrawn in place on a terminal, a line every few seconds (and at each new
// phase) otherwise, nothing when quiet. Until the daemon reports the upload itself, sbxctl's own count of bytes
// sent stands in for it.
class ProgressPrinter {
 public:
  ProgressPrinter(bool quiet, uint64_t upload_total)
      : quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1), upload_total_(upload_total) {}

  void operator()(const std::string& method, const json& params) {
    if (method != "image.progress" || !params.is_object()) {
      return;
    }
    json p = params;
    if (string_member(p, "phase") == "upload") {
      daemon_counts_upload_ = true;
      if (!member(p, "total").is_number() || member(p, "total") == json(0)) {
        p["total"] = upload_total_;
      }
    }
    show(p);
  }

  // Bytes of a streamed import sent so far.
  void sent(uint64_t bytes) {
    if (!daemon_counts_upload_) {
      show({{"phase", "upload"}, {"bytes", bytes}, {"total", upload_total_}});
    }
  }

  // Ends a line redrawn in place.
  void finish() {
    if (drawn_) {
      std::fputs("\n", stderr);
      drawn_ = false;
    }
  }

 private:
  void show(const json& p) {
    if (quiet_) {
      return;
    }
    auto now = Clock::now();
    std::string phase = string_member(p, "phase");
    bool new_phase = phase != phase_;
    if (new_phase) {
      phase_ = phase;
      phase_start_ = now;
    }
    auto interval = tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000);
    if (!new_phase && now - last_shown_ < interval) {
      return;
    }
    last_shown_ = now;
    double secs = std::chrono::duration<double>(now - phase_start_).count();
    const json& bytes = member(p, "bytes");
    double rate = secs >= 0.5 && bytes.is_number() ? bytes.get<double>() / secs : -1;
    std::string line = format_progress(p, rate);
    if (tty_) {
      std::fprintf(stderr, "\r%s\033[K", line.c_str());
      drawn_ = true;
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

  bool quiet_;
  bool tty_;
  uint64_t upload_total_;
  bool daemon_counts_upload_ = false;
  bool drawn_ = false;
  std::string phase_;
  Clock::time_point phase_start_;
  Clock::time_point last_shown_;
};

// The image.data notifications of a streamed import: the source's bytes in chunks, then eof.
class Upload {
 public:
  Upload(int fd, ProgressPrinter& progress) : fd_(fd), progress_(progress) {}

  Result<std::optional<api::Notification>> operator()(uint64_t request_id) {
    if (done_) {
      return std::optional<api::Notification>();
    }
    SBX_ASSIGN(std::string chunk, read_chunk());
    json params = {{"request_id", request_id}};
    if (chunk.empty()) {
      params["eof"] = true;
      done_ = true;
    } else {
      params["data_b64"] = api::base64_encode(chunk);
      sent_ += chunk.size();
      progress_.sent(sent_);
    }
    return std::optional<api::Notification>(api::Notification{"image.data", std::move(params)});
  }

 private:
  // Up to kImportChunkBytes; shorter only at the end of the source.
  Result<std::string> read_chunk() {
    std::string buf(kImportChunkBytes, '\0');
    size_t have = 0;
    while (have < buf.size()) {
      ssize_t n = ::read(fd_, buf.data() + have, buf.size() - have);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return sys_error("read the image to import");
      }
      if (n == 0) {
        break;
      }
      have += static_cast<size_t>(n);
    }
    buf.resize(have);
    return buf;
  }

  int fd_;
  ProgressPrinter& progress_;
  bool done_ = false;
  uint64_t sent_ = 0;
};

// The source to stream: stdin for "-", else the opened file. Directories are refused by import_mode() before.
Result<Fd> open_source(const std::string& source) {
  if (source == "-") {
    return Fd(::dup(STDIN_FILENO));
  }
  return open_at(AT_FDCWD, source, O_RDONLY | O_CLOEXEC);
}

Result<json> stream_import(api::Client& client, const ImportOptions& o, json params) {
  SBX_ASSIGN(Fd fd, open_source(o.source));
  struct stat st {};
  uint64_t total = ::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  ProgressPrinter progress(o.quiet, total);
  Upload upload(fd.get(), progress);
  auto r = client.call_with_upload("image.import", std::move(params), std::ref(upload), std::ref(progress));
  progress.finish();
  return r;
}

// image.import in the mode the options and the caller allow; the image object.
Result<json> import_image(const Globals& g, const ImportOptions& o) {
  bool is_dir = false;
  if (o.source != "-") {
    struct stat st {};
    if (::stat(o.source.c_str(), &st) != 0) {
      return sys_error("'{}'", o.source);
    }
    is_dir = S_ISDIR(st.st_mode);
  }
  SBX_ASSIGN(ImportMode mode, import_mode(o, ::geteuid() == 0, is_dir));
  json params = import_params(o, mode, current_dir());
  SBX_ASSIGN(api::Client client, connect(g));
  if (mode == ImportMode::kStream) {
    return stream_import(client, o, std::move(params));
  }
  ProgressPrinter progress(o.quiet, 0);
  auto r = client.call("image.import", std::move(params), std::ref(progress));
  progress.finish();
  return r;
}

int print_image(const Globals& g, const json& image) {
  if (g.json) {
    print_json(image);
  } else {
    print_text(string_member(image, "id") + "\n");
  }
  return 0;
}

// The directory for the builder's output: $TMPDIR, else /var/tmp (images can be too big for a tmpfs /tmp).
Result<std::string> make_build_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && base[0] != '\0' ? base : "/var/tmp") + "/sbx-build-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return sys_error("create a directory for the image builder's output in '{}'", dir_name(tmpl));
  }
  return tmpl;
}

// Runs the builder with its stdout on our stderr (our stdout is for the image id); its status.
Result<void> run_builder(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  // Ctrl-C goes to the builder (same process group); sbxctl waits for it and then cleans up.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGQUIT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  auto old_int = ::signal(SIGINT, SIG_IGN);
  auto old_quit = ::signal(SIGQUIT, SIG_IGN);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  int status = 0;
  while (rc == 0 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::signal(SIGINT, old_int);
  ::signal(SIGQUIT, old_quit);
  if (rc != 0) {
    return Error::from_errno(fmt::format("run the image builder '{}'", argv[0]), rc);
  }
  if (WIFSIGNALED(status)) {
    return make_error("the image builder '{}' was killed by signal {}", argv[0], WTERMSIG(status));
  }
  if (WEXITSTATUS(status) != 0) {
    return make_error("the image builder '{}' failed (exit status {}); see its messages above", argv[0],
                      WEXITSTATUS(status));
  }
  return ok();
}

Result<json> build_and_import(const Globals& g, const BuildOptions& o, const std::string& builder) {
  // Fail before a long build when the daemon is not there.
  SBX_TRY(connect(g));
  SBX_ASSIGN(std::string dir, make_build_dir());
  std::string output = dir + "/image.tar.zst";
  auto built = run_builder(build_argv(builder, o, output));
  Result<json> r = built.ok() ? Result<json>(json()) : Result<json>(std::move(built).error());
  if (r.ok()) {
    ImportOptions im;
    im.source = output;
    im.name = o.name.empty() ? default_image_name(o.definition) : o.name;
    im.replace = true;
    im.quiet = o.quiet;
    r = import_image(g, im);
  }
  if (auto rm = remove_tree(dir); !rm.ok()) {
    warn(fmt::format("remove the builder's output: {}", rm.error().message()));
  }
  return r;
}

std::string images_table(const json& images) {
  Table t({"NAME", "ID", "SIZE", "LAYERS", "FORMAT", "CREATED"});
  int64_t now = api::now_ms();
  for (const auto& im : images) {
    const json& layers = member(im, "layers");
    t.add_row({field(im, "name"), short_image_id(string_member(im, "id")), size_field(member(im, "size")),
               layers.is_array() ? std::to_string(layers.size()) : "-", field(im, "format"),
               ago_field(im, "created_at", now)});
  }
  return t.render();
}

}  // namespace

int cmd_image_import(const Globals& g, const ImportOptions& o) {
  auto r = import_image(g, o);
  if (!r.ok()) {
    return fail(r.error());
  }
  return print_image(g, *r);
}

int cmd_image_build(const Globals& g, const BuildOptions& o) {
  if (::geteuid() != 0) {
    return fail("image build needs root: the image builder (sbx-build-image) mounts file systems and runs a "
                "package manager in a chroot; run it as root, e.g. sudo sbxctl image build " + o.definition);
  }
  std::string builder = builder_path(process_env(), SBX_LIBEXECDIR "/sbx-build-image");
  if (::access(builder.c_str(), X_OK) != 0) {
    return fail(fmt::format("cannot run the image builder '{}': {} (set $SBX_BUILD_IMAGE to its path)", builder,
                            errno_name(errno)));
  }
  auto r = build_and_import(g, o, builder);
  if (!r.ok()) {
    return fail(r.error());
  }
  return print_image(g, *r);
}

int cmd_image_ls(const Globals& g, bool quiet) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  auto r = client->call("image.list");
  if (!r.ok()) {
    return fail(r.error());
  }
  const json& images = member(*r, "images");
  if (g.json) {
    print_json(*r);
  } else if (quiet) {
    std::string out;
    for (const auto& im : images) {
      std::string name = string_member(im, "name");
      out += (name.empty() ? string_member(im, "id") : name) + "\n";
    }
    print_text(out);
  } else {
    print_text(images_table(images.is_array() ? images : json::array()));
  }
  return 0;
}

int cmd_image_inspect(const Globals& g, const std::vector<std::string>& names) {
  return inspect_each(g, "image.inspect", "image", names);
}

int cmd_image_rm(const Globals& g, const std::vector<std::string>& names) {
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  json results = json::array();
  int status = 0;
  for (const auto& name : names) {
    auto r = client->call("image.remove", {{"image", name}});
    if (!r.ok()) {
      status = fail(r.error());
      continue;
    }
    if (g.json) {
      results.push_back({{"image", name}, {"freed_bytes", member(*r, "freed_bytes")}});
    } else {
      print_text(fmt::format("{}: {} freed\n", name, size_field(member(*r, "freed_bytes"))));
    }
  }
  if (g.json && !results.empty()) {
    print_json(names.size() == 1 ? results[0] : results);
  }
  return status;
}

}  // namespace sbx::cli
