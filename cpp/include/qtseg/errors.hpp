// Exception types thrown by libqtseg_infer. Every message names the file or
// tensor involved, so a one-line print of what() is enough for a user.
#pragma once

#include <stdexcept>
#include <string>

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

/// The runtime (OpenVINO, TensorRT, ONNX Runtime) failed while loading or running.
class RuntimeError : public Error {
 public:
  using Error::Error;
};

}  // namespace qtseg
