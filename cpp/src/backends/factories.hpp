// Internal: constructors of the compiled-in backends. Each is defined only
// when CMake found its runtime (QTSEG_HAVE_<RUNTIME> is then defined).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qtseg/backend.hpp"

namespace qtseg::detail {

/// "sample 2 of the batch" / "samples 0, 3 of the batch" for NonFiniteError messages.
std::string sample_list(const std::vector<int64_t>& samples);

#ifdef QTSEG_HAVE_OPENVINO
/// Reads model.xml/.bin (format "openvino") or model.onnx (format "onnx").
std::unique_ptr<Backend> make_openvino_backend(const Manifest& manifest, const BackendOptions& options);
#endif
#ifdef QTSEG_HAVE_TENSORRT
/// Deserializes model.engine (format "tensorrt"); TensorRT or TensorRT-RTX.
std::unique_ptr<Backend> make_tensorrt_backend(const Manifest& manifest, const BackendOptions& options);
#endif
#ifdef QTSEG_HAVE_ORT
/// Reads model.onnx (format "onnx") with ONNX Runtime's CPU provider.
std::unique_ptr<Backend> make_ort_backend(const Manifest& manifest, const BackendOptions& options);
#endif
#ifdef QTSEG_HAVE_LIBTORCH
/// Loads model.pt2 (format "aoti") with libtorch's AOTIModelPackageLoader.
std::unique_ptr<Backend> make_libtorch_backend(const Manifest& manifest, const BackendOptions& options);
#endif

}  // namespace qtseg::detail
