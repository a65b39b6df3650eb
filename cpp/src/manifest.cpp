// The artifact contract (docs/design.md, "Artifact directory"), checked in
// the order and with the messages of Python's qtseg.manifest: every failure
// is one line "<source>: <field>: <problem>".
#include "qtseg/manifest.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include "json_util.hpp"
#include "qtseg/sha256.hpp"

namespace qtseg {

namespace fs = std::filesystem;
using detail::Json;

namespace {

constexpr std::uintmax_t kMaxManifestBytes = 16u << 20;
constexpr const char* kPreprocessFile = "preprocess.json";
const std::vector<std::string> kTopKeys = {
    "schema",     "format", "target",   "precision", "runtime", "files",   "inputs",      "outputs", "preprocess",
    "model",      "export", "versions", "git_sha",   "calibration", "parity", "execution", "details"};
const std::vector<std::string> kFormats = {"onnx", "openvino", "tensorrt", "aoti"};
const std::vector<std::string> kPrecisions = {"fp32", "fp16", "bf16", "int8"};
const std::vector<std::string> kOpenVinoPrecisions = {"f32", "bf16", "f16"};
constexpr const char* kInferencePrecision = "INFERENCE_PRECISION_HINT";

[[noreturn]] void fail(const std::string& source, const std::string& where, const std::string& problem) {
  throw ManifestError(source + ": " + where + ": " + problem);
}

[[noreturn]] void fail_file(const std::string& source, const std::string& role, const std::string& problem) {
  throw IntegrityError(source + ": files." + role + ": " + problem);
}

bool contains(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

/// Python's repr-like rendering of a JSON value in messages ('x' for strings).
std::string shown(const Json& value) { return value.is_string() ? "'" + value.get<std::string>() + "'" : value.dump(); }

std::vector<std::string> runtimes_of(const std::string& format) {
  if (format == "onnx") return {"onnxruntime"};
  if (format == "openvino") return {"openvino"};
  if (format == "tensorrt") return {"tensorrt", "tensorrt_rtx"};
  return {"aoti"};
}

std::vector<std::string> required_roles(const std::string& format) {
  if (format == "openvino") return {"model", "weights"};
  if (format == "tensorrt") return {"engine"};
  return {"model"};  // onnx, aoti
}

/// A JSON integer (not a float, not a bool), as Python's `type(v) is int`.
bool is_int(const Json& v) { return v.is_number_integer(); }

/// Exactly these keys (the object's own order does not matter).
bool has_exactly(const Json& object, const std::set<std::string>& keys) {
  if (!object.is_object() || object.size() != keys.size()) return false;
  for (const auto& item : object.items()) {
    if (!keys.count(item.key())) return false;
  }
  return true;
}

std::string as_text(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

/// Why `path` is not a plain relative POSIX path inside a folder ("" if it is).
std::string relative_path_problem(const std::string& path) {
  if (path.empty()) return "empty path";
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos ||
      path.find(':') != std::string::npos) {
    return "'" + path + "' must be a plain POSIX relative path (no NUL, backslash or drive)";
  }
  if (path.front() == '/') return "'" + path + "' is absolute; artifact files must be relative to the artifact folder";
  std::size_t start = 0;
  while (true) {
    const std::size_t end = path.find('/', start);
    const std::string part = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (part.empty() || part == "." || part == "..") {
      return "'" + path + "' has an empty, '.' or '..' component; it must stay inside the artifact folder";
    }
    if (end == std::string::npos) return "";
    start = end + 1;
  }
}

ArtifactFile parse_file_entry(const Json& data, const std::string& source) {
  if (!has_exactly(data, {"path", "size", "sha256"})) {
    throw ManifestError(source + ": needs exactly the keys path, size, sha256");
  }
  if (!data["path"].is_string()) throw ManifestError(source + ".path: must be a string");
  ArtifactFile file;
  file.path = data["path"].get<std::string>();
  const std::string problem = relative_path_problem(file.path);
  if (!problem.empty()) throw ManifestError(source + ".path: " + problem);
  const Json& size = data["size"];
  if (!is_int(size) || (size.is_number_integer() && !size.is_number_unsigned() && size.get<int64_t>() < 0)) {
    throw ManifestError(source + ".size: must be a non-negative integer");
  }
  file.size = size.get<uint64_t>();
  const Json& digest = data["sha256"];
  const bool hex64 = digest.is_string() && digest.get<std::string>().size() == 64 &&
                     digest.get<std::string>().find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex64) throw ManifestError(source + ".sha256: must be 64 lowercase hex digits");
  file.sha256 = digest.get<std::string>();
  return file;
}

RuntimeSpec parse_runtime(const Json& data, const std::string& source) {
  if (!has_exactly(data, {"name", "device", "properties"})) {
    throw ManifestError(source + ": needs exactly the keys name, device, properties");
  }
  if (!data["name"].is_string()) throw ManifestError(source + ".name: must be a string");
  RuntimeSpec runtime;
  runtime.name = data["name"].get<std::string>();
  const Json& device = data["device"];
  if (!device.is_null()) {
    if (!device.is_string() || (device != "cpu" && device != "cuda")) {
      throw ManifestError(source + ".device: " + shown(device) + " is not one of ('cpu', 'cuda') or null");
    }
    runtime.device = device.get<std::string>();
  }
  const Json& props = data["properties"];
  if (!props.is_object()) throw ManifestError(source + ".properties: must map strings to strings");
  for (const auto& item : props.items()) {
    if (!item.value().is_string()) throw ManifestError(source + ".properties: must map strings to strings");
    runtime.properties[item.key()] = item.value().get<std::string>();
  }
  return runtime;
}

ModelInfo parse_model(const Json& data, const std::string& source) {
  if (!has_exactly(data, {"name", "config", "config_hash", "checkpoint", "checkpoint_sha256"})) {
    throw ManifestError(source + ": needs exactly the keys checkpoint, checkpoint_sha256, config, config_hash, name");
  }
  if (!data["name"].is_string() || !data["config"].is_object()) {
    throw ManifestError(source + ": name must be a string and config an object");
  }
  ModelInfo model;
  model.name = data["name"].get<std::string>();
  model.config_hash = as_text(data["config_hash"]);
  model.checkpoint = as_text(data["checkpoint"]);
  model.checkpoint_sha256 = as_text(data["checkpoint_sha256"]);
  const auto classes = data["config"].find("num_classes");
  if (classes != data["config"].end() && classes->is_number_integer()) {
    model.config_num_classes = static_cast<int>(classes->get<int64_t>());
  }
  return model;
}

ExportSettings parse_export(const Json& data, const std::string& source) {
  if (!has_exactly(data, {"batch", "dynamic_batch_max", "dynamic_hw", "opset"})) {
    throw ManifestError(source + ": needs exactly the keys batch, dynamic_batch_max, dynamic_hw, opset");
  }
  ExportSettings settings;
  for (const char* key : {"batch", "dynamic_batch_max", "opset"}) {
    const Json& value = data[key];
    if (value.is_null()) continue;
    if (!is_int(value) || value.get<int64_t>() < 1) {
      throw ManifestError(source + "." + key + ": must be a positive integer or null");
    }
  }
  const auto optional_int = [&](const char* key) -> std::optional<int64_t> {
    if (data[key].is_null()) return std::nullopt;
    return data[key].get<int64_t>();
  };
  settings.batch = optional_int("batch");
  settings.dynamic_batch_max = optional_int("dynamic_batch_max");
  settings.opset = optional_int("opset");
  if (settings.batch.has_value() == settings.dynamic_batch_max.has_value()) {
    throw ManifestError(source + ": exactly one of batch and dynamic_batch_max must be set");
  }
  if (!data["dynamic_hw"].is_boolean()) throw ManifestError(source + ".dynamic_hw: must be true or false");
  settings.dynamic_hw = data["dynamic_hw"].get<bool>();
  return settings;
}

std::vector<TensorMeta> parse_tensors(const Json& data, const std::string& source) {
  if (!data.is_array() || data.empty()) throw ManifestError(source + ": must be a non-empty list");
  std::vector<TensorMeta> metas;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const std::string where = source + "[" + std::to_string(i) + "]";
    const Json& item = data[i];
    if (!has_exactly(item, {"name", "shape", "dtype"})) {
      throw ManifestError(where + ": needs exactly the keys name, shape, dtype");
    }
    if (!item["name"].is_string() || item["name"].get<std::string>().empty()) {
      throw ManifestError(where + ".name: must be a non-empty string");
    }
    TensorMeta meta;
    meta.name = item["name"].get<std::string>();
    const Json& shape = item["shape"];
    bool ok = shape.is_array();
    for (std::size_t d = 0; ok && d < shape.size(); ++d) {
      ok = is_int(shape[d]) && shape[d].get<int64_t>() >= -1;
      if (ok) meta.shape.push_back(shape[d].get<int64_t>());
    }
    if (!ok) throw ManifestError(where + ".shape: must be a list of integers >= -1");
    if (!item["dtype"].is_string()) throw ManifestError(where + ".dtype: must be a string");
    meta.dtype = item["dtype"].get<std::string>();
    metas.push_back(std::move(meta));
  }
  for (std::size_t i = 0; i < metas.size(); ++i) {
    if (metas[i].dtype != "float32" && metas[i].dtype != "float16") {
      throw ManifestError(source + "[" + std::to_string(i) + "].dtype: '" + metas[i].dtype +
                          "' is not one of ('float32', 'float16')");
    }
  }
  return metas;
}

/// model.config.num_classes, when present, equals the spec's (compared as
/// Python compares: 2.0 equals 2, a string never does).
void check_config_classes(const Json& config, int num_classes, const std::string& source) {
  const auto classes = config.find("num_classes");
  if (classes == config.end() || classes->is_null()) return;
  if (!classes->is_number() || classes->get<double>() != static_cast<double>(num_classes)) {
    fail(source, "model.config.num_classes",
         shown(*classes) + " but the preprocess spec has num_classes=" + std::to_string(num_classes));
  }
}

bool dim_ok(int64_t declared, int64_t expected) { return declared == -1 || declared == expected; }

/// Inputs/outputs must be what the preprocessing spec produces and the model returns.
void check_io(const Manifest& m, const std::string& source) {
  if (m.inputs.size() != 1) {
    fail(source, "inputs", "expected exactly one model input, got " + std::to_string(m.inputs.size()));
  }
  const PreprocessSpec& spec = m.preprocess;
  const ExportSettings& ex = m.export_settings;
  const int64_t batch = ex.batch.value_or(-1);
  const int64_t h = ex.dynamic_hw ? -1 : spec.input_height;
  const int64_t w = ex.dynamic_hw ? -1 : spec.input_width;
  const std::vector<int64_t> want_in = {batch, 3, h, w};
  const TensorMeta& in = m.inputs.front();
  bool in_ok = in.shape.size() == 4 && in.shape[1] == 3;
  for (std::size_t i = 0; in_ok && i < 4; ++i) in_ok = dim_ok(in.shape[i], want_in[i]);
  if (!in_ok) {
    fail(source, "inputs[0].shape", shape_to_string(in.shape) + " does not match the preprocess spec and export " +
                                        "settings, which make " + shape_to_string(want_in) + " tensors (-1 = any)");
  }
  if (ex.batch && in.shape[0] != *ex.batch) {
    fail(source, "inputs[0].shape", "batch " + std::to_string(in.shape[0]) + " but export.batch is " +
                                        std::to_string(*ex.batch));
  }
  const TensorMeta& out = m.outputs.front();
  const std::vector<int64_t> want_out = {batch, spec.num_classes, h, w};
  bool out_ok = out.shape.size() == 4 && out.shape[1] == spec.num_classes;
  for (std::size_t i = 0; out_ok && i < 4; ++i) out_ok = dim_ok(out.shape[i], want_out[i]);
  if (!out_ok) {
    fail(source, "outputs[0].shape", shape_to_string(out.shape) + " but the preprocess spec has num_classes=" +
                                         std::to_string(spec.num_classes) + " (expected " +
                                         shape_to_string(want_out) + ", -1 = any)");
  }
}

/// The spec fields Python compares as doubles (the C++ spec keeps float32).
std::vector<double> spec_numbers(const Json& spec) {
  std::vector<double> out;
  const auto number = [&](const char* key, std::size_t index, double fallback) {
    const auto it = spec.find(key);
    if (it == spec.end()) return fallback;
    const Json& v = index == SIZE_MAX ? *it : (*it)[index];
    return v.get<double>();
  };
  out.push_back(number("scale", SIZE_MAX, 255.0));
  for (std::size_t i = 0; i < 3; ++i) out.push_back(number("mean", i, 0.0));
  for (std::size_t i = 0; i < 3; ++i) out.push_back(number("std", i, 1.0));
  return out;
}

bool same_spec(const PreprocessSpec& a, const PreprocessSpec& b) {
  return a.input_height == b.input_height && a.input_width == b.input_width && a.channel_order == b.channel_order &&
         a.scale == b.scale && a.mean == b.mean && a.stddev == b.stddev && a.num_classes == b.num_classes &&
         a.class_names == b.class_names;
}

/// `root/entry.path` resolved (symlinks followed); refused if it leaves `root`
/// or is not a regular file.
fs::path confined(const fs::path& root, const ArtifactFile& entry, const std::string& source, const std::string& role) {
  std::error_code ec;
  const fs::path real = fs::canonical(root / entry.path, ec);
  if (ec == std::errc::no_such_file_or_directory) fail_file(source, role, entry.path + " does not exist in the artifact folder");
  if (ec) fail_file(source, role, entry.path + " cannot be resolved: " + ec.message());
  const fs::path relative = real.lexically_relative(root);
  if (real != root && (relative.empty() || *relative.begin() == "..")) {
    fail_file(source, role, entry.path + " resolves outside the artifact folder (to " + real.string() + "); refused");
  }
  if (!fs::is_regular_file(real, ec)) fail_file(source, role, entry.path + " is not a regular file");
  return real;
}

Json parse_text(const std::string& text, const std::string& source) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw ManifestError(source + ": not valid JSON (" + e.what() + ")");
  }
}

/// Manifest.from_dict: the content rules, no file access.
Manifest from_data(const Json& data, const std::string& source) {
  if (!data.is_object()) throw ManifestError(source + ": not a JSON object");
  const auto schema = data.find("schema");
  if (schema == data.end() || *schema != kManifestSchema) {
    const std::string got = schema == data.end() ? "None" : shown(*schema);
    if (schema != data.end() && schema->is_string() && schema->get<std::string>().rfind("qtseg.manifest/", 0) == 0) {
      fail(source, "schema", "unsupported version " + got + "; this qtseg reads '" + kManifestSchema +
                                 "' (re-export the artifact with this qtseg)");
    }
    fail(source, "schema", got + " is not a qtseg manifest schema");
  }
  std::vector<std::string> missing, unknown;
  for (const auto& key : kTopKeys) {
    if (!data.contains(key)) missing.push_back(key);
  }
  if (!missing.empty()) fail(source, "keys", "missing " + join(missing, ", "));
  for (const auto& item : data.items()) {
    if (!contains(kTopKeys, item.key())) unknown.push_back(item.key());
  }
  std::sort(unknown.begin(), unknown.end());
  if (!unknown.empty()) fail(source, "keys", "unknown " + join(unknown, ", "));

  Manifest m;
  m.schema = kManifestSchema;
  const Json& fmt = data["format"];
  const Json& precision = data["precision"];
  const Json& target = data["target"];
  if (!fmt.is_string() || !contains(kFormats, fmt.get<std::string>())) {
    fail(source, "format", shown(fmt) + " is not one of " + join(kFormats, ", "));
  }
  if (!precision.is_string() || !contains(kPrecisions, precision.get<std::string>())) {
    fail(source, "precision", shown(precision) + " is not one of " + join(kPrecisions, ", "));
  }
  if (!target.is_string() || target.get<std::string>().empty()) fail(source, "target", "must be a non-empty string");
  m.format = fmt.get<std::string>();
  m.precision = precision.get<std::string>();
  m.target = target.get<std::string>();

  m.runtime = parse_runtime(data["runtime"], source + ": runtime");
  const std::vector<std::string> runtimes = runtimes_of(m.format);
  if (!contains(runtimes, m.runtime.name)) {
    fail(source, "runtime.name", "'" + m.runtime.name + "' cannot run format '" + m.format + "' (expected " +
                                     join(runtimes, " or ") + ")");
  }
  if (m.format == "openvino") {
    const auto hint = m.runtime.properties.find(kInferencePrecision);
    if (hint == m.runtime.properties.end() || !contains(kOpenVinoPrecisions, hint->second)) {
      fail(source, std::string("runtime.properties.") + kInferencePrecision,
           (hint == m.runtime.properties.end() ? std::string("None") : "'" + hint->second + "'") +
               ": an OpenVINO artifact must state the inference precision it was verified at (" +
               join(kOpenVinoPrecisions, ", ") + ")");
    }
  }

  const Json& files = data["files"];
  if (!files.is_object()) fail(source, "files", "must be an object of role -> {path, size, sha256}");
  for (const auto& item : files.items()) {
    m.files[item.key()] = parse_file_entry(item.value(), source + ": files." + item.key());
  }
  std::vector<std::string> roles = required_roles(m.format);
  roles.push_back("preprocess");
  for (const auto& role : roles) {
    if (!m.files.count(role)) fail(source, "files." + role, "missing (format '" + m.format + "' needs it)");
  }
  if (m.files["preprocess"].path != kPreprocessFile) {
    fail(source, "files.preprocess.path", std::string("must be '") + kPreprocessFile + "'");
  }
  std::set<std::string> paths;
  for (const auto& item : m.files) paths.insert(item.second.path);
  if (paths.size() != m.files.size()) fail(source, "files", "two roles name the same file");

  try {
    m.preprocess = detail::preprocess_spec_from_json(data["preprocess"], source + ": preprocess");
  } catch (const ManifestError&) {
    throw;
  } catch (const SpecError& e) {
    throw ManifestError(e.what());
  }
  m.inputs = parse_tensors(data["inputs"], source + ": inputs");
  m.outputs = parse_tensors(data["outputs"], source + ": outputs");
  m.model = parse_model(data["model"], source + ": model");
  m.export_settings = parse_export(data["export"], source + ": export");
  check_io(m, source);
  check_config_classes(data["model"]["config"], m.preprocess.num_classes, source);
  for (const char* key : {"versions", "parity", "execution", "details"}) {
    if (!data[key].is_object()) fail(source, key, "must be an object");
  }
  const Json& calibration = data["calibration"];
  if (!calibration.is_null() && !calibration.is_object()) fail(source, "calibration", "must be an object or null");
  if (m.precision == "int8" && calibration.is_null()) {
    fail(source, "calibration", "an int8 artifact must name its calibration set");
  }
  m.has_calibration = !calibration.is_null();
  const Json& git_sha = data["git_sha"];
  if (!git_sha.is_null() && !git_sha.is_string()) fail(source, "git_sha", "must be a string or null");
  m.git_sha = git_sha.is_string() ? git_sha.get<std::string>() : "";
  for (const auto& item : data["versions"].items()) m.versions[item.key()] = as_text(item.value());

  // The C++ library feeds and reads float32 tensors only (a contract-valid
  // float16-I/O artifact is refused here, with that reason).
  for (const auto* list : {&m.inputs, &m.outputs}) {
    const std::string kind = list == &m.inputs ? "inputs" : "outputs";
    for (std::size_t i = 0; i < list->size(); ++i) {
      if ((*list)[i].dtype != "float32") {
        fail(source, kind + "[" + std::to_string(i) + "].dtype",
             "'" + (*list)[i].dtype + "': the C++ library feeds and reads float32 tensors only");
      }
    }
  }
  return m;
}

}  // namespace

Manifest Manifest::from_json(const std::string& text, const std::string& source) {
  return from_data(parse_text(text, source), source);
}

Manifest Manifest::load(const std::string& dir, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw ArtifactError(dir + ": artifact folder not found");
  const fs::path root = fs::canonical(dir, ec);
  if (ec) throw ArtifactError(dir + ": artifact folder cannot be resolved: " + ec.message());
  const fs::path manifest_path = root / "manifest.json";
  const std::string source = manifest_path.string();
  if (!fs::is_regular_file(manifest_path, ec)) throw ArtifactError(source + ": missing (not a qtseg artifact folder)");
  if (fs::file_size(manifest_path, ec) > kMaxManifestBytes) {
    throw ManifestError(source + ": larger than " + std::to_string(kMaxManifestBytes >> 20) + " MiB; refused");
  }
  const Json data = parse_text(detail::read_text_file(source, "manifest"), source);
  Manifest m = from_data(data, source);
  m.directory = root.string();

  for (const auto& [role, entry] : m.files) {
    const fs::path real = confined(root, entry, source, role);
    const std::uintmax_t size = fs::file_size(real, ec);
    if (ec) fail_file(source, role, entry.path + " cannot be read: " + ec.message());
    if (size != entry.size) {
      fail_file(source, role, entry.path + " has " + std::to_string(size) + " bytes, manifest.json recorded " +
                                  std::to_string(entry.size) + " (changed or truncated after it was written)");
    }
    if (options.verify_hashes && sha256_file(real.string()) != entry.sha256) {
      fail_file(source, role, entry.path + " does not match its recorded SHA-256 (changed or corrupted after it was written); refused");
    }
  }

  const std::string spec_path = (root / m.files.at("preprocess").path).string();
  Json on_disk;
  PreprocessSpec spec;
  try {
    on_disk = detail::parse_json(detail::read_text_file(spec_path, "preprocess spec"), spec_path);
    spec = detail::preprocess_spec_from_json(on_disk, spec_path);
  } catch (const Error& e) {
    fail(source, "files.preprocess", e.what());
  } catch (const Json::exception& e) {
    fail(source, "files.preprocess", spec_path + ": " + e.what());
  }
  if (!same_spec(spec, m.preprocess) || spec_numbers(on_disk) != spec_numbers(data["preprocess"])) {
    fail(source, "preprocess", std::string("differs from ") + kPreprocessFile);
  }
  return m;
}

std::string Manifest::file(const std::string& role) const {
  const auto it = files.find(role);
  if (it == files.end()) throw ArtifactError(directory + "/manifest.json: files." + role + ": not listed");
  return (fs::path(directory) / it->second.path).string();
}

int64_t Manifest::max_batch() const {
  return export_settings.batch.value_or(export_settings.dynamic_batch_max.value_or(1));
}

}  // namespace qtseg
