#include "qtseg/manifest.hpp"

#include <filesystem>
#include <set>

#include "json_util.hpp"

namespace qtseg {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSchema = "qtseg.manifest/1";

/// File roles each format needs (design.md, "Artifact directory").
std::vector<std::string> required_roles(const std::string& format) {
  if (format == "openvino") return {"model", "weights"};
  if (format == "tensorrt") return {"engine"};
  return {"model"};  // onnx, aoti
}

std::vector<TensorMeta> tensor_list(const detail::Json& manifest, const std::string& key, const std::string& source) {
  const detail::Json& list = detail::require(manifest, key, source);
  if (!list.is_array() || list.empty()) throw SpecError(source + ": '" + key + "' must be a non-empty list");
  std::vector<TensorMeta> out;
  for (const detail::Json& item : list) {
    TensorMeta meta;
    meta.name = detail::as_string(detail::require(item, "name", source), key + ".name", source);
    meta.shape = detail::as_shape(detail::require(item, "shape", source), key + ".shape", source);
    const auto dtype = item.find("dtype");
    meta.dtype = dtype == item.end() ? "float32" : detail::as_string(*dtype, key + ".dtype", source);
    if (meta.dtype != "float32") {
      throw SpecError(source + ": " + key + " '" + meta.name + "' has dtype " + meta.dtype +
                      "; the C++ library feeds and reads float32 tensors only");
    }
    out.push_back(std::move(meta));
  }
  return out;
}

bool same_spec(const PreprocessSpec& a, const PreprocessSpec& b) {
  return a.input_height == b.input_height && a.input_width == b.input_width && a.channel_order == b.channel_order &&
         a.scale == b.scale && a.mean == b.mean && a.stddev == b.stddev && a.num_classes == b.num_classes &&
         a.class_names == b.class_names;
}

void check_io_against_spec(const Manifest& m, const std::string& source) {
  const TensorMeta& in = m.inputs.front();
  const TensorMeta& out = m.outputs.front();
  const PreprocessSpec& s = m.preprocess;
  if (m.inputs.size() != 1) {
    throw SpecError(source + ": expected exactly one model input, got " + std::to_string(m.inputs.size()));
  }
  const bool input_ok = shape_matches({in.shape.empty() ? -1 : in.shape[0], 3, s.input_height, s.input_width},
                                      in.shape);
  if (!input_ok) {
    throw SpecError(source + ": input '" + in.name + "' has shape " + shape_to_string(in.shape) +
                    " but the preprocess spec makes (N, 3, " + std::to_string(s.input_height) + ", " +
                    std::to_string(s.input_width) + ") tensors");
  }
  if (out.shape.size() != 4 || (out.shape[1] != -1 && out.shape[1] != s.num_classes)) {
    throw SpecError(source + ": output '" + out.name + "' has shape " + shape_to_string(out.shape) +
                    " but the preprocess spec has num_classes=" + std::to_string(s.num_classes) +
                    " (expected (N, num_classes, H, W))");
  }
}

}  // namespace

Manifest Manifest::load(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw ArtifactError("artifact directory not found: " + dir);
  const fs::path manifest_path = root / "manifest.json";
  if (!fs::is_regular_file(manifest_path)) throw ArtifactError("artifact " + dir + " has no manifest.json");
  const std::string source = manifest_path.string();
  const detail::Json data = detail::parse_json(detail::read_text_file(source, "manifest"), source);
  if (!data.is_object()) throw SpecError(source + ": expected a JSON object");

  Manifest m;
  m.directory = root.string();
  const std::string schema = detail::as_string(detail::require(data, "schema", source), "schema", source);
  if (schema != kSchema) throw SpecError(source + ": unsupported manifest schema '" + schema + "' (expected '" + kSchema + "')");
  m.format = detail::as_string(detail::require(data, "format", source), "format", source);
  static const std::set<std::string> kFormats = {"onnx", "openvino", "tensorrt", "aoti"};
  if (!kFormats.count(m.format)) {
    throw SpecError(source + ": unknown format '" + m.format + "' (expected onnx, openvino, tensorrt or aoti)");
  }
  if (const auto it = data.find("target"); it != data.end() && it->is_string()) m.target = it->get<std::string>();
  if (const auto it = data.find("precision"); it != data.end() && it->is_string()) m.precision = it->get<std::string>();
  if (const auto it = data.find("model"); it != data.end() && it->is_object()) {
    if (const auto name = it->find("name"); name != it->end() && name->is_string()) m.model_name = name->get<std::string>();
  }

  const detail::Json& files = detail::require(data, "files", source);
  if (!files.is_object()) throw SpecError(source + ": 'files' must be an object of role -> relative path");
  for (const auto& item : files.items()) {
    const std::string rel = detail::as_string(item.value(), "files." + item.key(), source);
    const fs::path rel_path(rel);
    if (rel.empty() || rel_path.is_absolute()) {
      throw SpecError(source + ": files." + item.key() + " must be a path relative to the artifact, got '" + rel + "'");
    }
    m.files[item.key()] = rel;
  }
  for (const std::string& role : required_roles(m.format)) {
    if (!m.files.count(role)) {
      throw SpecError(source + ": 'files' has no '" + role + "' entry, which format '" + m.format + "' needs");
    }
    if (!fs::is_regular_file(root / m.files[role])) {
      throw ArtifactError("artifact " + dir + " is missing " + m.files[role] + " (manifest files." + role + ")");
    }
  }
  m.inputs = tensor_list(data, "inputs", source);
  m.outputs = tensor_list(data, "outputs", source);

  const fs::path spec_path = root / "preprocess.json";
  const auto embedded = data.find("preprocess");
  const bool has_embedded = embedded != data.end() && !embedded->is_null();
  if (fs::is_regular_file(spec_path)) {
    m.preprocess = PreprocessSpec::load(spec_path.string());
    if (has_embedded && !same_spec(m.preprocess, PreprocessSpec::from_json(embedded->dump(), source + " 'preprocess'"))) {
      throw SpecError("artifact " + dir + ": preprocess.json differs from manifest.json 'preprocess'");
    }
  } else if (has_embedded) {
    m.preprocess = PreprocessSpec::from_json(embedded->dump(), source + " 'preprocess'");
  } else {
    throw ArtifactError("artifact " + dir + " has no preprocess.json (and manifest.json has no 'preprocess')");
  }
  check_io_against_spec(m, source);
  return m;
}

std::string Manifest::file(const std::string& role) const {
  const auto it = files.find(role);
  if (it == files.end()) throw ArtifactError("artifact " + directory + ": manifest lists no '" + role + "' file");
  return (fs::path(directory) / it->second).string();
}

}  // namespace qtseg
