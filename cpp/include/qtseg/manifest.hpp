// manifest.json of an exported artifact directory (schema "qtseg.manifest/1").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qtseg/preprocess.hpp"

namespace qtseg {

/// Name, shape (-1 = dynamic) and dtype of one model input or output.
struct TensorMeta {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

/// The keys of manifest.json that the C++ side relies on, validated.
struct Manifest {
  std::string directory;   // artifact directory the manifest was read from
  std::string format;      // "onnx" | "openvino" | "tensorrt" | "aoti"
  std::string target;      // e.g. "openvino-fp32" (informational)
  std::string precision;   // "fp32" | "fp16" | "int8" (informational)
  std::string model_name;  // manifest["model"]["name"], "" if absent
  std::map<std::string, std::string> files;  // role -> path relative to `directory`
  std::vector<TensorMeta> inputs;
  std::vector<TensorMeta> outputs;
  PreprocessSpec preprocess;

  /// Read `dir`/manifest.json and `dir`/preprocess.json, check the schema,
  /// that the files the format needs are listed and exist, and that the
  /// embedded preprocess block equals preprocess.json. Throws ArtifactError
  /// (missing files) or SpecError (malformed or contradictory content).
  static Manifest load(const std::string& dir);

  /// Absolute-or-relative path of the file listed under `role`
  /// (e.g. "model", "weights", "engine"); throws ArtifactError if not listed.
  std::string file(const std::string& role) const;
};

}  // namespace qtseg
