// API keys as pure functions: base64url, SHA-256, the key and id formats, what looks like a key, labels.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "api/protocol.h"
#include "daemon/api_key_spec.h"

using namespace sbx;
using namespace sbx::daemon::api_keys;

TEST_SUITE("daemon.api_key_spec") {

TEST_CASE("base64url encodes the RFC 4648 test vectors without padding") {
  CHECK(base64url_encode("") == "");
  CHECK(base64url_encode("f") == "Zg");
  CHECK(base64url_encode("fo") == "Zm8");
  CHECK(base64url_encode("foo") == "Zm9v");
  CHECK(base64url_encode("foob") == "Zm9vYg");
  CHECK(base64url_encode("fooba") == "Zm9vYmE");
  CHECK(base64url_encode("foobar") == "Zm9vYmFy");
}

TEST_CASE("base64url uses '-' and '_' where base64 has '+' and '/'") {
  const std::string bytes("\xfb\xff\xbf", 3);
  CHECK(api::base64_encode(bytes) == "+/+/");
  CHECK(base64url_encode(bytes) == "-_-_");
  CHECK(base64url_encode(std::string("\xfb\xff", 2)) == "-_8");
  CHECK(base64url_encode(std::string("\x00\x00\x00", 3)) == "AAAA");
  std::string counting;
  for (int i = 0; i < 32; ++i) {
    counting.push_back(static_cast<char>(i));
  }
  CHECK(base64url_encode(counting) == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
}

TEST_CASE("sha256_hex gives the FIPS 180-2 known answers") {
  CHECK(*sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(*sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(*sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(*sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("a key is sbx_ and the unpadded base64url of its 32 bytes, 47 characters") {
  CHECK(kKeyLength == 47);
  const std::string zeros = key_text(std::string(kKeyBytes, '\0'));
  CHECK(zeros == "sbx_" + std::string(43, 'A'));
  CHECK(key_text(std::string(kKeyBytes, '\xff')) == "sbx_" + std::string(42, '_') + "8");
  CHECK(zeros.size() == kKeyLength);
}

TEST_CASE("the stored hash is the SHA-256 hex of the whole key text, prefix included") {
  const std::string key = key_text(std::string(kKeyBytes, '\0'));
  CHECK(*key_hash(key) == "99e831ec4a1b55723ce7a5057da283469f012776a9bb4f89b5286251d85b3a34");
  CHECK(*key_hash(key) == *sha256_hex(key));
  CHECK(*key_hash(key) != *sha256_hex(key.substr(kKeyPrefix.size())));
}

TEST_CASE("a key id is the lowercase hex of its 6 bytes") {
  CHECK(key_id(std::string("\x00\x01\xab\xcd\xef\xff", 6)) == "0001abcdefff");
  CHECK(key_id(std::string(kIdBytes, '\0')) == "000000000000");
}

TEST_CASE("only the prefix and 43 base64url characters look like a key") {
  CHECK(looks_like_key(key_text(std::string(kKeyBytes, '\x5a'))));
  CHECK(looks_like_key("sbx_" + std::string(20, '-') + std::string(23, '_')));
  CHECK_FALSE(looks_like_key(""));
  CHECK_FALSE(looks_like_key("sbx_"));
  CHECK_FALSE(looks_like_key("sbx_" + std::string(42, 'A')));
  CHECK_FALSE(looks_like_key("sbx_" + std::string(44, 'A')));
  CHECK_FALSE(looks_like_key("xbx_" + std::string(43, 'A')));
  CHECK_FALSE(looks_like_key("SBX_" + std::string(43, 'A')));
  CHECK_FALSE(looks_like_key("sbx_" + std::string(42, 'A') + "+"));
  CHECK_FALSE(looks_like_key("sbx_" + std::string(42, 'A') + "="));
  CHECK_FALSE(looks_like_key("sbx_" + std::string(42, 'A') + " "));
  CHECK_FALSE(looks_like_key(std::string("sbx_") + std::string(42, 'A') + '\0'));
}

TEST_CASE("a label is up to 64 printable ASCII characters") {
  CHECK(check_key_name("").ok());
  CHECK(check_key_name("ci deploy key #2 (rotated 2026-01)").ok());
  CHECK(check_key_name(std::string(64, 'x')).ok());
  auto too_long = check_key_name(std::string(65, 'x'));
  REQUIRE_FALSE(too_long.ok());
  CHECK(too_long.error().code() == api::kInvalidParams);
  CHECK(too_long.error().message().starts_with("params.name: "));
  for (const std::string& bad : {std::string("tab\there"), std::string("new\nline"), std::string("del\x7f"),
                                std::string("caf\xc3\xa9"), std::string("nul\0x", 5)}) {
    auto r = check_key_name(bad);
    CHECK_FALSE(r.ok());
    CHECK(r.error().code() == api::kInvalidParams);
  }
}

TEST_CASE("random_bytes returns as many bytes as asked, different each time") {
  auto a = random_bytes(kKeyBytes);
  auto b = random_bytes(kKeyBytes);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->size() == kKeyBytes);
  CHECK(*a != *b);
  CHECK(random_bytes(0)->empty());
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    ids.insert(key_id(*random_bytes(kIdBytes)));
  }
  CHECK(ids.size() == 100);
}

}  // TEST_SUITE
