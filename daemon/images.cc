// image.* methods: imports run by `sbx-image import` children (archives are parsed outside the daemon, and the loop
// never waits on them), the image table, and the garbage collector of the layer store.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <set>

#include "base/file.h"
#include "daemon/daemon.h"
#include "daemon/image_spec.h"
#include "daemon/log.h"

namespace sbx::daemon {

namespace {

constexpr size_t kMaxToolLine = 4 << 20;  // the done line carries the image config

bool may_manage_images(const Caller& caller) { return caller.role == Role::kRoot || caller.role == Role::kTrusted; }

Error not_allowed(const Caller& caller, std::string_view what) {
  return api::api_error(api::kPermissionDenied, "uid {} may not {} (root and trusted callers only)", caller.uid,
                        what);
}

// Removes a directory tree on libuv's thread pool: a layer can hold tens of thousands of files.
void remove_tree_in_background(uv_loop_t* loop, std::string path) {
  struct Work {
    uv_work_t req;
    std::string path;
    Result<void> result = ok();
  };
  auto* w = new Work{{}, std::move(path)};
  w->req.data = w;
  uv_queue_work(
      loop, &w->req, [](uv_work_t* r) { static_cast<Work*>(r->data)->result = remove_tree(static_cast<Work*>(r->data)->path); },
      [](uv_work_t* r, int) {
        auto* w = static_cast<Work*>(r->data);
        if (!w->result.ok()) {
          log_warn("remove {}: {}", w->path, w->result.error().message());
        }
        delete w;
      });
}

}  // namespace

// One import: an optional upload (image.data notifications into <work>/upload), then an `sbx-image import` child
// whose JSON lines become progress notifications and, at the end, the image row. Owned by Daemon::imports_.
class ImageImport {
 public:
  ImageImport(Daemon& d, CallPtr call, uint64_t token, std::string name)
      : d_(d), call_(std::move(call)), token_(token), name_(std::move(name)),
        work_(d.config().state_dir + "/images/tmp/" + new_id()) {}

  ~ImageImport() {
    if (watch_) {
      (void)watch_->signal(SIGKILL);
      d_.reap_later(std::move(watch_));
    }
    if (auto conn = call_->connection(); conn && close_token_ != 0) {
      conn->remove_hook(close_token_);
    }
    remove_tree_in_background(d_.loop(), work_);
  }

  const std::string& name() const { return name_; }
  // Matches an image.data notification to this import: same connection, same request id.
  bool takes(const Call& data) const {
    return uploading_ && data.connection() == call_->connection() &&
           data.params()["request_id"] == call_->id();
  }

  Result<void> begin() {
    const json& p = call_->params();
    SBX_TRY(make_dirs(work_ + "/unpack", 0700));
    if (auto conn = call_->connection()) {
      close_token_ = conn->on_close([this] { finish(make_error("the client went away")); });
    }
    if (p.value("stream", false)) {
      source_ = "stream";
      SBX_ASSIGN(upload_, open_at(AT_FDCWD, work_ + "/upload", O_WRONLY | O_CREAT | O_EXCL, 0600));
      uploading_ = true;
      return ok();
    }
    source_ = p["source"].get<std::string>();
    return run_tool(source_);
  }

  // One image.data notification.
  void data(const json& params) {
    if (params.contains("data_b64")) {
      auto bytes = api::base64_decode(params["data_b64"].get<std::string>());
      if (!bytes.ok()) {
        return finish(api::param_error("image.data.data_b64", "not base64"));
      }
      uploaded_ += bytes->size();
      if (uploaded_ > d_.config().image_max_archive_bytes) {
        return finish(api::api_error(api::kLimitExceeded, "the archive is over {} bytes ([images] max_archive_bytes)",
                                     d_.config().image_max_archive_bytes));
      }
      if (auto w = write_all(upload_.get(), *bytes); !w.ok()) {
        return finish(std::move(w).error().context("store the upload"));
      }
    }
    if (params.value("eof", false)) {
      uploading_ = false;
      upload_.reset();
      if (auto r = run_tool(work_ + "/upload"); !r.ok()) {
        finish(r.error());
      }
    }
  }

  // Ends the import: the reply, and this object's retirement. Safe to call more than once.
  void finish(const Result<json>& result) {
    if (finished_) {
      return;
    }
    finished_ = true;
    uploading_ = false;
    if (watch_) {
      (void)watch_->signal(SIGKILL);
    }
    call_->finish(result);
    d_.retire_import(token_);
  }

 private:
  Result<void> run_tool(const std::string& source) {
    const DaemonConfig& c = d_.config();
    SpawnOptions so;
    so.path = c.image_tool.empty() ? default_image_tool_path() : c.image_tool;
    so.argv = {"sbx-image", "import", "--source", source, "--store", layers_dir(c), "--work", work_ + "/unpack",
               "--max-entries", std::to_string(c.image_max_entries), "--max-bytes", std::to_string(c.image_max_bytes),
               "--max-archive-bytes", std::to_string(c.image_max_archive_bytes)};
    if (call_->params().contains("ref")) {
      so.argv.insert(so.argv.end(), {"--ref", call_->params()["ref"].get<std::string>()});
    }
    SBX_ASSIGN(auto out, make_pipe());
    so.fds[1] = out.second.get();
    so.fds[2] = STDERR_FILENO;
    SBX_ASSIGN(Spawned child, spawn_program(so));
    out.second.reset();
    SBX_ASSIGN(watch_, ProcessWatch::start(d_.loop(), child.pid, std::move(child.pidfd),
                                           [this](std::optional<int> st) { on_exit(st); }));
    pipe_ = UvHandle<uv_pipe_t>::make();
    uv_pipe_init(d_.loop(), pipe_.get(), 0);
    if (int rc = uv_pipe_open(pipe_.get(), out.first.get()); rc < 0) {
      return make_error("read sbx-image's output: {}", uv_strerror(rc));
    }
    out.first.release();
    pipe_.get()->data = this;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(pipe_.get()),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char chunk[65536];
          *buf = uv_buf_init(chunk, sizeof chunk);
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          if (s->data != nullptr && n > 0) {
            static_cast<ImageImport*>(s->data)->on_output(buf->base, static_cast<size_t>(n));
          } else if (n < 0) {
            uv_read_stop(s);
          }
        });
    return ok();
  }

  void on_output(const char* data, size_t n) {
    buf_.append(data, n);
    size_t nl;
    while ((nl = buf_.find('\n')) != std::string::npos) {
      json line = json::parse(std::string_view(buf_).substr(0, nl), nullptr, false);
      buf_.erase(0, nl + 1);
      if (line.is_object()) {
        on_line(line);
      }
    }
    if (buf_.size() > kMaxToolLine) {
      finish(make_error("sbx-image sent an oversized line"));
    }
  }

  void on_line(const json& line) {
    std::string event = line.value("event", "");
    if (event == "progress" && call_->params().value("progress", true)) {
      json note = {{"request_id", call_->id()}};
      for (const char* key : {"phase", "layer", "layers", "bytes", "total"}) {
        note[key] = line.value(key, json());
      }
      call_->notify("image.progress", note);
    } else if (event == "done") {
      done_ = line;
    } else if (event == "error") {
      error_ = line.value("message", "");
    }
  }

  void on_exit(std::optional<int> status) {
    watch_.reset();
    pipe_.reset();
    if (finished_) {
      return;
    }
    if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0 || done_.is_null()) {
      std::string why = !error_.empty() ? error_
                        : status && WIFSIGNALED(*status) ? fmt::format("sbx-image was killed by signal {}", WTERMSIG(*status))
                                                          : "sbx-image failed without saying why";
      return finish(api::api_error(api::kInvalidParams, "import '{}': {}", name_, why));
    }
    finish(d_.add_image(call_->caller(), name_, source_, done_, call_->params().value("replace", false)));
  }

  Daemon& d_;
  CallPtr call_;
  uint64_t token_;
  std::string name_;
  std::string work_;
  std::string source_;
  Fd upload_;
  bool uploading_ = false;
  uint64_t uploaded_ = 0;
  uint64_t close_token_ = 0;
  std::unique_ptr<ProcessWatch> watch_;
  UvHandle<uv_pipe_t> pipe_;
  std::string buf_;
  json done_;
  std::string error_;
  bool finished_ = false;
};

void Daemon::retire_import(uint64_t token) {
  auto it = imports_.find(token);
  if (it == imports_.end()) {
    return;
  }
  graveyard_.push_back(it->second);
  imports_.erase(it);
  collect_garbage();
}

Result<json> Daemon::add_image(const Caller& caller, const std::string& name, const std::string& source,
                               const json& done, bool replace) {
  SBX_ASSIGN(ImageRow row, image_row_from_import(name, source, done, api::now_ms()));
  SBX_ASSIGN(auto images, store_->images());
  bool replaced = std::any_of(images.begin(), images.end(), [&](const ImageRow& r) { return r.name == name; });
  if (replaced && !replace) {
    return api::api_error(api::kConflict, "an image named '{}' appeared during the import", name);
  }
  SBX_TRY(store_->put_image(row));
  SandboxRow audit;
  audit.name = name;
  audit.owner_uid = caller.uid;
  audit.tenant = caller.tenant;
  emit("image.imported", audit, {{"image_id", row.id}, {"source", source}, {"replaced", replaced}});
  log_info("image {}: imported {} ({} layers) from {}", name, row.id, row.record["layers"].size(), source);
  return describe_image(row, image_users(row.id));
}

ImageUsers Daemon::image_users(const std::string& image_id) {
  auto envs = store_->environments();
  return image_users(image_id, envs.ok() ? *envs : std::vector<EnvironmentRow>());
}

ImageUsers Daemon::image_users(const std::string& image_id, const std::vector<EnvironmentRow>& envs) const {
  ImageUsers users;
  for (const auto& [id, e] : sandboxes_) {
    const json& image = e->row.spec.contains("image") ? e->row.spec["image"] : json();
    if (image.is_object() && image.value("id", "") == image_id) {
      users.sandboxes.push_back(id);
    }
  }
  for (const auto& env : envs) {
    if (env.spec.value("image", json::object()).value("id", "") == image_id) {
      users.environments.push_back(fmt::format("{}@{}", env.name, env.version));
    }
  }
  return users;
}

void Daemon::image_import(CallPtr call) {
  const Caller& caller = call->caller();
  const json& p = call->params();
  if (!may_manage_images(caller)) {
    return call->fail(not_allowed(caller, "import images"));
  }
  std::string name = p["name"].get<std::string>();
  if (auto r = check_name(name, "name"); !r.ok()) {
    return call->fail(r.error());
  }
  bool stream = p.value("stream", false);
  if (stream == p.contains("source")) {
    return call->fail(api::param_error("source", "give exactly one of source and stream"));
  }
  if (!stream) {
    std::string source = p["source"].get<std::string>();
    if (caller.role != Role::kRoot) {
      return call->fail(api::api_error(api::kPermissionDenied, "importing from a host path is for root only; "
                                                               "stream the archive instead"));
    }
    struct stat st {};
    if (source.empty() || source[0] != '/' || ::stat(source.c_str(), &st) < 0 ||
        !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
      return call->fail(api::param_error("source", fmt::format("'{}' is not an absolute path to a file or a "
                                                               "directory", source)));
    }
  }
  for (const auto& [token, imp] : imports_) {
    if (imp->name() == name) {
      return call->fail(api::api_error(api::kConflict, "image '{}' is being imported already", name));
    }
  }
  if (static_cast<int64_t>(imports_.size()) >= config_.max_concurrent_imports) {
    return call->fail(api::api_error(api::kLimitExceeded, "{} imports are running ([images] max_concurrent_imports)",
                                     imports_.size()));
  }
  auto images = store_->images();
  if (!images.ok()) {
    return call->fail(images.error());
  }
  bool exists = std::any_of(images->begin(), images->end(), [&](const ImageRow& r) { return r.name == name; });
  if (exists && !p.value("replace", false)) {
    return call->fail(api::api_error(api::kConflict, "an image named '{}' exists (replace: true moves the name)", name));
  }
  uint64_t token = next_session_++;
  auto imp = std::make_shared<ImageImport>(*this, call, token, name);
  imports_[token] = imp;
  if (auto r = imp->begin(); !r.ok()) {
    imp->finish(std::move(r).error().context(fmt::format("import '{}'", name)));
  }
}

void Daemon::image_data(CallPtr call) {
  for (auto& [token, imp] : imports_) {
    if (imp->takes(*call)) {
      auto keep = imp;  // data() may retire it
      return keep->data(call->params());
    }
  }
  // A notification has no reply; one for no running upload is dropped (the import may have failed already).
}

void Daemon::image_list(CallPtr call) {
  auto images = store_->images();
  auto envs = store_->environments();
  if (!images.ok() || !envs.ok()) {
    return call->fail(!images.ok() ? images.error() : envs.error());
  }
  json out = json::array();
  for (const auto& row : *images) {
    out.push_back(describe_image(row, image_users(row.id, *envs)));
  }
  call->reply({{"images", out}});
}

void Daemon::image_inspect(CallPtr call) {
  auto images = store_->images();
  if (!images.ok()) {
    return call->fail(images.error());
  }
  auto row = find_image(*images, call->params()["image"].get<std::string>());
  if (!row.ok()) {
    return call->fail(row.error());
  }
  call->reply(describe_image(**row, image_users((*row)->id)));
}

void Daemon::image_remove(CallPtr call) {
  if (!may_manage_images(call->caller())) {
    return call->fail(not_allowed(call->caller(), "remove images"));
  }
  auto images = store_->images();
  if (!images.ok()) {
    return call->fail(images.error());
  }
  auto found = find_image(*images, call->params()["image"].get<std::string>());
  if (!found.ok()) {
    return call->fail(found.error());
  }
  ImageRow row = **found;
  ImageUsers users = image_users(row.id);
  if (!users.sandboxes.empty() || !users.environments.empty()) {
    std::vector<std::string> who;
    for (const auto& id : users.sandboxes) {
      who.push_back("sandbox " + id);
    }
    for (const auto& env : users.environments) {
      who.push_back("environment " + env);
    }
    return call->fail(api::api_error(api::kInvalidState, "image '{}' is in use by {}", row.name,
                                     fmt::join(who, ", ")));
  }
  if (auto r = store_->delete_image(row.name); !r.ok()) {
    return call->fail(r.error());
  }
  SandboxRow audit;
  audit.name = row.name;
  audit.owner_uid = call->caller().uid;
  audit.tenant = call->caller().tenant;
  emit("image.removed", audit, {{"image_id", row.id}});
  uint64_t freed = 0;
  for (const auto& hex : collect_garbage()) {
    for (const auto& l : row.record.value("layers", json::array())) {
      freed += l.value("diff_id", "") == "sha256:" + hex ? l.value("size", uint64_t(0)) : 0;
    }
  }
  call->reply({{"freed_bytes", freed}});
}

// ---- the layer store ----

std::set<std::string> Daemon::live_layers(const std::vector<ImageRow>& images,
                                          const std::vector<EnvironmentRow>& envs) const {
  std::set<std::string> live;
  for (const auto& row : images) {
    collect_layers(image_snapshot(row), &live);
  }
  for (const auto& [id, e] : sandboxes_) {
    collect_layers(e->row.spec.value("image", json()), &live);
  }
  for (const auto& env : envs) {
    collect_layers(env.spec.value("image", json()), &live);
  }
  return live;
}

std::vector<std::string> Daemon::collect_garbage() {
  if (!imports_.empty()) {
    return {};  // an import may be moving layers in that no row names yet; the last one to finish collects
  }
  auto images = store_->images();
  auto envs = store_->environments();
  auto names = list_dir(layers_dir(config_));
  if (!images.ok() || !envs.ok() || !names.ok()) {
    log_warn("layer store: not collecting garbage: {}",
             (!images.ok() ? images.error() : !envs.ok() ? envs.error() : names.error()).message());
    return {};
  }
  std::set<std::string> live = live_layers(*images, *envs);
  std::vector<std::string> dead;
  for (const auto& name : *names) {
    if (live.count("sha256:" + name)) {
      continue;
    }
    std::string trash = config_.state_dir + "/images/trash/" + name + "-" + new_id();
    if (::rename((layers_dir(config_) + "/" + name).c_str(), trash.c_str()) < 0) {
      log_warn("layer store: move {} to the trash: {}", name, strerror(errno));
      continue;
    }
    log_info("layer store: removing unused layer {}", name);
    remove_tree_in_background(loop_, trash);
    dead.push_back(name);
  }
  return dead;
}

Result<void> Daemon::open_image_store() {
  for (const char* sub : {"/layers", "/images", "/images/tmp", "/images/trash"}) {
    SBX_TRY_CTX(make_dirs(config_.state_dir + sub, 0700), "create the image store");
  }
  // Left by a daemon that stopped mid-import or mid-removal: nothing in them is referenced.
  for (const char* sub : {"/images/tmp", "/images/trash"}) {
    std::string dir = config_.state_dir + sub;
    auto names = list_dir(dir);
    for (const auto& name : names.ok() ? *names : std::vector<std::string>()) {
      remove_tree_in_background(loop_, dir + "/" + name);
    }
  }
  collect_garbage();
  return ok();
}

}  // namespace sbx::daemon
