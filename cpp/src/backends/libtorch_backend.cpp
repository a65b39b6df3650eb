// libtorch backend: an AOTInductor package (format "aoti", model.pt2) loaded with
// torch::inductor::AOTIModelPackageLoader. Compiled only with
// -DQTSEG_WITH_LIBTORCH=ON (or AUTO) and a found Torch CMake package.
//
// The package is native code for one device: its metadata key AOTI_DEVICE_KEY
// ("cpu" or "cuda") is read before the shared library inside is loaded. The
// compiled code checks no input shapes, so the batch maximum the exporter
// stored (qtseg.max_batch) is enforced here; the rest of the shape is checked
// by Backend::infer against the manifest.
//
// CUDA packages: the AOTInductor runner launches every kernel from the host
// (577 per call for qtseg-v2 FP16; on the H200 at batch 1, host clock with
// copies: 5.2 ms, and 2.4 ms replayed as a CUDA graph, docs/aoti.md). With
// QTSEG_LIBTORCH_CUDA_GRAPH=1 the backend captures one CUDA graph of the
// runner per input shape after a warm-up and replays it. The package is then
// loaded with AOTInductor's single-threaded runner: the default runner records
// and queries a CUDA event around every run (to hand model instances between
// threads), and that query invalidates a capture (measured on the H200; calls
// are serialized by mutex_ here anyway). The capture uses CUDA's relaxed mode.
// A failed capture becomes an error and the backend goes on without graphs.
// Opt-in until measured on more GPUs. That code needs libtorch's CUDA
// libraries and is compiled only against a CUDA build of torch
// (QTSEG_LIBTORCH_CUDA, set by cpp/cmake/QtsegLibtorch.cmake).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/version.h>

#if defined(QTSEG_LIBTORCH_CUDA)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "backends/factories.hpp"
#include "qtseg/errors.hpp"

namespace qtseg::detail {

namespace {

using Metadata = std::unordered_map<std::string, std::string>;

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

/// BackendOptions::device -> (wants_gpu, index): "CPU"/"cpu" -> (false, -1);
/// "GPU", "cuda" -> (true, -1 = current device); "cuda:1", "GPU.1", "1" -> (true, 1).
std::pair<bool, int> parse_device(const std::string& device) {
  const std::string d = lower(device);
  if (d.empty() || d == "cpu") return {false, -1};
  std::size_t end = d.size();
  while (end > 0 && std::isdigit(static_cast<unsigned char>(d[end - 1]))) --end;
  const std::string kind = d.substr(0, end);
  const int index = end == d.size() ? -1 : std::stoi(d.substr(end));
  if (kind.empty() || kind == "cuda" || kind == "cuda:" || kind == "gpu" || kind == "gpu.") return {true, index};
  throw RuntimeError("libtorch backend: unsupported device '" + device + "' (CPU, GPU, cuda or cuda:N)");
}

#if defined(QTSEG_LIBTORCH_CUDA)
/// CUDA-graph replay for CUDA packages when QTSEG_LIBTORCH_CUDA_GRAPH=1.
bool cuda_graph_wanted() {
  const char* env = std::getenv("QTSEG_LIBTORCH_CUDA_GRAPH");
  return env != nullptr && std::string(env) == "1";
}
#endif

std::string value_or(const Metadata& meta, const std::string& key, const std::string& fallback) {
  const auto it = meta.find(key);
  return it == meta.end() || it->second.empty() ? fallback : it->second;
}

class LibtorchBackend final : public Backend {
 public:
  LibtorchBackend(const Manifest& manifest, const BackendOptions& options)
      : Backend(manifest.inputs.front(), manifest.outputs.front()), package_(manifest.file("model")) {
    if (!manifest.runtime.properties.empty()) {
      // A package's settings are compiled in; a property the manifest asks for
      // cannot be applied, and silently ignoring it is not an option.
      throw SpecError(manifest.directory + "/manifest.json: runtime.properties: the libtorch backend has no " +
                      "runtime properties to apply, got '" + manifest.runtime.properties.begin()->first + "'");
    }
    Metadata meta;
    try {
      meta = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(package_, "model");
    } catch (const std::exception& e) {
      throw ArtifactError(package_ + " is not a readable AOTInductor package: " + e.what());
    }
    compiled_for_ = value_or(meta, "AOTI_DEVICE_KEY", "cpu");
    target_ = compiled_for_ == "cuda" ? "sm " + value_or(meta, "AOTI_COMPUTE_CAPABILITY", "?")
                                      : value_or(meta, "AOTI_CPU_ISA", "no vector ISA");
    check_package_input(meta);
    const std::string max_batch = value_or(meta, "qtseg.max_batch", "");
    if (!max_batch.empty()) max_batch_ = std::stoll(max_batch);

    const auto [wants_gpu, index] = parse_device(options.device);
    if (compiled_for_ == "cpu" && wants_gpu) {
      throw RuntimeError(package_ + " was compiled for CPU; it cannot run on device '" + options.device +
                         "' (export it again for CUDA)");
    }
    if (compiled_for_ == "cuda") {
      if (!torch::cuda::is_available()) {
        throw RuntimeError(package_ + " was compiled for CUDA (" + target_ + ") but libtorch " + TORCH_VERSION +
                           " sees no CUDA device");
      }
      device_ = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index < 0 ? 0 : index));
      if (manifest.precision == "fp32" || manifest.precision.empty()) {
        // ATen's cuDNN default is TF32 convolutions; an fp32 artifact must match
        // the FP32 reference. These switches are process-wide.
        at::globalContext().setAllowTF32CuDNN(false);
        at::globalContext().setAllowTF32CuBLAS(false);
        tf32_note_ = ", TF32 off";
      }
    }
    if (options.num_threads > 0) at::set_num_threads(options.num_threads);
#if defined(QTSEG_LIBTORCH_CUDA)
    use_graph_ = device_.is_cuda() && cuda_graph_wanted();
#endif
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          package_, "model", /*run_single_threaded=*/use_graph_, /*num_runners=*/1,
          static_cast<c10::DeviceIndex>(device_.is_cuda() ? device_.index() : -1));
    } catch (const std::exception& e) {
      throw RuntimeError("AOTInductor cannot load " + package_ + ": " + e.what());
    }
  }

  std::string name() const override { return "libtorch"; }

  std::string describe() const override {
    std::ostringstream out;
    out << "libtorch " << TORCH_VERSION << " (AOTInductor), package compiled for " << compiled_for_ << " ("
        << target_ << "), device " << device_.str() << tf32_note_
        << (device_.is_cuda() ? (use_graph_ ? ", CUDA graph per input shape" : ", no CUDA graph") : "")
        << ", threads " << at::get_num_threads() << ", model " << package_;
    return out.str();
  }

 protected:
  Tensor run(const Tensor& input) const override {
    if (max_batch_ > 0 && !input.shape.empty() && input.shape[0] > max_batch_) {
      throw ShapeError("batch " + std::to_string(input.shape[0]) + " exceeds the maximum batch " +
                       std::to_string(max_batch_) + " that " + package_ + " was compiled for");
    }
    // One runner: calls are serialized (the loader's run() is not const).
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      c10::InferenceMode guard;
      // Wraps the caller's buffer without copying; the compiled graph only reads it.
      at::Tensor in = at::from_blob(const_cast<float*>(input.data.data()), input.shape, at::kFloat);
      at::Tensor device_out;
      if (use_graph_) {
        device_out = replay(in);
      } else {
        if (device_.is_cuda()) in = in.to(device_);
        const std::vector<at::Tensor> outputs = loader_->run({in});
        if (outputs.empty()) throw RuntimeError(package_ + " returned no outputs");
        device_out = outputs.front();
      }
      const at::Tensor out = device_out.to(at::kCPU, at::kFloat).contiguous();
      Tensor result(std::vector<int64_t>(out.sizes().begin(), out.sizes().end()));
      std::memcpy(result.data.data(), out.data_ptr<float>(), result.data.size() * sizeof(float));
      return result;
    } catch (const c10::Error& e) {
      throw RuntimeError(std::string("AOTInductor inference failed: ") + e.what_without_backtrace());
    } catch (const RuntimeError&) {
      throw;
    } catch (const std::exception& e) {  // e.g. the model container's std::runtime_error
      throw RuntimeError(std::string("AOTInductor inference failed: ") + e.what());
    }
  }

 private:
#if defined(QTSEG_LIBTORCH_CUDA)
  struct Graph {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    at::Tensor input;   // static device input the graph reads
    at::Tensor output;  // static device output the graph writes
  };

  /// Copy `host` into the graph of its shape (captured on first use) and replay it.
  at::Tensor replay(const at::Tensor& host) const {
    const std::vector<int64_t> shape(host.sizes().begin(), host.sizes().end());
    auto it = graphs_.find(shape);
    if (it == graphs_.end()) it = graphs_.emplace(shape, capture(host)).first;
    Graph& g = it->second;
    g.input.copy_(host);
    g.graph->replay();
    return g.output;
  }

  /// Warm up on a side stream (lazy init, cuDNN/cuBLAS choices), then record one run.
  Graph capture(const at::Tensor& host) const {
    c10::cuda::CUDAGuard device_guard(device_);
    Graph g;
    g.input = host.to(device_);
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();  // the input is on the device
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, device_.index());
    {
      c10::cuda::CUDAStreamGuard stream_guard(side);
      for (int i = 0; i < 3; ++i) loader_->run({g.input});
      side.synchronize();
      g.graph = std::make_unique<at::cuda::CUDAGraph>();
      g.graph->capture_begin({0, 0}, cudaStreamCaptureModeRelaxed);
      std::vector<at::Tensor> outputs;
      try {
        outputs = loader_->run({g.input});
        g.graph->capture_end();
      } catch (const std::exception& e) {
        // A graph whose capture failed can throw from its destructor (std::terminate):
        // end the capture if still open, keep (leak) the object, run without graphs.
        try {
          g.graph->capture_end();
        } catch (...) {
        }
        (void)g.graph.release();
        use_graph_ = false;
        throw RuntimeError("CUDA-graph capture of " + package_ + " failed (" + e.what() +
                           "); unset QTSEG_LIBTORCH_CUDA_GRAPH");
      }
      if (outputs.empty()) throw RuntimeError(package_ + " returned no outputs");
      g.output = outputs.front();
    }
    return g;
  }

  mutable std::map<std::vector<int64_t>, Graph> graphs_;  // guarded by mutex_
#else
  at::Tensor replay(const at::Tensor&) const { throw RuntimeError("CUDA graphs need a CUDA build of libtorch"); }
#endif

  /// The package's own record of its input (qtseg.input) must match the manifest.
  void check_package_input(const Metadata& meta) const {
    const std::string text = value_or(meta, "qtseg.input", "");
    if (text.empty()) return;  // a package not written by qtseg-export
    std::vector<int64_t> shape;
    try {
      shape = nlohmann::json::parse(text).at("shape").get<std::vector<int64_t>>();
    } catch (const std::exception& e) {
      throw SpecError(package_ + ": unreadable qtseg.input metadata: " + e.what());
    }
    if (shape != input_meta().shape) {
      throw SpecError("manifest/model mismatch: " + package_ + " was compiled for input " + shape_to_string(shape) +
                      " but manifest.json declares " + shape_to_string(input_meta().shape));
    }
  }

  std::string package_;
  std::string compiled_for_;
  std::string target_;
  std::string tf32_note_;
  int64_t max_batch_ = 0;
  mutable bool use_graph_ = false;  // cleared when a capture fails
  at::Device device_ = at::Device(at::kCPU);
  mutable std::mutex mutex_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;  // run() is non-const; guarded by mutex_
};

}  // namespace

std::unique_ptr<Backend> make_libtorch_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<LibtorchBackend>(manifest, options);
}

}  // namespace qtseg::detail
