// Image decoding (PNG via libpng, JPEG via libjpeg) and mask writing.
//
// Decoding follows qtseg.imageio.read_image exactly: the result is always
// (H, W, 3) uint8 RGB; gray is replicated, alpha is dropped (not composited),
// palettes are expanded, EXIF orientation is NOT applied, 16-bit gray is
// scaled with float32 `v * (255/65535) + 0.5` (truncated) and 16-bit colour
// keeps the high byte (what Pillow does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qtseg {

/// Interleaved 8-bit RGB image, rows top to bottom, no padding.
struct Image {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3 bytes, R G B per pixel
};

/// Label map: one uint8 class index per pixel.
struct Mask {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> labels;  // height * width bytes
};

/// Channel layout of caller-owned pixel memory given to image_from_pixels().
enum class PixelOrder { RGB, BGR };

/// Largest image (width * height) the decoders accept by default: 100
/// megapixels, the limit Python's qtseg.imageio uses too. The header is read
/// first and a larger image is refused before any pixel memory is allocated
/// (a 48 KB PNG can claim 20000 x 20000 pixels: a decompression bomb).
inline constexpr std::size_t kDefaultMaxPixels = 100'000'000;

/// Decode a PNG or JPEG file (recognized by its signature, not its suffix).
/// Throws ImageError for a missing, empty, truncated or unsupported file, or
/// one with more than `max_pixels` pixels.
Image read_image(const std::string& path, std::size_t max_pixels = kDefaultMaxPixels);

/// Decode a PNG or JPEG held in memory; `source` names it in error messages.
Image decode_image(const uint8_t* bytes, std::size_t size, const std::string& source = "buffer",
                   std::size_t max_pixels = kDefaultMaxPixels);

/// Copy caller-owned 8-bit pixels (1 = gray, 2 = gray+alpha, 3 = colour,
/// 4 = colour+alpha channels) into an RGB Image; `row_stride` is in bytes
/// (0 = tightly packed). Use PixelOrder::BGR for OpenCV cv::Mat data.
/// Throws ImageError for an empty image or an unsupported channel count.
Image image_from_pixels(const uint8_t* data, int height, int width, int channels,
                        std::size_t row_stride = 0, PixelOrder order = PixelOrder::RGB);

/// How write_mask_png() maps class indices to gray values.
enum class MaskEncoding {
  /// label * 255 / (num_classes - 1), rounded: binary masks become 0/255.
  kScaled,
  /// The class index itself (0 .. num_classes-1).
  kLabels,
};

/// Write a mask as an 8-bit grayscale PNG. Throws ImageError on I/O failure.
void write_mask_png(const std::string& path, const Mask& mask, int num_classes,
                    MaskEncoding encoding = MaskEncoding::kScaled);

}  // namespace qtseg
