#include "qtseg/image.hpp"

#include <cmath>
#include <fstream>
#include <iterator>

#include "image_codecs.hpp"
#include "qtseg/errors.hpp"

namespace qtseg {

namespace {

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ImageError("image not found or unreadable: " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (file.bad()) throw ImageError("cannot read image " + path);
  return bytes;
}

}  // namespace

void detail::check_pixel_limit(uint64_t width, uint64_t height, std::size_t max_pixels, const std::string& source) {
  if (width * height > max_pixels) {
    throw ImageError("image " + source + " is " + std::to_string(width) + " x " + std::to_string(height) + " = " +
                     std::to_string(width * height) + " pixels, more than the limit of " + std::to_string(max_pixels) +
                     " (decompression bomb guard); refused before decoding (raise the limit with --max-pixels, or "
                     "max_pixels in the C++ API)");
  }
}

Image decode_image(const uint8_t* bytes, std::size_t size, const std::string& source, std::size_t max_pixels) {
  if (size == 0) throw ImageError("cannot decode image " + source + ": file is empty");
  if (detail::is_png(bytes, size)) return detail::decode_png(bytes, size, source, max_pixels);
  if (detail::is_jpeg(bytes, size)) return detail::decode_jpeg(bytes, size, source, max_pixels);
  throw ImageError("cannot decode image " + source +
                   ": not a PNG or JPEG file (the C++ reader supports PNG and JPEG only)");
}

Image read_image(const std::string& path, std::size_t max_pixels) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path, max_pixels);
}

Image image_from_pixels(const uint8_t* data, int height, int width, int channels,
                        std::size_t row_stride, PixelOrder order) {
  if (data == nullptr || height <= 0 || width <= 0) {
    throw ImageError("image_from_pixels: empty image (" + std::to_string(height) + "x" +
                     std::to_string(width) + ")");
  }
  if (channels < 1 || channels > 4) {
    throw ImageError("image_from_pixels: expected 1, 2, 3 or 4 channels, got " +
                     std::to_string(channels));
  }
  if (row_stride == 0) row_stride = static_cast<std::size_t>(width) * channels;
  if (row_stride < static_cast<std::size_t>(width) * channels) {
    throw ImageError("image_from_pixels: row_stride smaller than width * channels");
  }
  Image image;
  image.height = height;
  image.width = width;
  image.pixels.resize(static_cast<std::size_t>(height) * width * 3);
  const bool colour = channels >= 3;
  const bool swap = colour && order == PixelOrder::BGR;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = data + static_cast<std::size_t>(y) * row_stride;
    uint8_t* out = image.pixels.data() + static_cast<std::size_t>(y) * width * 3;
    for (int x = 0; x < width; ++x, row += channels, out += 3) {
      if (!colour) {
        out[0] = out[1] = out[2] = row[0];  // gray (+ alpha, dropped)
      } else {
        out[0] = row[swap ? 2 : 0];
        out[1] = row[1];
        out[2] = row[swap ? 0 : 2];  // a fourth (alpha) channel is dropped
      }
    }
  }
  return image;
}

void write_mask_png(const std::string& path, const Mask& mask, int num_classes, MaskEncoding encoding) {
  if (mask.height <= 0 || mask.width <= 0 ||
      mask.labels.size() != static_cast<std::size_t>(mask.height) * mask.width) {
    throw ImageError("write_mask_png: mask size does not match its labels (" + path + ")");
  }
  if (num_classes < 2 || num_classes > 256) {
    throw ImageError("write_mask_png: num_classes must be in [2, 256], got " + std::to_string(num_classes));
  }
  std::vector<uint8_t> lut(256, 0);
  for (int label = 0; label < 256; ++label) {
    if (encoding == MaskEncoding::kLabels) {
      lut[label] = static_cast<uint8_t>(label);
    } else {
      const int clamped = label < num_classes ? label : num_classes - 1;
      lut[label] = static_cast<uint8_t>(std::lround(clamped * 255.0 / (num_classes - 1)));
    }
  }
  std::vector<uint8_t> gray(mask.labels.size());
  for (std::size_t i = 0; i < gray.size(); ++i) gray[i] = lut[mask.labels[i]];
  detail::encode_gray_png(path, gray.data(), mask.height, mask.width);
}

}  // namespace qtseg
