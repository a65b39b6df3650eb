// OpenVINO backend: model.xml/.bin (or model.onnx through OpenVINO's ONNX
// reader). ov::CompiledModel is thread-safe; each concurrent infer() call
// borrows its own ov::InferRequest from a pool (an idle one or a new one), so
// calls never share a request and run in parallel.
#include <openvino/openvino.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>

#include "backends/factories.hpp"
#include "qtseg/errors.hpp"

namespace qtseg::detail {

namespace {

std::vector<int64_t> to_shape(const ov::PartialShape& shape) {
  std::vector<int64_t> out;
  if (shape.rank().is_dynamic()) return out;
  for (const auto& d : shape) out.push_back(d.is_static() ? d.get_length() : -1);
  return out;
}

/// Same rank, and no dimension static on both sides with different sizes.
bool compatible(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != -1 && b[i] != -1 && a[i] != b[i]) return false;
  }
  return true;
}

std::string port_names(const std::vector<ov::Output<ov::Node>>& ports) {
  std::string out;
  for (const auto& port : ports) {
    for (const auto& name : port.get_names()) out += (out.empty() ? "" : ", ") + name;
  }
  return out.empty() ? "unnamed" : out;
}

/// The model port carrying `meta.name`, checked against the manifest shape.
ov::Output<ov::Node> find_port(const std::vector<ov::Output<ov::Node>>& ports, const TensorMeta& meta,
                               const std::string& kind, const std::string& file) {
  for (const auto& port : ports) {
    if (!port.get_names().count(meta.name)) continue;
    const std::vector<int64_t> shape = to_shape(port.get_partial_shape());
    if (!shape.empty() && !compatible(shape, meta.shape)) {
      throw SpecError("manifest/model mismatch: " + kind + " '" + meta.name + "' is " + shape_to_string(shape) +
                      " in " + file + " but " + shape_to_string(meta.shape) + " in manifest.json");
    }
    if (port.get_element_type() != ov::element::f32) {
      throw SpecError("model " + kind + " '" + meta.name + "' in " + file + " is " +
                      port.get_element_type().get_type_name() + "; only f32 " + kind + "s are supported");
    }
    return port;
  }
  throw SpecError("manifest/model mismatch: manifest " + kind + " '" + meta.name + "' is not a " + kind + " of " +
                  file + " (model " + kind + "s: " + port_names(ports) + ")");
}

class OpenVinoBackend final : public Backend {
 public:
  OpenVinoBackend(const Manifest& manifest, const BackendOptions& options)
      : Backend(manifest.inputs.front(), manifest.outputs.front()), device_(options.device) {
    const bool is_ir = manifest.format == "openvino";
    model_file_ = manifest.file("model");
    std::shared_ptr<ov::Model> model;
    try {
      model = is_ir ? core_.read_model(model_file_, manifest.file("weights")) : core_.read_model(model_file_);
    } catch (const std::exception& e) {
      throw RuntimeError("OpenVINO cannot read " + model_file_ + ": " + e.what());
    }
    if (model->inputs().size() != 1) {
      throw SpecError("manifest/model mismatch: " + model_file_ + " has " + std::to_string(model->inputs().size()) +
                      " inputs; qtseg models have exactly one");
    }
    find_port(model->inputs(), input_meta(), "input", model_file_);
    find_port(model->outputs(), output_meta(), "output", model_file_);

    ov::AnyMap config;
    if (is_ir) {
      // The manifest's runtime.properties are OpenVINO compile properties,
      // applied verbatim; INFERENCE_PRECISION_HINT (always present, checked by
      // Manifest::load) pins the precision the artifact was verified at, which
      // an IR cannot carry (the CPU plugin would otherwise pick bf16 where the
      // CPU has it).
      for (const auto& [key, value] : manifest.runtime.properties) config[key] = value;
    } else {
      // An ONNX artifact's properties are ONNX Runtime session entries, not
      // OpenVINO's; its reference arithmetic is f32.
      config[ov::hint::inference_precision.name()] = std::string("f32");
    }
    if (options.num_threads > 0) config[ov::inference_num_threads.name()] = std::to_string(options.num_threads);
    try {
      compiled_ = core_.compile_model(model, device_, config);
    } catch (const std::exception& e) {
      throw RuntimeError("OpenVINO cannot compile " + model_file_ + " for device " + device_ + ": " + e.what());
    }
    // Read every requested property back from the compiled model: a device
    // that quietly runs another inference precision than the one verified
    // would give results the manifest does not vouch for.
    for (const auto& [key, value] : config) {
      std::string actual;
      try {
        actual = compiled_.get_property(key).as<std::string>();
      } catch (const std::exception&) {
        actual = "(not reported by " + device_ + ")";
      }
      applied_[key] = actual;
      if (key == ov::hint::inference_precision.name() && actual != value.as<std::string>()) {
        throw RuntimeError("OpenVINO on device " + device_ + " runs " + model_file_ + " with " + key + "=" + actual +
                           " but the artifact was verified at " + value.as<std::string>() +
                           " (manifest runtime.properties); this device cannot run it as verified");
      }
    }
    input_port_ = compiled_.input(input_meta().name);
    output_port_ = compiled_.output(output_meta().name);
  }

  std::string name() const override { return "openvino"; }

  std::string describe() const override {
    std::ostringstream out;
    const ov::Version v = ov::get_openvino_version();
    const auto hint = applied_.find(ov::hint::inference_precision.name());
    out << "openvino " << v.buildNumber << ", device " << device_ << ", inference precision "
        << (hint == applied_.end() ? "device default" : hint->second) << ", model " << model_file_;
    return out.str();
  }

  std::map<std::string, std::string> runtime_properties() const override { return applied_; }

 protected:
  Tensor run(const Tensor& input) const override {
    Lease lease(*this);
    try {
      const ov::Shape shape(input.shape.begin(), input.shape.end());
      // Wraps the caller's buffer without copying; OpenVINO only reads it.
      ov::Tensor in(ov::element::f32, shape, const_cast<float*>(input.data.data()));
      lease.request.set_tensor(input_port_, in);
      lease.request.infer();
      const ov::Tensor out = lease.request.get_tensor(output_port_);
      const ov::Shape out_shape = out.get_shape();
      Tensor result(std::vector<int64_t>(out_shape.begin(), out_shape.end()));
      const float* data = out.data<const float>();
      std::copy(data, data + result.data.size(), result.data.begin());
      return result;
    } catch (const ov::Exception& e) {
      throw RuntimeError(std::string("OpenVINO inference failed: ") + e.what());
    }
  }

 private:
  /// Borrows an idle infer request (or makes one) and returns it on scope exit.
  struct Lease {
    explicit Lease(const OpenVinoBackend& owner) : owner(owner) {
      std::lock_guard<std::mutex> lock(owner.mutex_);
      if (owner.idle_.empty()) {
        request = owner.compiled_.create_infer_request();
      } else {
        request = std::move(owner.idle_.back());
        owner.idle_.pop_back();
      }
    }
    ~Lease() {
      std::lock_guard<std::mutex> lock(owner.mutex_);
      owner.idle_.push_back(std::move(request));
    }
    const OpenVinoBackend& owner;
    ov::InferRequest request;
  };

  std::string device_;
  std::string model_file_;
  std::map<std::string, std::string> applied_;  // property -> value read back from the compiled model
  mutable ov::Core core_;
  mutable ov::CompiledModel compiled_;  // create_infer_request() is not const
  ov::Output<const ov::Node> input_port_;
  ov::Output<const ov::Node> output_port_;
  mutable std::mutex mutex_;
  mutable std::vector<ov::InferRequest> idle_;
};

}  // namespace

std::unique_ptr<Backend> make_openvino_backend(const Manifest& manifest, const BackendOptions& options) {
  return std::make_unique<OpenVinoBackend>(manifest, options);
}

}  // namespace qtseg::detail
