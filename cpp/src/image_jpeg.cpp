// JPEG decode with libjpeg(-turbo), default settings as Pillow uses them
// (islow DCT, fancy upsampling). Errors arrive by longjmp; see image_png.cpp
// for why each setjmp sits in its own small function.
#include <cstdio>
// jpeglib.h needs FILE and size_t declared first.
#include <jerror.h>
#include <jpeglib.h>

#include <csetjmp>
#include <cstring>
#include <memory>
#include <vector>

#include "image_codecs.hpp"
#include "qtseg/errors.hpp"

namespace qtseg::detail {

namespace {

struct JpegJob {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = "unknown libjpeg error";
  bool created = false;
  bool truncated = false;
  bool unsupported_colour = false;
  std::vector<uint8_t> buffer;

  ~JpegJob() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

JpegJob* job_of(j_common_ptr cinfo) { return static_cast<JpegJob*>(cinfo->client_data); }

void on_error_exit(j_common_ptr cinfo) {
  JpegJob* job = job_of(cinfo);
  (*cinfo->err->format_message)(cinfo, job->message);
  std::longjmp(job->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int level) {
  // Warnings are ignored like Pillow does, except a premature end of data,
  // which Pillow reports as "image file is truncated".
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) job_of(cinfo)->truncated = true;
}

void on_output_message(j_common_ptr) {}

bool read_header(JpegJob* job, const uint8_t* bytes, std::size_t size) {
  if (setjmp(job->jump)) return false;
  jpeg_create_decompress(&job->cinfo);
  job->created = true;
  job->cinfo.client_data = job;
  jpeg_mem_src(&job->cinfo, const_cast<unsigned char*>(bytes), static_cast<unsigned long>(size));
  jpeg_read_header(&job->cinfo, TRUE);
  return true;
}

/// Picks the output colour space and starts decompression (which allocates
/// the decoder's buffers, so the pixel limit is checked before it).
bool start(JpegJob* job) {
  if (setjmp(job->jump)) return false;
  switch (job->cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      job->cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
      job->cinfo.out_color_space = JCS_RGB;
      break;
    default:  // CMYK / YCCK: Pillow converts these with its own formulas; not mirrored here
      job->unsupported_colour = true;
      return true;
  }
  jpeg_start_decompress(&job->cinfo);
  return true;
}

bool read_rows(JpegJob* job) {
  if (setjmp(job->jump)) return false;
  const std::size_t stride = static_cast<std::size_t>(job->cinfo.output_width) * job->cinfo.output_components;
  while (job->cinfo.output_scanline < job->cinfo.output_height) {
    JSAMPROW row = job->buffer.data() + job->cinfo.output_scanline * stride;
    jpeg_read_scanlines(&job->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&job->cinfo);
  return true;
}

}  // namespace

bool is_jpeg(const uint8_t* bytes, std::size_t size) {
  return size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

Image decode_jpeg(const uint8_t* bytes, std::size_t size, const std::string& source, std::size_t max_pixels) {
  auto job = std::make_unique<JpegJob>();
  job->cinfo.err = jpeg_std_error(&job->err);
  job->err.error_exit = on_error_exit;
  job->err.emit_message = on_emit_message;
  job->err.output_message = on_output_message;
  // client_data must be set before any error can fire inside jpeg_create_decompress.
  job->cinfo.client_data = job.get();
  if (!read_header(job.get(), bytes, size)) throw ImageError("cannot decode JPEG " + source + ": " + job->message);
  check_pixel_limit(job->cinfo.image_width, job->cinfo.image_height, max_pixels, source);
  if (!start(job.get())) throw ImageError("cannot decode JPEG " + source + ": " + job->message);
  if (job->unsupported_colour) {
    throw ImageError("cannot decode JPEG " + source +
                     ": CMYK/YCCK JPEGs are not supported by the C++ reader (convert to RGB first)");
  }
  const int width = static_cast<int>(job->cinfo.output_width);
  const int height = static_cast<int>(job->cinfo.output_height);
  const int channels = job->cinfo.output_components;
  if (width <= 0 || height <= 0) throw ImageError("cannot decode JPEG " + source + ": empty image");
  job->buffer.resize(static_cast<std::size_t>(width) * height * channels);
  if (!read_rows(job.get())) throw ImageError("cannot decode JPEG " + source + ": " + job->message);
  if (job->truncated) throw ImageError("cannot decode JPEG " + source + ": image file is truncated");
  return image_from_pixels(job->buffer.data(), height, width, channels);
}

}  // namespace qtseg::detail
