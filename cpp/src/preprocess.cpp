// The float32 arithmetic of qtseg/preprocess.py, operation for operation.
// Built with -ffp-contract=off: a fused multiply-add would round differently
// from NumPy and break byte-for-byte equality.
#include "qtseg/preprocess.hpp"

#include <algorithm>
#include <cmath>

#include "qtseg/errors.hpp"

namespace qtseg {

namespace {

/// Source indices and second-sample weight of a half-pixel bilinear resize
/// along one axis, as qtseg.preprocess._axis_weights computes them.
struct AxisWeights {
  std::vector<int> i0, i1;
  std::vector<float> w0, w1;
};

AxisWeights axis_weights(int in_size, int out_size) {
  AxisWeights a;
  a.i0.resize(out_size);
  a.i1.resize(out_size);
  a.w0.resize(out_size);
  a.w1.resize(out_size);
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  for (int o = 0; o < out_size; ++o) {
    float src = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
    src = std::max(src, 0.0f);
    const int i0 = std::min(static_cast<int>(std::floor(src)), in_size - 1);
    a.i0[o] = i0;
    a.i1[o] = std::min(i0 + 1, in_size - 1);
    a.w1[o] = src - static_cast<float>(i0);
    a.w0[o] = 1.0f - a.w1[o];
  }
  return a;
}

/// Bilinear sample of one output pixel: x first (top and bottom rows), then y.
template <typename T>
inline float sample(const T* plane, std::size_t pixel_stride, std::size_t row_stride, int y0, int y1, float wy0,
                    float wy1, int x0, int x1, float wx0, float wx1) {
  const T* r0 = plane + static_cast<std::size_t>(y0) * row_stride;
  const T* r1 = plane + static_cast<std::size_t>(y1) * row_stride;
  const float top = static_cast<float>(r0[x0 * pixel_stride]) * wx0 + static_cast<float>(r0[x1 * pixel_stride]) * wx1;
  const float bottom = static_cast<float>(r1[x0 * pixel_stride]) * wx0 + static_cast<float>(r1[x1 * pixel_stride]) * wx1;
  return top * wy0 + bottom * wy1;
}

}  // namespace

void preprocess_into(const Image& image, const PreprocessSpec& spec, float* out) {
  if (image.height <= 0 || image.width <= 0 ||
      image.pixels.size() != static_cast<std::size_t>(image.height) * image.width * 3) {
    throw ImageError("preprocess: image must be non-empty (H, W, 3) uint8 RGB, got " +
                     std::to_string(image.height) + "x" + std::to_string(image.width) + " with " +
                     std::to_string(image.pixels.size()) + " bytes");
  }
  const int out_h = spec.input_height;
  const int out_w = spec.input_width;
  const AxisWeights ay = axis_weights(image.height, out_h);
  const AxisWeights ax = axis_weights(image.width, out_w);
  const std::size_t row_stride = static_cast<std::size_t>(image.width) * 3;
  const std::size_t plane = static_cast<std::size_t>(out_h) * out_w;
  for (int c = 0; c < 3; ++c) {
    // Tensor channel c reads RGB channel c, or 2 - c for BGR.
    const int src_c = spec.channel_order == ChannelOrder::RGB ? c : 2 - c;
    const uint8_t* src = image.pixels.data() + src_c;
    const float scale = spec.scale;
    const float mean = spec.mean[c];
    const float stddev = spec.stddev[c];
    float* dst = out + c * plane;
    for (int y = 0; y < out_h; ++y) {
      for (int x = 0; x < out_w; ++x) {
        const float v = sample(src, 3, row_stride, ay.i0[y], ay.i1[y], ay.w0[y], ay.w1[y], ax.i0[x], ax.i1[x],
                               ax.w0[x], ax.w1[x]);
        dst[static_cast<std::size_t>(y) * out_w + x] = (v / scale - mean) / stddev;
      }
    }
  }
}

Tensor preprocess(const std::vector<Image>& images, const PreprocessSpec& spec) {
  if (images.empty()) throw SpecError("preprocess() got no images");
  Tensor out({static_cast<int64_t>(images.size()), 3, spec.input_height, spec.input_width});
  const std::size_t per_image = 3 * static_cast<std::size_t>(spec.input_height) * spec.input_width;
  for (std::size_t n = 0; n < images.size(); ++n) preprocess_into(images[n], spec, out.data.data() + n * per_image);
  return out;
}

Mask postprocess(const float* logits, int channels, int height, int width, int out_height, int out_width) {
  if (channels < 1 || channels > 256 || height <= 0 || width <= 0 || out_height <= 0 || out_width <= 0) {
    throw ShapeError("postprocess: invalid logits (" + std::to_string(channels) + ", " + std::to_string(height) +
                     ", " + std::to_string(width) + ") or output size " + std::to_string(out_height) + "x" +
                     std::to_string(out_width));
  }
  const AxisWeights ay = axis_weights(height, out_height);
  const AxisWeights ax = axis_weights(width, out_width);
  const std::size_t plane = static_cast<std::size_t>(height) * width;
  Mask mask;
  mask.height = out_height;
  mask.width = out_width;
  mask.labels.resize(static_cast<std::size_t>(out_height) * out_width);
  for (int y = 0; y < out_height; ++y) {
    for (int x = 0; x < out_width; ++x) {
      int best = 0;
      float best_value = 0.0f;
      for (int c = 0; c < channels; ++c) {
        const float v = sample(logits + c * plane, 1, width, ay.i0[y], ay.i1[y], ay.w0[y], ay.w1[y], ax.i0[x],
                               ax.i1[x], ax.w0[x], ax.w1[x]);
        // Strictly greater keeps the lowest index on ties; the first NaN wins, as in numpy.argmax.
        if (c == 0 || (!std::isnan(best_value) && (v > best_value || std::isnan(v)))) {
          best = c;
          best_value = v;
        }
      }
      mask.labels[static_cast<std::size_t>(y) * out_width + x] = static_cast<uint8_t>(best);
    }
  }
  return mask;
}

std::vector<Mask> postprocess(const Tensor& logits, const std::vector<std::array<int, 2>>& original_sizes) {
  if (logits.shape.size() != 4) {
    throw ShapeError("postprocess: logits must be (N, C, H, W), got " + shape_to_string(logits.shape));
  }
  const int64_t n = logits.shape[0];
  if (static_cast<std::size_t>(n) != original_sizes.size()) {
    throw ShapeError("postprocess: " + std::to_string(n) + " logit samples but " +
                     std::to_string(original_sizes.size()) + " original sizes");
  }
  const int c = static_cast<int>(logits.shape[1]);
  const int h = static_cast<int>(logits.shape[2]);
  const int w = static_cast<int>(logits.shape[3]);
  const std::size_t per_sample = static_cast<std::size_t>(c) * h * w;
  std::vector<Mask> masks;
  masks.reserve(original_sizes.size());
  for (int64_t i = 0; i < n; ++i) {
    masks.push_back(postprocess(logits.data.data() + i * per_sample, c, h, w, original_sizes[i][0],
                                original_sizes[i][1]));
  }
  return masks;
}

}  // namespace qtseg
