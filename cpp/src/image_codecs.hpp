// Internal: the PNG and JPEG codecs behind qtseg/image.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "qtseg/image.hpp"

namespace qtseg::detail {

bool is_png(const uint8_t* bytes, std::size_t size);
bool is_jpeg(const uint8_t* bytes, std::size_t size);

/// Decode PNG bytes to RGB; throws ImageError naming `source`.
Image decode_png(const uint8_t* bytes, std::size_t size, const std::string& source);
/// Decode JPEG bytes to RGB; throws ImageError naming `source`.
Image decode_jpeg(const uint8_t* bytes, std::size_t size, const std::string& source);
/// Write an 8-bit gray PNG; throws ImageError naming `path`.
void encode_gray_png(const std::string& path, const uint8_t* gray, int height, int width);

}  // namespace qtseg::detail
