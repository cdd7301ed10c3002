#pragma once
// API keys as pure functions: how a key's text and id are made from random bytes, how a key is hashed for the
// store, what a key looks like, and which labels are accepted. sbxd keeps only the hash; the key text exists in
// the create call's reply and nowhere else. The one impure helper, random_bytes(), reads getrandom(2).
//
// A key is "sbx_" followed by the base64url encoding (RFC 4648 section 5, no padding) of 32 random bytes: 47
// characters. Its id is 12 lowercase hex digits of 6 other random bytes. Its hash is the SHA-256 hex digest of the
// whole key text.
#include <cstddef>
#include <string>
#include <string_view>

#include "base/error.h"

namespace sbx::daemon::api_keys {

inline constexpr std::string_view kKeyPrefix = "sbx_";
inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kIdBytes = 6;
// kKeyPrefix plus the unpadded base64url of kKeyBytes.
inline constexpr size_t kKeyLength = kKeyPrefix.size() + (kKeyBytes * 8 + 5) / 6;
inline constexpr size_t kMaxNameLength = 64;

// RFC 4648 base64url ('-' and '_' for '+' and '/'), without '=' padding.
std::string base64url_encode(std::string_view bytes);

// 64 lowercase hex digits. Fails only when libcrypto cannot compute a digest at all.
Result<std::string> sha256_hex(std::string_view data);

// The key text for kKeyBytes random bytes: "sbx_" + base64url_encode(bytes).
std::string key_text(std::string_view random_bytes);
// The key id for kIdBytes random bytes: their lowercase hex.
std::string key_id(std::string_view random_bytes);
// What the store keeps of a key: sha256_hex of the whole text.
Result<std::string> key_hash(std::string_view key_text);

// True for text that key_text() could have made: the prefix and kKeyLength characters of the base64url
// alphabet. Anything else cannot be a key, so it needs no lookup.
bool looks_like_key(std::string_view text);

// A key's label: at most kMaxNameLength printable ASCII characters (space to '~'); empty is allowed. Errors
// are kInvalidParams naming "name".
Result<void> check_key_name(std::string_view name);

// `n` bytes from getrandom(2), retried on EINTR and short reads.
Result<std::string> random_bytes(size_t n);

}  // namespace sbx::daemon::api_keys
