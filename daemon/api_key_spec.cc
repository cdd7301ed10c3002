#include "daemon/api_key_spec.h"

#include <openssl/evp.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdint>

#include "api/protocol.h"

namespace sbx::daemon::api_keys {

namespace {

constexpr std::string_view kBase64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kHex[] = "0123456789abcdef";

std::string hex(const unsigned char* data, size_t size) {
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0xf]);
  }
  return out;
}

bool is_base64url_digit(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 5) / 6);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
    out += kBase64Url[v >> 18];
    out += kBase64Url[(v >> 12) & 63];
    out += kBase64Url[(v >> 6) & 63];
    out += kBase64Url[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) {
      v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    }
    out += kBase64Url[v >> 18];
    out += kBase64Url[(v >> 12) & 63];
    if (rest == 2) {
      out += kBase64Url[(v >> 6) & 63];
    }
  }
  return out;
}

Result<std::string> sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    return make_error("SHA-256 digest: libcrypto failed");
  }
  return hex(md, len);
}

std::string key_text(std::string_view random_bytes) { return std::string(kKeyPrefix) + base64url_encode(random_bytes); }

std::string key_id(std::string_view random_bytes) {
  return hex(reinterpret_cast<const unsigned char*>(random_bytes.data()), random_bytes.size());
}

Result<std::string> key_hash(std::string_view key_text) { return sha256_hex(key_text); }

bool looks_like_key(std::string_view text) {
  if (text.size() != kKeyLength || !text.starts_with(kKeyPrefix)) {
    return false;
  }
  for (char c : text.substr(kKeyPrefix.size())) {
    if (!is_base64url_digit(c)) {
      return false;
    }
  }
  return true;
}

Result<void> check_key_name(std::string_view name) {
  if (name.size() > kMaxNameLength) {
    return api::param_error("name", fmt::format("at most {} characters, not {}", kMaxNameLength, name.size()));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c > 0x7e) {
      return api::param_error("name", fmt::format("printable ASCII characters only; byte {} is 0x{:02x}", i, c));
    }
  }
  return ok();
}

Result<std::string> random_bytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return sys_error("getrandom {} bytes", n);
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

}  // namespace sbx::daemon::api_keys
