// Internal: the PNG and JPEG codecs behind qtseg/image.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "qtseg/image.hpp"

namespace qtseg::detail {

bool is_png(const uint8_t* bytes, std::size_t size);
bool is_jpeg(const uint8_t* bytes, std::size_t size);

/// Throws ImageError if a `width` x `height` image has more than `max_pixels` pixels.
void check_pixel_limit(uint64_t width, uint64_t height, std::size_t max_pixels, const std::string& source);

/// Decode PNG bytes to RGB; throws ImageError naming `source`. The pixel
/// limit is checked on the header, before pixel memory is allocated.
Image decode_png(const uint8_t* bytes, std::size_t size, const std::string& source, std::size_t max_pixels);
/// Decode JPEG bytes to RGB; same contract as decode_png.
Image decode_jpeg(const uint8_t* bytes, std::size_t size, const std::string& source, std::size_t max_pixels);
/// Write an 8-bit gray PNG; throws ImageError naming `path`.
void encode_gray_png(const std::string& path, const uint8_t* gray, int height, int width);

}  // namespace qtseg::detail
