#pragma once
// Sha256: an incremental SHA-256 (OpenSSL EVP underneath) and the "sha256:<hex>" digest form images use.
#include <memory>
#include <string>
#include <string_view>

namespace sbx::image {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest of everything fed so far, as 64 lowercase hex digits. Ends this hasher: call it once.
  std::string hex_digest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// The hex digest of `data` in one call.
std::string sha256_hex(std::string_view data);

// True for exactly 64 lowercase hex digits.
bool is_sha256_hex(std::string_view hex);

}  // namespace sbx::image
