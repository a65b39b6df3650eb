// One interface in front of every inference runtime. Each runtime is compiled
// in only when CMake found it (see compiled_backends()).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qtseg/manifest.hpp"
#include "qtseg/tensor.hpp"

namespace qtseg {

/// Runtime selection and settings, shared by every backend.
struct BackendOptions {
  /// "auto" (by manifest format: openvino -> openvino, tensorrt -> tensorrt,
  /// onnx -> ort if compiled, otherwise OpenVINO's ONNX reader), or one of
  /// "openvino", "ort", "tensorrt".
  std::string backend = "auto";
  /// OpenVINO device ("CPU", "GPU", ...); CUDA device index for TensorRT ("0").
  std::string device = "CPU";
  /// Intra-op threads (0 = runtime default).
  int num_threads = 0;
};

/// A loaded model. infer() is thread-safe: concurrent calls on one Backend
/// are allowed and return what a single-threaded call returns (OpenVINO runs
/// them in parallel on one infer request per call, ONNX Runtime's Run is
/// thread-safe, TensorRT and libtorch serialize them).
class Backend {
 public:
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  /// (N, 3, H, W) float32 -> first output, e.g. (N, C, H, W) logits. The input
  /// shape is checked against the manifest first (ShapeError on mismatch); an
  /// input holding NaN/Inf is refused before inference and an output holding
  /// NaN/Inf is refused instead of being returned (NonFiniteError, listing
  /// the offending samples).
  Tensor infer(const Tensor& input) const;

  /// Backend name: "openvino", "ort" or "tensorrt".
  virtual std::string name() const = 0;
  /// One line: runtime version, device, precision settings.
  virtual std::string describe() const = 0;
  /// The runtime properties in effect, as the runtime reports them after
  /// loading (e.g. OpenVINO's compiled-model INFERENCE_PRECISION_HINT), for
  /// the keys the manifest's runtime.properties set. Empty when the backend
  /// has none.
  virtual std::map<std::string, std::string> runtime_properties() const { return {}; }

  const TensorMeta& input_meta() const { return input_; }
  const TensorMeta& output_meta() const { return output_; }

 protected:
  Backend(TensorMeta input, TensorMeta output);
  /// Run the model on an input whose shape was already checked.
  virtual Tensor run(const Tensor& input) const = 0;

 private:
  TensorMeta input_;
  TensorMeta output_;
};

/// Names of the backends compiled into this build, e.g. {"openvino"}.
std::vector<std::string> compiled_backends();

/// Open the model of a loaded manifest. Throws BackendUnavailable when no
/// compiled backend reads the manifest's format, RuntimeError when the
/// runtime fails, SpecError when the model's I/O contradicts the manifest.
std::unique_ptr<Backend> open_backend(const Manifest& manifest, const BackendOptions& options = {});

}  // namespace qtseg
