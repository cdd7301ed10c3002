// The image store's pure parts: digests, the importer's report as a row, snapshots, lookup by name or id prefix.
#include <doctest/doctest.h>

#include "api/protocol.h"
#include "daemon/image_spec.h"

using namespace sbx;
using namespace sbx::daemon;

namespace {

std::string digest(char c) { return "sha256:" + std::string(64, c); }

json done_line() {
  return {{"event", "done"},
          {"format", "oci"},
          {"config_digest", digest('c')},
          {"config", {{"Env", {"A=1"}}, {"User", "nobody"}}},
          {"layers", {{{"diff_id", digest('a')}, {"size", 100}, {"entries", 3}, {"reused", false}},
                      {{"diff_id", digest('b')}, {"size", 20}, {"entries", 1}, {"reused", true}}}},
          {"ref", "localhost/py:1"},
          {"user", {{"uid", 65534}, {"gid", 65534}}}};
}

}  // namespace

TEST_SUITE("daemon.image_spec") {

TEST_CASE("a digest is sha256: and 64 lowercase hex digits") {
  CHECK(*digest_hex(digest('a')) == std::string(64, 'a'));
  for (const std::string& bad : std::vector<std::string>{"", "sha256:", "sha512:" + std::string(64, 'a'), "sha256:" + std::string(63, 'a'),
                          "sha256:" + std::string(64, 'A'), "sha256:" + std::string(63, 'a') + "/",
                          "sha256:../" + std::string(61, 'a')}) {
    CHECK_MESSAGE(!digest_hex(bad).ok(), bad);
  }
}

TEST_CASE("the importer's report becomes a row, and the row a snapshot") {
  auto row = image_row_from_import("py", "/tmp/py.tar", done_line(), 1000);
  REQUIRE_MESSAGE(row.ok(), row.error().message());
  CHECK(row->id == digest('c'));
  CHECK(row->record["size"] == 120);
  CHECK(row->record["format"] == "oci");
  CHECK(row->record["layers"].size() == 2);
  json snap = image_snapshot(*row);
  CHECK(snap["layers"] == json{digest('a'), digest('b')});
  CHECK(snap["user"]["uid"] == 65534);
  CHECK(snap["config"]["Env"] == json{"A=1"});
  std::set<std::string> live;
  collect_layers(snap, &live);
  CHECK(live == std::set<std::string>{digest('a'), digest('b')});
}

TEST_CASE("a report with a bad digest or no layers is refused") {
  json bad = done_line();
  bad["config_digest"] = "sha256:nothex";
  CHECK(!image_row_from_import("py", "s", bad, 0).ok());
  bad = done_line();
  bad["layers"] = json::array();
  CHECK(!image_row_from_import("py", "s", bad, 0).ok());
  bad = done_line();
  bad["layers"][0]["diff_id"] = "sha256:../../etc";
  CHECK(!image_row_from_import("py", "s", bad, 0).ok());
}

TEST_CASE("lower dirs are the layers top first, under <state>/layers") {
  DaemonConfig c;
  c.state_dir = "/s";
  auto dirs = image_lower_dirs(c, {{"layers", {digest('a'), digest('b')}}});
  REQUIRE(dirs.ok());
  CHECK(*dirs == std::vector<std::string>{"/s/layers/" + std::string(64, 'b'), "/s/layers/" + std::string(64, 'a')});
  CHECK(!image_lower_dirs(c, {{"layers", json::array()}}).ok());
  CHECK(!image_lower_dirs(c, {{"layers", {"sha256:x"}}}).ok());
}

TEST_CASE("an image is found by name, id or an id prefix of 12 or more digits") {
  std::vector<ImageRow> images = {{"py", digest('a'), 0, {}}, {"node", "sha256:ab" + std::string(62, '0'), 0, {}},
                                  {"py-copy", digest('a'), 0, {}}};
  CHECK((*find_image(images, "node"))->name == "node");
  CHECK((*find_image(images, digest('a')))->name == "py");
  CHECK((*find_image(images, "ab0000000000"))->name == "node");
  CHECK((*find_image(images, "sha256:ab0000000000"))->name == "node");
  // Same id under two names: the prefix still names one image.
  CHECK((*find_image(images, std::string(12, 'a')))->id == digest('a'));
  auto missing = find_image(images, "ruby");
  REQUIRE(!missing.ok());
  CHECK(missing.error().code() == api::kNotFound);
  CHECK(!find_image(images, "ab00").ok());  // too short to be a prefix
  std::vector<ImageRow> twins = {{"x", "sha256:ab" + std::string(62, '0'), 0, {}},
                                 {"y", "sha256:ab" + std::string(61, '0') + "1", 0, {}}};
  auto ambiguous = find_image(twins, "ab0000000000");
  REQUIRE(!ambiguous.ok());
  CHECK(ambiguous.error().code() == api::kInvalidParams);
}

TEST_CASE("describe_image shows the record, the id, the name and who uses it") {
  auto row = image_row_from_import("py", "stream", done_line(), 0);
  REQUIRE(row.ok());
  json d = describe_image(*row, {{"s1"}, {"py@2"}});
  CHECK(d["name"] == "py");
  CHECK(d["id"] == digest('c'));
  CHECK(d["source"] == "stream");
  CHECK(d["used_by"]["sandboxes"] == json{"s1"});
  CHECK(d["used_by"]["environments"] == json{"py@2"});
}

}
