// Backend base class (shape checks) and the format -> backend dispatch.
#include "qtseg/backend.hpp"

#include <algorithm>

#include "backends/factories.hpp"
#include "qtseg/errors.hpp"

namespace qtseg {

Backend::Backend(TensorMeta input, TensorMeta output) : input_(std::move(input)), output_(std::move(output)) {}

Tensor Backend::infer(const Tensor& input) const {
  if (!shape_matches(input.shape, input_.shape)) {
    throw ShapeError("input tensor has shape " + shape_to_string(input.shape) + " but model input '" + input_.name +
                     "' expects " + shape_to_string(input_.shape) + " (-1 = any)");
  }
  if (input.data.size() != input.numel()) {
    throw ShapeError("input tensor holds " + std::to_string(input.data.size()) + " values but its shape " +
                     shape_to_string(input.shape) + " needs " + std::to_string(input.numel()));
  }
  if (const std::vector<int64_t> bad = non_finite_samples(input); !bad.empty()) {
    throw NonFiniteError("input tensor holds NaN or infinite values (" + detail::sample_list(bad) +
                             "); refused before inference",
                         bad);
  }
  Tensor output = run(input);
  if (output.data.size() != output.numel() || !shape_matches(output.shape, output_.shape)) {
    throw SpecError("model output '" + output_.name + "' has shape " + shape_to_string(output.shape) +
                    " but the manifest declares " + shape_to_string(output_.shape));
  }
  if (const std::vector<int64_t> bad = non_finite_samples(output); !bad.empty()) {
    throw NonFiniteError("model output '" + output_.name + "' holds NaN or infinite values (" +
                             detail::sample_list(bad) +
                             ") for finite input: the model or its weights are broken; no mask is made from it",
                         bad);
  }
  return output;
}

std::string detail::sample_list(const std::vector<int64_t>& samples) {
  std::string out = samples.size() == 1 ? "sample " : "samples ";
  for (std::size_t i = 0; i < samples.size(); ++i) out += (i ? ", " : "") + std::to_string(samples[i]);
  return out + " of the batch";
}

std::vector<std::string> compiled_backends() {
  std::vector<std::string> names;
#ifdef QTSEG_HAVE_OPENVINO
  names.emplace_back("openvino");
#endif
#ifdef QTSEG_HAVE_TENSORRT
  names.emplace_back("tensorrt");
#endif
#ifdef QTSEG_HAVE_ORT
  names.emplace_back("ort");
#endif
#ifdef QTSEG_HAVE_LIBTORCH
  names.emplace_back("libtorch");
#endif
  return names;
}

namespace {

/// Backends able to read a format, in order of preference.
std::vector<std::string> readers_of(const std::string& format) {
  if (format == "openvino") return {"openvino"};
  if (format == "tensorrt") return {"tensorrt"};
  if (format == "onnx") return {"ort", "openvino"};
  if (format == "aoti") return {"libtorch"};  // only with -DQTSEG_WITH_LIBTORCH=ON
  return {};
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? "none" : out;
}

std::unique_ptr<Backend> make(const std::string& name, const Manifest& manifest, const BackendOptions& options) {
#ifdef QTSEG_HAVE_OPENVINO
  if (name == "openvino") return detail::make_openvino_backend(manifest, options);
#endif
#ifdef QTSEG_HAVE_TENSORRT
  if (name == "tensorrt") return detail::make_tensorrt_backend(manifest, options);
#endif
#ifdef QTSEG_HAVE_ORT
  if (name == "ort") return detail::make_ort_backend(manifest, options);
#endif
#ifdef QTSEG_HAVE_LIBTORCH
  if (name == "libtorch") return detail::make_libtorch_backend(manifest, options);
#endif
  (void)manifest;
  (void)options;
  throw BackendUnavailable("backend '" + name + "' is not compiled into this build (compiled: " +
                           join(compiled_backends()) + ")");
}

}  // namespace

std::unique_ptr<Backend> open_backend(const Manifest& manifest, const BackendOptions& options) {
  const std::vector<std::string> readers = readers_of(manifest.format);
  const std::vector<std::string> compiled = compiled_backends();
  if (options.backend != "auto") {
    if (std::find(readers.begin(), readers.end(), options.backend) == readers.end()) {
      throw BackendUnavailable("backend '" + options.backend + "' cannot read format '" + manifest.format +
                               "' (readers of this format: " + join(readers) + ")");
    }
    return make(options.backend, manifest, options);
  }
  for (const std::string& name : readers) {
    if (std::find(compiled.begin(), compiled.end(), name) != compiled.end()) return make(name, manifest, options);
  }
  throw BackendUnavailable("no compiled backend reads format '" + manifest.format + "' of " + manifest.directory +
                           " (it needs: " + join(readers) + "; compiled: " + join(compiled) +
                           "; rebuild with the matching QTSEG_WITH_* option)");
}

}  // namespace qtseg
