// PreprocessSpec (preprocess.json) and the exact float32 arithmetic of
// qtseg/preprocess.py: half-pixel bilinear resize without antialiasing, then
// x = (v / scale - mean[c]) / std[c], channel order applied, NCHW layout.
// The library is compiled with -ffp-contract=off so no multiply-add is fused
// and results equal NumPy's bit for bit.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "qtseg/image.hpp"
#include "qtseg/tensor.hpp"

namespace qtseg {

enum class ChannelOrder { RGB, BGR };

/// Mirror of qtseg.preprocess.PreprocessSpec (schema "qtseg.preprocess/1").
struct PreprocessSpec {
  int input_height = 512;
  int input_width = 512;
  ChannelOrder channel_order = ChannelOrder::RGB;
  float scale = 255.0f;
  std::array<float, 3> mean{0.0f, 0.0f, 0.0f};  // in tensor channel order
  std::array<float, 3> stddev{1.0f, 1.0f, 1.0f};  // JSON key "std"; tensor channel order
  int num_classes = 2;
  std::vector<std::string> class_names{"background", "foreground"};

  /// Parse and validate JSON text with the same rules as the Python class
  /// (unknown keys rejected, sizes multiples of 32, ...). Throws SpecError.
  static PreprocessSpec from_json(const std::string& text, const std::string& source = "preprocess spec");

  /// Read preprocess.json from a file, or from a directory containing one.
  static PreprocessSpec load(const std::string& path);
};

/// One image -> (3, input_height, input_width) float32 values written to `out`
/// (which must hold 3 * input_height * input_width floats).
void preprocess_into(const Image& image, const PreprocessSpec& spec, float* out);

/// Images -> (N, 3, input_height, input_width) tensor. Throws SpecError if empty.
Tensor preprocess(const std::vector<Image>& images, const PreprocessSpec& spec);

/// Logits of one sample (C, h, w) -> label map at (out_height, out_width):
/// each channel resized with the same bilinear rule, arg-max over channels,
/// ties (and NaN, like numpy.argmax) resolved to the lowest index.
Mask postprocess(const float* logits, int channels, int height, int width, int out_height,
                 int out_width);

/// Batched form: logits (N, C, h, w) and one original (height, width) per sample.
std::vector<Mask> postprocess(const Tensor& logits, const std::vector<std::array<int, 2>>& original_sizes);

}  // namespace qtseg
