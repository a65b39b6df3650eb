#include "qtseg/segmenter.hpp"

#include <algorithm>

#include "backends/factories.hpp"
#include "qtseg/errors.hpp"

namespace qtseg {

Segmenter::Segmenter(const std::string& artifact_dir, const BackendOptions& options, const LoadOptions& load_options)
    : manifest_(Manifest::load(artifact_dir, load_options)), backend_(open_backend(manifest_, options)) {}

Tensor Segmenter::preprocess(const std::vector<Image>& images) const { return qtseg::preprocess(images, spec()); }

Tensor Segmenter::infer(const Tensor& input) const {
  if (input.shape.size() != 4 || input.shape[0] < 1) {
    throw ShapeError("infer() expects an (N, 3, H, W) tensor, got " + shape_to_string(input.shape));
  }
  const int64_t n = input.shape[0];
  const int64_t chunk_size = backend_->input_meta().shape.empty() ? -1 : backend_->input_meta().shape[0];
  if (chunk_size == -1 || chunk_size == n) return backend_->infer(input);

  // Fixed batch size B != N: run chunks of B, zero-padding the last one.
  if (input.data.size() != input.numel()) {
    throw ShapeError("input tensor holds " + std::to_string(input.data.size()) + " values but its shape " +
                     shape_to_string(input.shape) + " needs " + std::to_string(input.numel()));
  }
  const std::size_t per_sample = input.numel() / static_cast<std::size_t>(n);
  Tensor output;
  std::vector<int64_t> bad;
  std::string first_problem;
  Tensor chunk;
  chunk.shape = input.shape;
  chunk.shape[0] = chunk_size;
  chunk.data.resize(per_sample * static_cast<std::size_t>(chunk_size));
  for (int64_t start = 0; start < n; start += chunk_size) {
    const int64_t take = std::min(chunk_size, n - start);
    std::fill(chunk.data.begin(), chunk.data.end(), 0.0f);
    std::copy_n(input.data.begin() + start * per_sample, take * per_sample, chunk.data.begin());
    Tensor part;
    try {
      part = backend_->infer(chunk);
    } catch (const NonFiniteError& e) {
      // Keep going so the error names every bad sample of the call, not just this chunk's.
      for (int64_t i : e.samples()) {
        if (i < take) bad.push_back(start + i);
      }
      if (first_problem.empty()) first_problem = e.what();
      continue;
    }
    const std::size_t out_per_sample = part.numel() / static_cast<std::size_t>(part.shape[0]);
    if (output.shape.empty()) {
      output.shape = part.shape;
      output.shape[0] = n;
      output.data.assign(out_per_sample * static_cast<std::size_t>(n), 0.0f);
    }
    std::copy_n(part.data.begin(), take * out_per_sample, output.data.begin() + start * out_per_sample);
  }
  if (!first_problem.empty()) {
    // The backend's message with this call's sample indices instead of the chunk's.
    const std::size_t open = first_problem.find(" (");
    const std::size_t close = first_problem.find(')', open);
    const std::string samples = bad.empty() ? std::string("padding samples only") : detail::sample_list(bad);
    throw NonFiniteError(first_problem.substr(0, open) + " (" + samples + ", run in chunks of " +
                             std::to_string(chunk_size) + ")" + first_problem.substr(close + 1),
                         bad);
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
