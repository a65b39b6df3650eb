// ONNX Runtime backend (CPU execution provider). Compiled only when CMake
// finds onnxruntime_cxx_api.h and libonnxruntime; the pip wheel ships no
// headers, so this file was not compiled in this project's CI.
// Ort::Session::Run is documented as safe to call from several threads.
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "backends/factories.hpp"
#include "qtseg/errors.hpp"

namespace qtseg::detail {

namespace {

class OrtBackend final : public Backend {
 public:
  OrtBackend(const Manifest& manifest, const BackendOptions& options)
      : Backend(manifest.inputs.front(), manifest.outputs.front()),
        env_(ORT_LOGGING_LEVEL_WARNING, "qtseg"),
        session_(nullptr) {
    model_file_ = manifest.file("model");
    Ort::SessionOptions session_options;
    session_options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    if (options.num_threads > 0) session_options.SetIntraOpNumThreads(options.num_threads);
    // The manifest's runtime.properties are session config entries (e.g.
    // "session.disable_quant_qdq"), applied verbatim as the Python loader does.
    for (const auto& [key, value] : manifest.runtime.properties) {
      try {
        session_options.AddConfigEntry(key.c_str(), value.c_str());
      } catch (const Ort::Exception& e) {
        throw RuntimeError("ONNX Runtime refuses session config entry " + key + "=" + value + " from " +
                           manifest.directory + "/manifest.json: " + e.what());
      }
      properties_[key] = value;
    }
    try {
      session_ = Ort::Session(env_, model_file_.c_str(), session_options);
    } catch (const Ort::Exception& e) {
      throw RuntimeError("ONNX Runtime cannot load " + model_file_ + ": " + e.what());
    }
    check_port(true);
    check_port(false);
  }

  std::string name() const override { return "ort"; }

  std::string describe() const override {
    return std::string("onnxruntime ") + OrtGetApiBase()->GetVersionString() + ", CPU, model " + model_file_;
  }

  // ONNX Runtime has no read-back of session config entries; these are the
  // entries given to the session (AddConfigEntry throws on a malformed one).
  std::map<std::string, std::string> runtime_properties() const override { return properties_; }

 protected:
  Tensor run(const Tensor& input) const override {
    try {
      const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
      // Wraps the caller's buffer without copying; ONNX Runtime only reads it.
      Ort::Value in = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(input.data.data()), input.data.size(),
                                                      input.shape.data(), input.shape.size());
      const char* in_names[] = {input_meta().name.c_str()};
      const char* out_names[] = {output_meta().name.c_str()};
      std::vector<Ort::Value> outputs = session_.Run(Ort::RunOptions{nullptr}, in_names, &in, 1, out_names, 1);
      const Ort::TensorTypeAndShapeInfo info = outputs.front().GetTensorTypeAndShapeInfo();
      Tensor result(info.GetShape());
      const float* data = outputs.front().GetTensorData<float>();
      std::copy(data, data + result.data.size(), result.data.begin());
      return result;
    } catch (const Ort::Exception& e) {
      throw RuntimeError(std::string("ONNX Runtime inference failed: ") + e.what());
    }
  }

 private:
  void check_port(bool is_input) {
    const TensorMeta& meta = is_input ? input_meta() : output_meta();
    const std::size_t count = is_input ? session_.GetInputCount() : session_.GetOutputCount();
    Ort::AllocatorWithDefaultOptions allocator;
    std::string names;
    for (std::size_t i = 0; i < count; ++i) {
      const std::string port = is_input ? session_.GetInputNameAllocated(i, allocator).get()
                                        : session_.GetOutputNameAllocated(i, allocator).get();
      names += (names.empty() ? "" : ", ") + port;
      if (port != meta.name) continue;
      const Ort::TypeInfo type = is_input ? session_.GetInputTypeInfo(i) : session_.GetOutputTypeInfo(i);
      const auto tensor_info = type.GetTensorTypeAndShapeInfo();
      if (tensor_info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
        throw SpecError(model_file_ + ": '" + port + "' is not float32; only float32 I/O is supported");
      }
      std::vector<int64_t> shape = tensor_info.GetShape();  // symbolic dimensions read as -1
      bool ok = shape.size() == meta.shape.size();
      for (std::size_t d = 0; ok && d < shape.size(); ++d) {
        ok = shape[d] < 0 || meta.shape[d] == -1 || shape[d] == meta.shape[d];
      }
      if (!ok) {
        throw SpecError("manifest/model mismatch: '" + port + "' is " + shape_to_string(shape) + " in " + model_file_ +
                        " but " + shape_to_string(meta.shape) + " in manifest.json");
      }
      return;
    }
    throw SpecError("manifest/model mismatch: manifest " + std::string(is_input ? "input" : "output") + " '" +
                    meta.name + "' is not in " + model_file_ + " (model has: " + names + ")");
  }

  std::string model_file_;
  std::map<std::string, std::string> properties_;
  Ort::Env env_;
  mutable Ort::Session session_;
};

}  // namespace

std::unique_ptr<Backend> make_ort_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<OrtBackend>(manifest, options);
}

}  // namespace qtseg::detail
