#include <doctest/doctest.h>

#include <string>

#include "image/oci.h"
#include "image/sha256.h"

using namespace sbx::image;

namespace {

const std::string kA(64, 'a');
const std::string kB(64, 'b');
const std::string kC(64, 'c');

json descriptor(const std::string& hex, const std::string& media_type = "application/vnd.oci.image.manifest.v1+json") {
  return json{{"mediaType", media_type}, {"digest", "sha256:" + hex}, {"size", 100}};
}

json named(json d, const std::string& name) {
  d["annotations"] = {{"org.opencontainers.image.ref.name", name}};
  return d;
}

json for_platform(json d, const std::string& os, const std::string& arch) {
  d["platform"] = {{"os", os}, {"architecture", arch}};
  return d;
}

std::vector<Descriptor> index_of(const std::vector<json>& manifests) {
  json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
  for (const auto& m : manifests) {
    index["manifests"].push_back(m);
  }
  return parse_index(index).value();
}

}  // namespace

TEST_SUITE("image.oci") {

TEST_CASE("digests must be sha256 with 64 lowercase hex digits") {
  CHECK(parse_digest("sha256:" + kA).value() == kA);
  CHECK_FALSE(parse_digest("sha512:" + kA).ok());
  CHECK_FALSE(parse_digest("sha256:" + kA.substr(1)).ok());
  CHECK_FALSE(parse_digest("sha256:../../etc/passwd").ok());
  CHECK_FALSE(parse_digest(kA).ok());
}

TEST_CASE("descriptors need a digest and a non-negative size") {
  auto d = parse_descriptor(named(descriptor(kA), "x:1")).value();
  CHECK(d.digest_hex == kA);
  CHECK(d.size == 100);
  CHECK(d.ref_name() == "x:1");
  CHECK_FALSE(parse_descriptor(json{{"digest", "sha256:" + kA}}).ok());
  CHECK_FALSE(parse_descriptor(json{{"digest", "sha256:" + kA}, {"size", -1}}).ok());
  CHECK_FALSE(parse_descriptor(json{{"digest", "sha256:" + kA}, {"size", "1"}}).ok());
  CHECK_FALSE(parse_descriptor(json{{"size", 1}}).ok());
  CHECK_FALSE(parse_descriptor(json::array()).ok());
  CHECK_FALSE(parse_index(json{{"manifests", {json{{"digest", 1}}}}}).ok());
  CHECK_FALSE(parse_index(json::object()).ok());
}

TEST_CASE("an index with one image gives it, with or without a matching ref") {
  auto entries = index_of({named(descriptor(kA), "localhost/x:1")});
  CHECK(select_image(entries, "", "amd64").value().digest_hex == kA);
  CHECK(select_image(entries, "localhost/x:1", "amd64").value().digest_hex == kA);
  auto wrong = select_image(entries, "y:2", "amd64");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().message() == "no image named 'y:2' in the archive (it holds: localhost/x:1)");
}

TEST_CASE("several images need a ref, and the refusal lists their names") {
  auto entries = index_of({named(descriptor(kA), "x:1"), named(descriptor(kB), "y:2"), descriptor(kC)});
  auto r = select_image(entries, "", "amd64");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "the archive holds several images (x:1, y:2, <unnamed>): choose one with --ref");
  CHECK(select_image(entries, "y:2", "amd64").value().digest_hex == kB);
}

TEST_CASE("containerd's image name annotation is a name too") {
  json d = descriptor(kA);
  d["annotations"] = {{"io.containerd.image.name", "docker.io/library/x:1"},
                      {"org.opencontainers.image.ref.name", "1"}};
  auto entries = index_of({d});
  CHECK(select_image(entries, "docker.io/library/x:1", "amd64").ok());
  CHECK(select_image(entries, "1", "amd64").ok());
}

TEST_CASE("manifests of one image are told apart by platform") {
  auto entries = index_of({for_platform(descriptor(kA), "linux", "arm64"),
                           for_platform(descriptor(kB), "linux", "amd64"),
                           for_platform(descriptor(kC), "windows", "amd64")});
  CHECK(select_image(entries, "", "amd64").value().digest_hex == kB);
  CHECK(select_platform(entries, "arm64").value().digest_hex == kA);
  auto none = select_platform(entries, "s390x");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().message() ==
        "no manifest for linux/s390x (the index has: linux/arm64, linux/amd64, windows/amd64)");
  CHECK(select_platform(index_of({descriptor(kA)}), "amd64").value().digest_hex == kA);
  CHECK_FALSE(select_platform(index_of({descriptor(kA), descriptor(kB)}), "amd64").ok());
  CHECK_FALSE(select_platform({}, "amd64").ok());
}

TEST_CASE("a manifest gives its config and layers; other artifacts are refused") {
  json m = {{"schemaVersion", 2},
            {"config", descriptor(kA, "application/vnd.oci.image.config.v1+json")},
            {"layers", {descriptor(kB, "application/vnd.oci.image.layer.v1.tar+gzip")}}};
  auto parsed = parse_manifest(m).value();
  CHECK(parsed.config.digest_hex == kA);
  REQUIRE(parsed.layers.size() == 1);
  CHECK(parsed.layers[0].digest_hex == kB);
  json helm = m;
  helm["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json";
  CHECK(parse_manifest(helm).error().message().find("not a container image") != std::string::npos);
  json no_layers = m;
  no_layers["layers"] = json::array();
  CHECK_FALSE(parse_manifest(no_layers).ok());
  json index = m;
  index["mediaType"] = "application/vnd.oci.image.index.v1+json";
  CHECK_FALSE(parse_manifest(index).ok());
  CHECK(is_index_media_type("application/vnd.docker.distribution.manifest.list.v2+json"));
  CHECK(is_manifest_media_type("application/vnd.docker.distribution.manifest.v2+json"));
}

TEST_CASE("layer media types: tar, gzip and zstd are accepted, foreign and unknown ones refused") {
  CHECK(check_layer_media_type("application/vnd.oci.image.layer.v1.tar").ok());
  CHECK(check_layer_media_type("application/vnd.oci.image.layer.v1.tar+gzip").ok());
  CHECK(check_layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd").ok());
  CHECK(check_layer_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip").ok());
  auto foreign = check_layer_media_type("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip");
  CHECK(foreign.error().message().find("foreign (non-distributable)") != std::string::npos);
  CHECK_FALSE(check_layer_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip").ok());
  CHECK(check_layer_media_type("application/x-tar").error().message() ==
        "unsupported layer media type 'application/x-tar'");
  CHECK_FALSE(check_layer_media_type("").ok());
}

TEST_CASE("an image config gives its config object, user and diff_ids") {
  json c = {{"architecture", "amd64"},
            {"config", {{"User", "nobody"}, {"Env", {"A=b"}}}},
            {"rootfs", {{"type", "layers"}, {"diff_ids", {"sha256:" + kA, "sha256:" + kB}}}}};
  auto parsed = parse_image_config(c).value();
  CHECK(parsed.user == "nobody");
  CHECK(parsed.config["Env"][0] == "A=b");
  CHECK(parsed.diff_ids == std::vector<std::string>{kA, kB});
  json no_config = c;
  no_config.erase("config");
  CHECK(parse_image_config(no_config).value().config == json::object());
  CHECK(parse_image_config(no_config).value().user.empty());
  json bad_user = c;
  bad_user["config"]["User"] = 0;
  CHECK_FALSE(parse_image_config(bad_user).ok());
  json bad_id = c;
  bad_id["rootfs"]["diff_ids"][1] = "md5:00";
  CHECK_FALSE(parse_image_config(bad_id).ok());
  json no_rootfs = c;
  no_rootfs["rootfs"]["type"] = 7;
  CHECK_FALSE(parse_image_config(no_rootfs).ok());
}

TEST_CASE("docker-save manifests: one image needs no ref, several are chosen by RepoTag") {
  json m = json::array({{{"Config", kA + ".json"}, {"RepoTags", {"x:1", "x:latest"}}, {"Layers", {"l1/layer.tar"}}},
                        {{"Config", kB + ".json"}, {"RepoTags", nullptr}, {"Layers", {"l2/layer.tar"}}}});
  auto images = parse_docker_manifest(m).value();
  REQUIRE(images.size() == 2);
  CHECK(images[0].layers == std::vector<std::string>{"l1/layer.tar"});
  auto several = select_docker_image(images, "");
  REQUIRE_FALSE(several.ok());
  CHECK(several.error().message() ==
        "the archive holds several images (x:1, x:latest, <untagged>): choose one with --ref");
  CHECK(select_docker_image(images, "x:latest").value().config == kA + ".json");
  CHECK_FALSE(select_docker_image(images, "z:9").ok());
  CHECK(select_docker_image({images[1]}, "").ok());
  CHECK_FALSE(parse_docker_manifest(json::array()).ok());
  CHECK_FALSE(parse_docker_manifest(json::array({{{"Config", "c.json"}}})).ok());
  CHECK_FALSE(parse_docker_manifest(json::array({{{"Config", 1}, {"Layers", {"a"}}}})).ok());
}

TEST_CASE("docker-save paths name their digest when they are blobs or <hex>.json/.tar") {
  CHECK(digest_in_path("blobs/sha256/" + kA).value() == kA);
  CHECK(digest_in_path(kA + ".json").value() == kA);
  CHECK(digest_in_path(kA + ".tar").value() == kA);
  CHECK_FALSE(digest_in_path(kA + "/layer.tar"));
  CHECK_FALSE(digest_in_path("blobs/sha256/xyz"));
}

TEST_CASE("the config made for a tarball is canonical: same layers, same digest") {
  std::string one = synthetic_config({kA}, "amd64").dump();
  CHECK(one == synthetic_config({kA}, "amd64").dump());
  CHECK(one != synthetic_config({kB}, "amd64").dump());
  CHECK(one == R"({"architecture":"amd64","config":{},"os":"linux","rootfs":{"diff_ids":["sha256:)" + kA +
                   R"("],"type":"layers"}})");
  CHECK(host_architecture() != "unknown");
  CHECK_FALSE(parse_json("{", "x").ok());
}

}  // TEST_SUITE
