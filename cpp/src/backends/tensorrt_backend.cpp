// TensorRT / TensorRT-RTX backend (TensorRT 10+ name-based I/O API).
// NOT compiled or run in this project's CI: no NvInfer.h and no RTX GPU there.
// Written against the documented API: IRuntime::deserializeCudaEngine,
// ICudaEngine::getNbIOTensors/getIOTensorName/getTensorIOMode/getTensorShape,
// IExecutionContext::setInputShape/setTensorAddress/enqueueV3.
// One execution context is shared, so concurrent infer() calls are serialized.
#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "backends/factories.hpp"
#include "qtseg/errors.hpp"

namespace qtseg::detail {

namespace {

void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw RuntimeError(std::string("CUDA ") + what + " failed: " + cudaGetErrorString(status));
}

class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", message);
  }
};

/// A growable device allocation.
struct DeviceBuffer {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  void reserve(std::size_t wanted) {
    if (wanted <= bytes) return;
    if (ptr != nullptr) cudaFree(ptr);
    ptr = nullptr;
    bytes = 0;
    cuda_check(cudaMalloc(&ptr, wanted), "cudaMalloc");
    bytes = wanted;
  }
  ~DeviceBuffer() {
    if (ptr != nullptr) cudaFree(ptr);
  }
};

std::vector<int64_t> to_shape(const nvinfer1::Dims& dims) {
  std::vector<int64_t> out;
  for (int i = 0; i < dims.nbDims; ++i) out.push_back(dims.d[i]);
  return out;
}

bool compatible(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != -1 && b[i] != -1 && a[i] != b[i]) return false;
  }
  return true;
}

/// "CPU" (the BackendOptions default) and "" mean GPU 0; otherwise the
/// trailing number of "1", "GPU.1" or "cuda:1".
int device_index(const std::string& device) {
  std::size_t end = device.size();
  while (end > 0 && std::isdigit(static_cast<unsigned char>(device[end - 1]))) --end;
  return end == device.size() ? 0 : std::stoi(device.substr(end));
}

class TensorRtBackend final : public Backend {
 public:
  TensorRtBackend(const Manifest& manifest, const BackendOptions& options)
      : Backend(manifest.inputs.front(), manifest.outputs.front()), device_(device_index(options.device)) {
    engine_file_ = manifest.file("engine");
    if (!manifest.runtime.properties.empty()) {
      // An engine's settings are fixed when it is built; nothing to apply, and
      // silently ignoring a property the manifest asks for is not an option.
      throw SpecError(manifest.directory + "/manifest.json: runtime.properties: the TensorRT backend has no " +
                      "runtime properties to apply, got '" + manifest.runtime.properties.begin()->first + "'");
    }
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    std::ifstream file(engine_file_, std::ios::binary);
    if (!file) throw ArtifactError("cannot open TensorRT engine " + engine_file_);
    const std::vector<char> blob((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());

    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw RuntimeError("TensorRT: createInferRuntime failed");
    engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine_) {
      throw RuntimeError("TensorRT cannot deserialize " + engine_file_ +
                         " (built by another TensorRT version, or for another GPU?)");
    }
    check_io();
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw RuntimeError("TensorRT: createExecutionContext failed for " + engine_file_);
    cuda_check(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }

  ~TensorRtBackend() override {
    context_.reset();  // before the engine and runtime that own it
    engine_.reset();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "tensorrt"; }

  std::string describe() const override {
    return "tensorrt (library version " + std::to_string(getInferLibVersion()) + "), GPU " + std::to_string(device_) +
           ", engine " + engine_file_;
  }

 protected:
  Tensor run(const Tensor& input) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    cuda_check(cudaSetDevice(device_), "cudaSetDevice");
    nvinfer1::Dims dims{};
    dims.nbDims = static_cast<int32_t>(input.shape.size());
    for (std::size_t i = 0; i < input.shape.size(); ++i) dims.d[i] = input.shape[i];
    const char* in_name = input_meta().name.c_str();
    if (!context_->setInputShape(in_name, dims)) {
      throw ShapeError("TensorRT engine " + engine_file_ + " rejects input shape " + shape_to_string(input.shape) +
                       " (outside its optimization profile?)");
    }
    const std::size_t in_bytes = input.data.size() * sizeof(float);
    buffers_[input_meta().name].reserve(in_bytes);
    cuda_check(cudaMemcpyAsync(buffers_[input_meta().name].ptr, input.data.data(), in_bytes, cudaMemcpyHostToDevice,
                               stream_),
               "cudaMemcpyAsync (input)");
    context_->setTensorAddress(in_name, buffers_[input_meta().name].ptr);
    // Every output needs an address, including ones qtseg does not read.
    for (const std::string& out : output_names_) {
      const std::vector<int64_t> shape = to_shape(context_->getTensorShape(out.c_str()));
      buffers_[out].reserve(shape_numel(shape) * sizeof(float));
      context_->setTensorAddress(out.c_str(), buffers_[out].ptr);
    }
    if (!context_->enqueueV3(stream_)) throw RuntimeError("TensorRT enqueueV3 failed for " + engine_file_);
    Tensor result(to_shape(context_->getTensorShape(output_meta().name.c_str())));
    cuda_check(cudaMemcpyAsync(result.data.data(), buffers_[output_meta().name].ptr, result.data.size() * sizeof(float),
                               cudaMemcpyDeviceToHost, stream_),
               "cudaMemcpyAsync (output)");
    cuda_check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return result;
  }

 private:
  void check_io() {
    bool found_input = false;
    bool found_output = false;
    const int count = engine_->getNbIOTensors();
    for (int i = 0; i < count; ++i) {
      const std::string tensor = engine_->getIOTensorName(i);
      const bool is_input = engine_->getTensorIOMode(tensor.c_str()) == nvinfer1::TensorIOMode::kINPUT;
      if (!is_input) output_names_.push_back(tensor);
      const TensorMeta& meta = is_input ? input_meta() : output_meta();
      if (tensor != meta.name) {
        if (is_input) throw SpecError("manifest/engine mismatch: engine input '" + tensor + "' is not '" + meta.name + "'");
        continue;
      }
      (is_input ? found_input : found_output) = true;
      const std::vector<int64_t> shape = to_shape(engine_->getTensorShape(tensor.c_str()));
      if (!compatible(shape, meta.shape)) {
        throw SpecError("manifest/engine mismatch: '" + tensor + "' is " + shape_to_string(shape) + " in " +
                        engine_file_ + " but " + shape_to_string(meta.shape) + " in manifest.json");
      }
      if (engine_->getTensorDataType(tensor.c_str()) != nvinfer1::DataType::kFLOAT) {
        throw SpecError("engine tensor '" + tensor + "' in " + engine_file_ + " is not float32; rebuild the engine "
                        "with float32 I/O");
      }
    }
    if (!found_input || !found_output) {
      throw SpecError("manifest/engine mismatch: " + engine_file_ + " has no " +
                      (found_input ? "output '" + output_meta().name : "input '" + input_meta().name) + "'");
    }
  }

  int device_;
  std::string engine_file_;
  Logger logger_;
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  std::vector<std::string> output_names_;
  cudaStream_t stream_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::map<std::string, DeviceBuffer> buffers_;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<TensorRtBackend>(manifest, options);
}

}  // namespace qtseg::detail
