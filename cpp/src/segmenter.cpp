#include "qtseg/segmenter.hpp"

#include <algorithm>

#include "qtseg/errors.hpp"

namespace qtseg {

Segmenter::Segmenter(const std::string& artifact_dir, const BackendOptions& options)
    : manifest_(Manifest::load(artifact_dir)), backend_(open_backend(manifest_, options)) {}

Tensor Segmenter::preprocess(const std::vector<Image>& images) const { return qtseg::preprocess(images, spec()); }

Tensor Segmenter::infer(const Tensor& input) const {
  if (input.shape.size() != 4 || input.shape[0] < 1) {
    throw ShapeError("infer() expects an (N, 3, H, W) tensor, got " + shape_to_string(input.shape));
  }
  const int64_t n = input.shape[0];
  const int64_t batch = backend_->input_meta().shape.empty() ? -1 : backend_->input_meta().shape[0];
  if (batch == -1 || batch == n) return backend_->infer(input);

  // Fixed batch size B != N: run chunks of B, zero-padding the last one.
  if (input.data.size() != input.numel()) {
    throw ShapeError("input tensor holds " + std::to_string(input.data.size()) + " values but its shape " +
                     shape_to_string(input.shape) + " needs " + std::to_string(input.numel()));
  }
  const std::size_t per_sample = input.numel() / static_cast<std::size_t>(n);
  Tensor chunk(input.shape);
  chunk.shape[0] = batch;
  chunk.data.assign(per_sample * static_cast<std::size_t>(batch), 0.0f);
  Tensor output;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t take = std::min(batch, n - start);
    std::fill(chunk.data.begin(), chunk.data.end(), 0.0f);
    std::copy_n(input.data.begin() + start * per_sample, take * per_sample, chunk.data.begin());
    const Tensor part = backend_->infer(chunk);
    const std::size_t out_per_sample = part.numel() / static_cast<std::size_t>(batch);
    if (output.shape.empty()) {
      output.shape = part.shape;
      output.shape[0] = n;
      output.data.reserve(out_per_sample * static_cast<std::size_t>(n));
    }
    output.data.insert(output.data.end(), part.data.begin(), part.data.begin() + take * out_per_sample);
  }
  return output;
}

std::vector<Mask> Segmenter::postprocess(const Tensor& logits, const std::vector<std::array<int, 2>>& sizes) const {
  return qtseg::postprocess(logits, sizes);
}

std::vector<Mask> Segmenter::segment(const std::vector<Image>& images) const {
  std::vector<std::array<int, 2>> sizes;
  for (const Image& image : images) sizes.push_back({image.height, image.width});
  return postprocess(infer(preprocess(images)), sizes);
}

Mask Segmenter::segment(const Image& image) const { return segment(std::vector<Image>{image}).front(); }

}  // namespace qtseg
