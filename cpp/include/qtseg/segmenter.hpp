// qtseg::Segmenter: artifact directory in, masks out.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "qtseg/backend.hpp"
#include "qtseg/image.hpp"
#include "qtseg/manifest.hpp"
#include "qtseg/preprocess.hpp"
#include "qtseg/tensor.hpp"

namespace qtseg {

/// Loads an exported artifact (manifest.json + preprocess.json + model files)
/// and runs image -> mask end to end.
///
/// Thread safety: after construction every method is const and may be called
/// from several threads at once on the same Segmenter; each call returns
/// exactly what it returns when called alone (docs/cpp.md).
class Segmenter {
 public:
  /// Loads and verifies the artifact (Manifest::load with `load_options`),
  /// then opens its model. Throws ArtifactError (IntegrityError), SpecError
  /// (ManifestError), BackendUnavailable or RuntimeError.
  explicit Segmenter(const std::string& artifact_dir, const BackendOptions& options = {},
                     const LoadOptions& load_options = {});

  const Manifest& manifest() const { return manifest_; }
  const PreprocessSpec& spec() const { return manifest_.preprocess; }
  const Backend& backend() const { return *backend_; }

  /// Images -> (N, 3, H, W) model input.
  Tensor preprocess(const std::vector<Image>& images) const;

  /// (N, 3, H, W) -> (N, C, H, W) logits. A model exported with a fixed batch
  /// size B is run in chunks of B (the last chunk zero-padded), so any N works.
  /// NaN/Inf in the input or the logits: NonFiniteError whose samples()
  /// index this call's N samples.
  Tensor infer(const Tensor& input) const;

  /// Logits (N, C, h, w) -> one mask per original (height, width).
  std::vector<Mask> postprocess(const Tensor& logits, const std::vector<std::array<int, 2>>& sizes) const;

  /// preprocess -> infer -> postprocess for one image / a batch.
  Mask segment(const Image& image) const;
  std::vector<Mask> segment(const std::vector<Image>& images) const;

 private:
  Manifest manifest_;
  std::unique_ptr<Backend> backend_;
};

}  // namespace qtseg
