#include "cli_args.hpp"

#include <sstream>

namespace qtseg::cli {

namespace {

int parse_int(const std::string& flag, const std::string& text, int minimum) {
  std::size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || value < minimum) {
    throw UsageError(flag + " expects an integer >= " + std::to_string(minimum) + ", got '" + text + "'");
  }
  return value;
}

std::size_t parse_count(const std::string& flag, const std::string& text) {
  std::size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || text[0] == '-' || value < 1) {
    throw UsageError(flag + " expects an integer >= 1, got '" + text + "'");
  }
  return static_cast<std::size_t>(value);
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) shape.push_back(parse_int("--input-shape", item, 1));
  if (shape.empty()) throw UsageError("--input-shape expects N,C,H,W, got '" + text + "'");
  return shape;
}

void check_combinations(const Options& o) {
  if (o.help || o.version || o.list_backends) return;
  if (o.artifact.empty() == o.spec.empty()) throw UsageError("give exactly one of --artifact DIR or --spec FILE");
  if (o.inputs.empty() == o.input_tensor.empty()) throw UsageError("give --input IMAGE (repeatable) or --input-tensor FILE");
  if (!o.input_tensor.empty() && !o.spec.empty()) throw UsageError("--input-tensor needs --artifact, not --spec");
  if (o.input_shape.size() && o.input_tensor.empty()) throw UsageError("--input-shape only applies to --input-tensor");
  if (!o.outputs.empty() && o.outputs.size() != o.inputs.size()) {
    throw UsageError("give one --output per --input (" + std::to_string(o.inputs.size()) + " inputs, " +
                     std::to_string(o.outputs.size()) + " outputs)");
  }
  if (!o.spec.empty() && (!o.outputs.empty() || !o.dump_logits.empty() || o.bench > 0)) {
    throw UsageError("--spec only preprocesses: --output, --dump-logits and --bench need --artifact");
  }
  if (!o.dump_decoded.empty() && o.inputs.empty()) throw UsageError("--dump-decoded needs --input images");
  if (!o.verify_hashes && o.artifact.empty()) throw UsageError("--no-verify-hashes needs --artifact");
}

}  // namespace

std::string usage() {
  return R"(usage: qtseg_infer --artifact DIR (--input IMAGE [--output MASK.png]... | --input-tensor FILE [--input-shape N,3,H,W])
                   [--bench N] [--warmup N] [--backend auto|openvino|ort|tensorrt] [--device CPU] [--threads N]
                   [--mask-values scaled|labels] [--dump-decoded F] [--dump-input F] [--dump-logits F]
                   [--max-pixels N] [--strict] [--no-verify-hashes]
       qtseg_infer --spec preprocess.json --input IMAGE... [--dump-decoded F] [--dump-input F] [--max-pixels N]
       qtseg_infer --list-backends | --version | --help

Segments PNG/JPEG images with an exported qtseg artifact (manifest.json + preprocess.json + model files).
  --input IMAGE          image to segment; repeat for a batch
  --output MASK.png      8-bit gray mask per input; by default class k is written as round(k*255/(C-1))
                         (binary masks are 0/255); --mask-values labels writes the class index k itself
  --input-tensor FILE    raw little-endian float32 NCHW tensor fed to the model as is (no preprocessing)
  --bench N              run preprocess/infer/postprocess N more times and print latency statistics (ms)
  --dump-decoded F       decoded images, raw uint8 RGB HWC, concatenated in input order
  --dump-input F         preprocessed model input, raw little-endian float32 NCHW
  --dump-logits F        model output, raw little-endian float32 NCHW
  --spec FILE            preprocessing only (no model): with --dump-input/--dump-decoded
  --max-pixels N         refuse images with more than N pixels (default 100000000), before decoding
  --strict               stop at the first image that fails (default: report it, go on, fail at the end)
  --no-verify-hashes     skip the SHA-256 check of the artifact's files (sizes and paths are still checked)
An image that cannot be decoded, or whose logits are NaN/Inf, is reported on stderr and skipped; the others
are processed, a summary line follows and the exit status is 1. With failures, the dumps hold the images
that succeeded, in input order.
Exit status: 0 ok, 1 error (one line on stderr per error), 2 bad command line.
)";
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--artifact") o.artifact = value();
    else if (flag == "--spec") o.spec = value();
    else if (flag == "--input") o.inputs.push_back(value());
    else if (flag == "--output") o.outputs.push_back(value());
    else if (flag == "--input-tensor") o.input_tensor = value();
    else if (flag == "--input-shape") o.input_shape = parse_shape(value());
    else if (flag == "--dump-decoded") o.dump_decoded = value();
    else if (flag == "--dump-input") o.dump_input = value();
    else if (flag == "--dump-logits") o.dump_logits = value();
    else if (flag == "--backend") o.backend = value();
    else if (flag == "--device") o.device = value();
    else if (flag == "--threads") o.threads = parse_int(flag, value(), 0);
    else if (flag == "--bench") o.bench = parse_int(flag, value(), 0);
    else if (flag == "--warmup") o.warmup = parse_int(flag, value(), 0);
    else if (flag == "--max-pixels") o.max_pixels = parse_count(flag, value());
    else if (flag == "--no-verify-hashes") o.verify_hashes = false;
    else if (flag == "--strict") o.strict = true;
    else if (flag == "--mask-values") {
      const std::string v = value();
      if (v != "scaled" && v != "labels") throw UsageError("--mask-values must be 'scaled' or 'labels', got '" + v + "'");
      o.raw_labels = v == "labels";
    } else if (flag == "--list-backends") o.list_backends = true;
    else if (flag == "--version") o.version = true;
    else if (flag == "-h" || flag == "--help") o.help = true;
    else throw UsageError("unknown argument '" + flag + "'");
  }
  check_combinations(o);
  return o;
}

}  // namespace qtseg::cli
