// Exception types thrown by libqtseg_infer. Every message names the file or
// tensor involved, so a one-line print of what() is enough for a user.
#pragma once

#include <stdexcept>
#include <cstdint>
#include <string>
#include <vector>

namespace qtseg {

/// Base class of every error the library throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An image that cannot be read or decoded, or has an unusable layout.
class ImageError : public Error {
 public:
  using Error::Error;
};

/// A malformed preprocess.json / manifest.json, or one that contradicts the model.
class SpecError : public Error {
 public:
  using Error::Error;
};

/// A missing or unreadable artifact file.
class ArtifactError : public Error {
 public:
  using Error::Error;
};

/// manifest.json breaks the artifact contract (schema, keys, types, paths,
/// I/O shapes vs preprocess spec, ...). One line naming the file and the field.
class ManifestError : public SpecError {
 public:
  using SpecError::SpecError;
};

/// A file the manifest lists is missing, leaves the artifact folder, or does
/// not have its recorded size or SHA-256 (changed or corrupted after export).
class IntegrityError : public ArtifactError {
 public:
  using ArtifactError::ArtifactError;
};

/// The artifact's format has no backend compiled into this build.
class BackendUnavailable : public Error {
 public:
  using Error::Error;
};

/// A tensor whose shape or size does not fit the model.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// NaN or infinity in a model input (refused before inference) or in the
/// model's output (refused instead of being turned into a mask).
/// samples() lists the batch indices that hold non-finite values.
class NonFiniteError : public Error {
 public:
  NonFiniteError(const std::string& message, std::vector<int64_t> samples)
      : Error(message), samples_(std::move(samples)) {}
  const std::vector<int64_t>& samples() const { return samples_; }

 private:
  std::vector<int64_t> samples_;
};

/// The runtime (OpenVINO, TensorRT, ONNX Runtime) failed while loading or running.
class RuntimeError : public Error {
 public:
  using Error::Error;
};

}  // namespace qtseg
