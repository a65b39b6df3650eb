// SHA-256 (FIPS 180-4), used to verify the files an artifact's manifest lists.
// Self-contained: no OpenSSL dependency.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace qtseg {

/// Incremental SHA-256. update() may be called with any split of the input;
/// the digest equals Python's hashlib.sha256 of the concatenated bytes.
class Sha256 {
 public:
  /// `use_cpu_extensions`: use the x86 SHA instructions when the CPU has them
  /// (same digest; false forces the portable code, e.g. to test it).
  explicit Sha256(bool use_cpu_extensions = true);
  void update(const void* data, std::size_t size);
  /// The 32-byte digest; the object must not be updated afterwards.
  std::array<uint8_t, 32> digest();
  /// digest() as 64 lowercase hex characters.
  std::string hex_digest();
  /// True when this object hashes with the CPU's SHA instructions.
  bool uses_cpu_extensions() const { return sha_ni_; }

 private:
  void compress(const uint8_t* blocks, std::size_t count);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> pending_{};
  std::size_t pending_size_ = 0;
  uint64_t total_bytes_ = 0;
  bool sha_ni_ = false;
};

/// Hex SHA-256 of a file's bytes (read in 1 MiB chunks). Throws ArtifactError
/// if the file cannot be read. `use_cpu_extensions` as for Sha256.
std::string sha256_file(const std::string& path, bool use_cpu_extensions = true);

}  // namespace qtseg
