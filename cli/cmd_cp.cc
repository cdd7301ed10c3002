// cp: files and directories between the host and a sandbox, through file.read/file.write/file.list.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "api/protocol.h"
#include "base/file.h"
#include "cli/commands.h"
#include "cli/format.h"

namespace sbx::cli {

namespace {

constexpr size_t kChunk = 1 << 20;  // bytes per file.read / file.write call

struct Entry {
  std::string type;  // file, dir, symlink, other
  unsigned mode = 0644;
};

Entry entry_of(const json& e) {
  const json& mode = member(e, "mode");
  std::string type = string_member(e, "type");
  return Entry{type.empty() ? "other" : type, mode.is_number_unsigned() ? mode.get<unsigned>() & 07777 : 0644};
}

struct Totals {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

struct Copier {
  api::Client& client;
  std::string id;
  Totals totals;

  // The type and mode of `path` in the sandbox; nullopt when it does not exist.
  Result<std::optional<Entry>> stat(const std::string& path) {
    if (path == "/") {
      return std::optional<Entry>(Entry{"dir", 0755});
    }
    auto r = client.call("file.list", {{"id", id}, {"path", dir_name(path)}});
    if (!r.ok()) {
      if (client.last_error().code == api::kNotFound) {
        return std::optional<Entry>();
      }
      return std::move(r).error();
    }
    std::string name = base_name(path);
    for (const auto& e : member(*r, "entries")) {
      if (string_member(e, "name") == name) {
        return std::optional<Entry>(entry_of(e));
      }
    }
    return std::optional<Entry>();
  }

  Result<void> write_chunk(const std::string& path, std::string_view data, unsigned mode, bool append, bool mkdirs) {
    json p = {{"id", id}, {"path", path}, {"data_b64", api::base64_encode(data)}, {"mode", mode & 0777}};
    if (append) {
      p["append"] = true;
    }
    if (mkdirs) {
      p["mkdirs"] = true;
    }
    SBX_ASSIGN(json r, client.call("file.write", std::move(p)));
    totals.bytes += data.size();
    return ok();
  }

  Result<void> upload_data(std::string_view data, const std::string& dst, unsigned mode) {
    SBX_TRY_CTX(write_chunk(dst, data, mode, false, false), "write {}:{}", id, dst);
    ++totals.files;
    return ok();
  }

  Result<void> upload_file(int fd, const std::string& dst, unsigned mode, bool mkdirs) {
    std::string buf(kChunk, '\0');
    bool first = true;
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        return sys_error("read");
      }
      if (n == 0 && !first) {
        break;
      }
      SBX_TRY_CTX(write_chunk(dst, std::string_view(buf.data(), static_cast<size_t>(n)), mode, !first, mkdirs),
                  "write {}:{}", id, dst);
      first = false;
      if (n == 0) {
        break;
      }
    }
    ++totals.files;
    return ok();
  }

  // There is no mkdir method: writing a file with mkdirs creates the directory, then the file goes again.
  Result<void> make_dir(const std::string& dir) {
    std::string marker = join_path(dir, fmt::format(".sbxctl-mkdir-{}", ::getpid()));
    SBX_TRY_CTX(write_chunk(marker, "", 0600, false, true), "create directory {}:{}", id, dir);
    SBX_ASSIGN(json r, client.call("file.remove", {{"id", id}, {"path", marker}}));
    return ok();
  }

  Result<void> upload_tree(const std::string& src, const std::string& dst) {
    SBX_TRY(make_dir(dst));
    SBX_ASSIGN(Fd dir, open_at(AT_FDCWD, src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    DIR* d = ::fdopendir(dir.get());
    if (d == nullptr) {
      return sys_error("read directory '{}'", src);
    }
    dir.release();
    std::vector<std::string> names;
    while (struct dirent* de = ::readdir(d)) {
      std::string name = de->d_name;
      if (name != "." && name != "..") {
        names.push_back(std::move(name));
      }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      SBX_TRY(upload_entry(join_path(src, name), join_path(dst, name)));
    }
    return ok();
  }

  Result<void> upload_entry(const std::string& src, const std::string& dst) {
    struct stat st {};
    if (::lstat(src.c_str(), &st) != 0) {
      return sys_error("stat '{}'", src);
    }
    if (S_ISDIR(st.st_mode)) {
      return upload_tree(src, dst);
    }
    if (!S_ISREG(st.st_mode)) {
      warn(fmt::format("skipped '{}': only regular files and directories are copied", src));
      return ok();
    }
    SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, src, O_RDONLY | O_NOFOLLOW));
    return upload_file(fd.get(), dst, st.st_mode, false);
  }

  Result<void> download_file(const std::string& src, int out) {
    uint64_t offset = 0;
    for (;;) {
      json p = {{"id", id}, {"path", src}, {"offset", offset}, {"length", kChunk}};
      auto r = client.call("file.read", std::move(p));
      if (!r.ok()) {
        return std::move(r).error().context(fmt::format("read {}:{}", id, src));
      }
      SBX_ASSIGN(std::string data, api::base64_decode(string_member(*r, "data_b64")));
      SBX_TRY_CTX(write_all(out, data), "write the copy of {}:{}", id, src);
      offset += data.size();
      totals.bytes += data.size();
      if (member(*r, "eof") != json(false) || data.empty()) {
        break;
      }
    }
    ++totals.files;
    return ok();
  }

  Result<void> download_to(const std::string& src, const std::string& dst, unsigned mode) {
    SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, dst, O_WRONLY | O_CREAT | O_TRUNC, mode & 0777));
    SBX_TRY(download_file(src, fd.get()));
    if (::fchmod(fd.get(), mode & 0777) != 0) {
      return sys_error("chmod '{}'", dst);
    }
    return ok();
  }

  Result<void> download_tree(const std::string& src, const std::string& dst) {
    if (::mkdir(dst.c_str(), 0755) != 0 && errno != EEXIST) {
      return sys_error("create directory '{}'", dst);
    }
    auto r = client.call("file.list", {{"id", id}, {"path", src}});
    if (!r.ok()) {
      return std::move(r).error().context(fmt::format("list {}:{}", id, src));
    }
    for (const auto& e : member(*r, "entries")) {
      std::string name = string_member(e, "name");
      Entry entry = entry_of(e);
      if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
        continue;
      }
      if (entry.type == "dir") {
        SBX_TRY(download_tree(join_path(src, name), join_path(dst, name)));
      } else if (entry.type == "file") {
        SBX_TRY(download_to(join_path(src, name), join_path(dst, name), entry.mode));
      } else {
        warn(fmt::format("skipped {}:{}: only regular files and directories are copied", id, join_path(src, name)));
      }
    }
    return ok();
  }
};

Result<void> copy_in(Copier& c, const std::string& src, const std::string& dst_text) {
  std::string dst = absolute_path(dst_text, "/");
  SBX_ASSIGN(auto entry, c.stat(dst));
  bool dst_is_dir = entry && entry->type == "dir";
  if (dst_text.ends_with('/') && !dst_is_dir) {
    return Error(fmt::format("{}:{} is not a directory", c.id, dst_text), ENOTDIR);
  }
  if (src == "-") {
    if (dst_is_dir) {
      return Error(fmt::format("{}:{} is a directory; name the file to write", c.id, dst), EISDIR);
    }
    SBX_ASSIGN(std::string data, read_stdin());
    return c.upload_data(data, dst, 0644);
  }
  std::string abs_src = absolute_path(src, current_dir());
  std::string target = dst_is_dir ? join_path(dst, base_name(abs_src)) : dst;
  struct stat st {};
  if (::stat(src.c_str(), &st) != 0) {
    return sys_error("stat '{}'", src);
  }
  if (S_ISDIR(st.st_mode)) {
    if (entry && !dst_is_dir) {
      return Error(fmt::format("cannot copy directory '{}' onto file {}:{}", src, c.id, dst), ENOTDIR);
    }
    return c.upload_tree(src, target);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(fmt::format("'{}' is not a regular file or a directory", src), EINVAL);
  }
  SBX_ASSIGN(Fd fd, open_at(AT_FDCWD, src, O_RDONLY));
  return c.upload_file(fd.get(), target, st.st_mode, false);
}

Result<void> copy_out(Copier& c, const std::string& src_text, const std::string& dst) {
  std::string src = absolute_path(src_text, "/");
  SBX_ASSIGN(auto entry, c.stat(src));
  if (!entry) {
    return Error(fmt::format("{}:{}: no such file or directory in the sandbox", c.id, src), ENOENT);
  }
  if (entry->type != "file" && entry->type != "dir") {
    return Error(fmt::format("{}:{} is not a regular file or a directory", c.id, src), EINVAL);
  }
  if (dst == "-") {
    if (entry->type != "file") {
      return Error(fmt::format("{}:{} is a directory: only a file can go to stdout", c.id, src), EISDIR);
    }
    return c.download_file(src, STDOUT_FILENO);
  }
  struct stat st {};
  bool dst_is_dir = ::stat(dst.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  if (dst.ends_with('/') && !dst_is_dir) {
    return Error(fmt::format("'{}' is not a directory", dst), ENOTDIR);
  }
  std::string name = base_name(src);
  std::string target = dst_is_dir && !name.empty() ? join_path(dst, name) : dst;
  if (entry->type == "dir") {
    return c.download_tree(src, target);
  }
  return c.download_to(src, target, entry->mode);
}

}  // namespace

int cmd_cp(const Globals& g, const std::string& src, const std::string& dst) {
  CpTarget from = parse_cp_target(src);
  CpTarget to = parse_cp_target(dst);
  if (from.sandbox.empty() == to.sandbox.empty()) {
    return fail("cp copies between the host and a sandbox: exactly one of SRC and DEST must be SANDBOX:PATH");
  }
  auto client = connect(g);
  if (!client.ok()) {
    return fail(client.error());
  }
  // The sandbox first, so that "not found" below can only mean the path.
  const std::string& name = from.sandbox.empty() ? to.sandbox : from.sandbox;
  auto sb = client->call("sandbox.inspect", {{"id", name}});
  if (!sb.ok()) {
    return fail(sb.error());
  }
  Copier c{*client, sandbox_id(*sb), {}};
  auto r = to.sandbox.empty() ? copy_out(c, from.path, to.path) : copy_in(c, from.path, to.path);
  if (!r.ok()) {
    return fail(r.error());
  }
  if (g.json) {
    print_json({{"files", c.totals.files}, {"bytes", c.totals.bytes}});
  }
  return 0;
}

}  // namespace sbx::cli
