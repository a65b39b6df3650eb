// PNG decode/encode with libpng. libpng reports errors by longjmp, so every
// setjmp lives in a small function that creates no C++ objects and only
// touches state reached through a pointer; the C++ side allocates in between.
#include <png.h>

#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "image_codecs.hpp"
#include "qtseg/errors.hpp"

namespace qtseg::detail {

namespace {

constexpr std::size_t kMessageSize = 256;

struct PngJob {
  const uint8_t* data = nullptr;
  std::size_t size = 0;
  std::size_t pos = 0;
  char message[kMessageSize] = "unknown libpng error";
  png_structp png = nullptr;
  png_infop info = nullptr;
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int channels = 0;
  bool gray16 = false;  // 16-bit gray is kept at 16 bits and scaled like Pillow's "I;16"
  std::size_t rowbytes = 0;
  std::vector<uint8_t> buffer;
  std::vector<png_bytep> rows;

  ~PngJob() {
    if (png != nullptr) png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr);
  }
};

void on_error(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, kMessageSize, "%s", message);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // Pillow ignores benign chunk warnings too

void on_read(png_structp png, png_bytep out, png_size_t count) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (count > job->size - job->pos) png_error(png, "file is truncated");
  std::memcpy(out, job->data + job->pos, count);
  job->pos += count;
}

bool read_header(PngJob* job) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  png_set_read_fn(job->png, job, on_read);
  png_read_info(job->png, job->info);
  const int color_type = png_get_color_type(job->png, job->info);
  const int bit_depth = png_get_bit_depth(job->png, job->info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(job->png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(job->png);
  job->gray16 = color_type == PNG_COLOR_TYPE_GRAY && bit_depth == 16;
  // Pillow keeps the high byte of 16-bit colour and gray+alpha samples.
  if (bit_depth == 16 && !job->gray16) png_set_strip_16(job->png);
  png_set_interlace_handling(job->png);
  png_read_update_info(job->png, job->info);
  job->width = png_get_image_width(job->png, job->info);
  job->height = png_get_image_height(job->png, job->info);
  job->channels = png_get_channels(job->png, job->info);
  job->rowbytes = png_get_rowbytes(job->png, job->info);
  return true;
}

bool read_pixels(PngJob* job) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  png_read_image(job->png, job->rows.data());
  return true;
}

uint8_t scale_gray16(unsigned value) {
  // Same float32 arithmetic as qtseg.imageio for Pillow's "I;16" mode:
  // (v * float32(255/65535) + 0.5) truncated.
  const float factor = static_cast<float>(255.0 / 65535.0);
  float v = static_cast<float>(value) * factor;
  v = v + 0.5f;
  if (v > 255.0f) v = 255.0f;
  return static_cast<uint8_t>(v);
}

}  // namespace

bool is_png(const uint8_t* bytes, std::size_t size) {
  return size >= 8 && png_sig_cmp(const_cast<png_bytep>(bytes), 0, 8) == 0;
}

Image decode_png(const uint8_t* bytes, std::size_t size, const std::string& source, std::size_t max_pixels) {
  auto job = std::make_unique<PngJob>();
  job->data = bytes;
  job->size = size;
  job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job.get(), on_error, on_warning);
  if (job->png != nullptr) job->info = png_create_info_struct(job->png);
  if (job->png == nullptr || job->info == nullptr) throw ImageError("cannot decode PNG " + source + ": out of memory");
  if (!read_header(job.get())) throw ImageError("cannot decode PNG " + source + ": " + job->message);
  if (job->width == 0 || job->height == 0) throw ImageError("cannot decode PNG " + source + ": empty image");
  check_pixel_limit(job->width, job->height, max_pixels, source);

  job->buffer.resize(job->rowbytes * job->height);
  job->rows.resize(job->height);
  for (png_uint_32 y = 0; y < job->height; ++y) job->rows[y] = job->buffer.data() + y * job->rowbytes;
  if (!read_pixels(job.get())) throw ImageError("cannot decode PNG " + source + ": " + job->message);

  const int width = static_cast<int>(job->width);
  const int height = static_cast<int>(job->height);
  if (job->gray16) {
    std::vector<uint8_t> gray(static_cast<std::size_t>(width) * height);
    for (std::size_t i = 0; i < gray.size(); ++i) {
      const uint8_t* sample = job->buffer.data() + 2 * i;  // big-endian in the row buffer
      gray[i] = scale_gray16((static_cast<unsigned>(sample[0]) << 8) | sample[1]);
    }
    return image_from_pixels(gray.data(), height, width, 1);
  }
  if (job->channels < 1 || job->channels > 4) {
    throw ImageError("cannot decode PNG " + source + ": unsupported channel count " + std::to_string(job->channels));
  }
  return image_from_pixels(job->buffer.data(), height, width, job->channels, job->rowbytes);
}

namespace {

struct PngWriteJob {
  std::FILE* file = nullptr;
  char message[kMessageSize] = "unknown libpng error";
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<png_bytep> rows;

  ~PngWriteJob() {
    if (png != nullptr) png_destroy_write_struct(&png, info != nullptr ? &info : nullptr);
    if (file != nullptr) std::fclose(file);
  }
};

void on_write_error(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngWriteJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, kMessageSize, "%s", message);
  png_longjmp(png, 1);
}

bool write_all(PngWriteJob* job, int height, int width) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  png_init_io(job->png, job->file);
  png_set_IHDR(job->png, job->info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(job->png, job->info);
  png_write_image(job->png, job->rows.data());
  png_write_end(job->png, nullptr);
  return true;
}

}  // namespace

void encode_gray_png(const std::string& path, const uint8_t* gray, int height, int width) {
  // Written next to the target and renamed, so a failed write leaves no half file.
  const std::string partial = path + ".part";
  auto job = std::make_unique<PngWriteJob>();
  job->file = std::fopen(partial.c_str(), "wb");
  if (job->file == nullptr) throw ImageError("cannot write PNG " + path + ": " + std::strerror(errno));
  job->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job.get(), on_write_error, on_warning);
  if (job->png != nullptr) job->info = png_create_info_struct(job->png);
  job->rows.resize(static_cast<std::size_t>(height));
  for (int y = 0; y < height; ++y) job->rows[y] = const_cast<png_bytep>(gray + static_cast<std::size_t>(y) * width);
  bool ok = job->png != nullptr && job->info != nullptr && write_all(job.get(), height, width);
  ok = (std::fclose(job->file) == 0) && ok;
  job->file = nullptr;
  if (!ok || std::rename(partial.c_str(), path.c_str()) != 0) {
    std::remove(partial.c_str());
    throw ImageError("cannot write PNG " + path + ": " + job->message);
  }
}

}  // namespace qtseg::detail
