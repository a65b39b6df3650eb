// qtseg_infer: segment images with an exported artifact, dump tensors for
// parity checks, and time the pipeline.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "cli_args.hpp"
#include "qtseg/qtseg.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using qtseg::cli::Options;

bool host_is_little_endian() {
  const uint16_t probe = 1;
  uint8_t first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

void write_raw(const std::string& path, const void* data, std::size_t bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) throw qtseg::Error("cannot write " + path);
}

/// Raw little-endian float32, C order, no header.
void write_floats(const std::string& path, const qtseg::Tensor& tensor) {
  std::vector<float> data = tensor.data;
  if (!host_is_little_endian()) {
    for (float& v : data) {
      uint8_t b[4];
      std::memcpy(b, &v, 4);
      std::reverse(b, b + 4);
      std::memcpy(&v, b, 4);
    }
  }
  write_raw(path, data.data(), data.size() * sizeof(float));
}

/// Decoded images, raw uint8 RGB HWC, concatenated.
void write_decoded(const std::string& path, const std::vector<qtseg::Image>& images) {
  std::vector<uint8_t> all;
  for (const auto& image : images) all.insert(all.end(), image.pixels.begin(), image.pixels.end());
  write_raw(path, all.data(), all.size());
}

qtseg::Tensor read_floats(const std::string& path, std::vector<int64_t> shape) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw qtseg::Error("cannot open input tensor " + path);
  const std::size_t bytes = static_cast<std::size_t>(in.tellg());
  if (bytes % sizeof(float) != 0) throw qtseg::ShapeError(path + " is not a float32 file (" + std::to_string(bytes) + " bytes)");
  qtseg::Tensor tensor(std::move(shape));
  if (tensor.data.size() * sizeof(float) != bytes) {
    throw qtseg::ShapeError("input tensor " + path + " holds " + std::to_string(bytes / sizeof(float)) +
                            " float32 values but shape " + qtseg::shape_to_string(tensor.shape) + " needs " +
                            std::to_string(tensor.data.size()));
  }
  in.seekg(0);
  in.read(reinterpret_cast<char*>(tensor.data.data()), static_cast<std::streamsize>(bytes));
  if (!host_is_little_endian()) {
    for (float& v : tensor.data) {
      uint8_t b[4];
      std::memcpy(b, &v, 4);
      std::reverse(b, b + 4);
      std::memcpy(&v, b, 4);
    }
  }
  return tensor;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// Latency samples of one stage, printed as mean and nearest-rank percentiles.
struct Stage {
  std::string name;
  std::vector<double> ms;

  void print(std::ostream& out) const {
    if (ms.empty()) return;
    std::vector<double> s = ms;
    std::sort(s.begin(), s.end());
    const auto pct = [&](double p) {
      const std::size_t rank = static_cast<std::size_t>(std::max(1.0, std::ceil(p / 100.0 * s.size())));
      return s[std::min(rank, s.size()) - 1];
    };
    double sum = 0.0;
    for (double v : s) sum += v;
    out << std::left << std::setw(12) << name << std::right << std::fixed << std::setprecision(3) << std::setw(10)
        << sum / s.size() << std::setw(10) << pct(50) << std::setw(10) << pct(90) << std::setw(10) << pct(99)
        << std::setw(10) << s.front() << std::setw(10) << s.back() << "\n";
  }
};

std::string describe_mask(const qtseg::Mask& mask, const qtseg::PreprocessSpec& spec) {
  std::vector<std::size_t> counts(static_cast<std::size_t>(spec.num_classes), 0);
  for (uint8_t label : mask.labels) ++counts[label];
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  for (int c = 1; c < spec.num_classes; ++c) {
    out << (c > 1 ? ", " : "") << spec.class_names[c] << " "
        << 100.0 * static_cast<double>(counts[c]) / static_cast<double>(mask.labels.size()) << "%";
  }
  return out.str();
}

/// Runtime messages can span lines; the CLI promises one line on stderr per error.
std::string one_line(const std::string& text);

/// Images that failed (decoding or inference); each is reported on stderr at
/// once, the summary comes at the end.
struct Failures {
  std::vector<std::string> inputs;

  void report(const std::string& input, const std::string& message) {
    std::cout.flush();
    std::cerr << "qtseg_infer: error: " << one_line(message) << "\n";
    inputs.push_back(input);
  }
};

/// The decoded images that are still in the run, with their --input index.
struct Batch {
  std::vector<std::size_t> index;
  std::vector<qtseg::Image> images;

  void drop(const std::vector<int64_t>& positions) {
    for (auto it = positions.rbegin(); it != positions.rend(); ++it) {
      index.erase(index.begin() + *it);
      images.erase(images.begin() + *it);
    }
  }
};

std::string runtime_properties_line(const qtseg::Backend& backend) {
  std::string out;
  for (const auto& [key, value] : backend.runtime_properties()) out += (out.empty() ? "" : ", ") + key + "=" + value;
  return out.empty() ? "none" : out;
}

int run(const Options& o) {
  // Preprocessing-only mode needs no model.
  std::unique_ptr<qtseg::Segmenter> segmenter;
  qtseg::PreprocessSpec spec;
  if (!o.artifact.empty()) {
    qtseg::BackendOptions backend_options;
    backend_options.backend = o.backend;
    backend_options.device = o.device;
    backend_options.num_threads = o.threads;
    qtseg::LoadOptions load_options;
    load_options.verify_hashes = o.verify_hashes;
    const auto t0 = Clock::now();
    segmenter = std::make_unique<qtseg::Segmenter>(o.artifact, backend_options, load_options);
    const double load_ms = ms_since(t0);
    spec = segmenter->spec();
    const qtseg::Manifest& m = segmenter->manifest();
    std::cout << "artifact: " << m.directory << " (model " << m.model.name << ", target " << m.target << ", format "
              << m.format << ", precision " << m.precision << ")\n"
              << "verified: " << m.files.size() << " files, sizes"
              << (o.verify_hashes ? " and SHA-256" : " only (--no-verify-hashes)") << "; loaded in " << std::fixed
              << std::setprecision(1) << load_ms << " ms\n"
              << std::defaultfloat << "backend: " << segmenter->backend().describe() << "\n"
              << "runtime properties: " << runtime_properties_line(segmenter->backend()) << "\n";
  } else {
    spec = qtseg::PreprocessSpec::load(o.spec);
  }

  Failures failures;
  Batch batch;
  for (std::size_t i = 0; i < o.inputs.size(); ++i) {
    try {
      batch.images.push_back(qtseg::read_image(o.inputs[i], o.max_pixels));
      batch.index.push_back(i);
    } catch (const qtseg::ImageError& e) {
      failures.report(o.inputs[i], e.what());
      if (o.strict) return 1;
    }
  }
  const auto summary = [&]() {
    if (o.inputs.size() > 1 || !failures.inputs.empty()) {
      std::cout << "summary: " << o.inputs.size() - failures.inputs.size() << " of " << o.inputs.size()
                << " images segmented";
      if (!failures.inputs.empty()) {
        std::cout << ", " << failures.inputs.size() << " failed:";
        for (const auto& input : failures.inputs) std::cout << " " << input;
      }
      std::cout << "\n";
    }
    return failures.inputs.empty() ? 0 : 1;
  };
  if (!o.inputs.empty() && batch.images.empty()) return summary();

  qtseg::Tensor input;
  if (o.input_tensor.empty()) {
    input = qtseg::preprocess(batch.images, spec);
  } else {
    std::vector<int64_t> shape = o.input_shape;
    if (shape.empty()) {
      shape = segmenter->backend().input_meta().shape;
      if (std::find(shape.begin(), shape.end(), -1) != shape.end()) {
        throw qtseg::ShapeError("the model input " + qtseg::shape_to_string(shape) +
                                " is dynamic: give --input-shape N,3,H,W");
      }
    }
    input = read_floats(o.input_tensor, shape);
  }
  if (!segmenter) {
    if (!o.dump_decoded.empty()) write_decoded(o.dump_decoded, batch.images);
    if (!o.dump_input.empty()) write_floats(o.dump_input, input);
    std::cout << "input: " << qtseg::shape_to_string(input.shape) << "\n";
    return summary();
  }

  // A model that turns some images into NaN/Inf logits: those images fail,
  // the others are run again without them (a raw --input-tensor just fails).
  qtseg::Tensor logits;
  while (true) {
    try {
      logits = segmenter->infer(input);
      break;
    } catch (const qtseg::NonFiniteError& e) {
      if (!o.input_tensor.empty() || e.samples().empty()) throw;
      for (int64_t k : e.samples()) failures.report(o.inputs[batch.index[k]], o.inputs[batch.index[k]] + ": " + e.what());
      if (o.strict) return 1;
      batch.drop(e.samples());
      if (batch.images.empty()) return summary();
      input = qtseg::preprocess(batch.images, spec);
    }
  }
  if (!o.dump_decoded.empty()) write_decoded(o.dump_decoded, batch.images);
  if (!o.dump_input.empty()) write_floats(o.dump_input, input);
  if (!o.dump_logits.empty()) write_floats(o.dump_logits, logits);
  std::cout << "input: " << qtseg::shape_to_string(input.shape) << "\n";
  std::cout << "logits: " << qtseg::shape_to_string(logits.shape) << "\n";

  std::vector<std::array<int, 2>> sizes;
  for (const auto& image : batch.images) sizes.push_back({image.height, image.width});
  if (!batch.images.empty()) {
    const std::vector<qtseg::Mask> masks = segmenter->postprocess(logits, sizes);
    const auto encoding = o.raw_labels ? qtseg::MaskEncoding::kLabels : qtseg::MaskEncoding::kScaled;
    for (std::size_t i = 0; i < masks.size(); ++i) {
      const std::size_t k = batch.index[i];
      std::cout << o.inputs[k] << " (" << masks[i].width << "x" << masks[i].height << "): "
                << describe_mask(masks[i], spec);
      if (!o.outputs.empty()) {
        qtseg::write_mask_png(o.outputs[k], masks[i], spec.num_classes, encoding);
        std::cout << " -> " << o.outputs[k];
      }
      std::cout << "\n";
    }
  }

  if (o.bench > 0) {
    Stage pre{"preprocess", {}}, model{"infer", {}}, post{"postprocess", {}}, total{"end-to-end", {}};
    for (int i = 0; i < o.warmup + o.bench; ++i) {
      const auto t0 = Clock::now();
      const qtseg::Tensor x = batch.images.empty() ? input : segmenter->preprocess(batch.images);
      const double t_pre = ms_since(t0);
      const auto t1 = Clock::now();
      const qtseg::Tensor y = segmenter->infer(x);
      const double t_model = ms_since(t1);
      const auto t2 = Clock::now();
      if (!batch.images.empty()) segmenter->postprocess(y, sizes);
      const double t_post = ms_since(t2);
      if (i < o.warmup) continue;
      pre.ms.push_back(t_pre);
      model.ms.push_back(t_model);
      post.ms.push_back(t_post);
      total.ms.push_back(ms_since(t0));
    }
    std::cout << "latency over " << o.bench << " runs after " << o.warmup << " warm-up, batch " << input.shape[0]
              << " (ms):\n"
              << std::left << std::setw(12) << "stage" << std::right << std::setw(10) << "mean" << std::setw(10)
              << "p50" << std::setw(10) << "p90" << std::setw(10) << "p99" << std::setw(10) << "min" << std::setw(10)
              << "max" << "\n";
    for (const Stage* stage : {&pre, &model, &post, &total}) stage->print(std::cout);
  }
  return summary();
}

std::string one_line(const std::string& text) {
  std::string out;
  bool space = false;
  for (char ch : text) {
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += ch;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = qtseg::cli::parse_args(argc, argv);
  } catch (const qtseg::cli::UsageError& e) {
    std::cerr << "qtseg_infer: usage error: " << e.what() << " (see --help)\n";
    return 2;
  }
  if (options.help) {
    std::cout << qtseg::cli::usage();
    return 0;
  }
  if (options.version) {
    std::cout << "qtseg_infer " << qtseg::version() << "\n";
    return 0;
  }
  if (options.list_backends) {
    for (const std::string& name : qtseg::compiled_backends()) std::cout << name << "\n";
    return 0;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "qtseg_infer: error: " << one_line(e.what()) << "\n";
    return 1;
  }
}
