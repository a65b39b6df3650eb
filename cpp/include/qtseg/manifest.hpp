// manifest.json of an exported artifact folder (schema "qtseg.manifest/2").
// The contract is docs/design.md, "Artifact directory"; the Python reader of
// the same contract is qtseg.manifest (Manifest.from_dict, open_artifact).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qtseg/preprocess.hpp"

namespace qtseg {

/// The manifest schema this library reads (and the only one).
inline constexpr const char* kManifestSchema = "qtseg.manifest/2";

/// Name, shape (-1 = dynamic) and dtype of one model input or output.
struct TensorMeta {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
};

/// One file of the artifact: plain relative path, size in bytes, SHA-256 (hex).
struct ArtifactFile {
  std::string path;
  uint64_t size = 0;
  std::string sha256;
};

/// How the artifact must be run: runtime name ("openvino", "onnxruntime",
/// "tensorrt", "tensorrt_rtx", "aoti"), device kind ("cpu", "cuda" or "" =
/// any) and the runtime properties every loader applies verbatim (OpenVINO
/// compile properties, ONNX Runtime session config entries).
struct RuntimeSpec {
  std::string name;
  std::string device;
  std::map<std::string, std::string> properties;
};

/// The model and checkpoint the artifact was exported from.
struct ModelInfo {
  std::string name;
  std::optional<int> config_num_classes;  // model.config.num_classes when present
  std::string config_hash;
  std::string checkpoint;
  std::string checkpoint_sha256;
};

/// Batch and shape settings of the export: exactly one of `batch` (static)
/// and `dynamic_batch_max` is set.
struct ExportSettings {
  std::optional<int64_t> batch;
  std::optional<int64_t> dynamic_batch_max;
  bool dynamic_hw = false;
  std::optional<int64_t> opset;
};

/// What Manifest::load checks besides the always-on rules.
struct LoadOptions {
  /// Verify the SHA-256 of every listed file (paths, sizes and the spec are
  /// always checked). Turning it off is an explicit opt-out for very large
  /// files; docs/cpp.md gives the cost of hashing.
  bool verify_hashes = true;
};

/// The typed, validated content of manifest.json.
struct Manifest {
  std::string directory;  // the artifact folder, resolved (absolute, no symlinks)
  std::string schema;     // always kManifestSchema
  std::string format;     // "onnx" | "openvino" | "tensorrt" | "aoti"
  std::string target;     // e.g. "openvino-fp32"
  std::string precision;  // "fp32" | "fp16" | "bf16" | "int8"
  RuntimeSpec runtime;
  std::map<std::string, ArtifactFile> files;  // role ("model", "weights", "engine", "preprocess", ...) -> file
  std::vector<TensorMeta> inputs;
  std::vector<TensorMeta> outputs;
  PreprocessSpec preprocess;
  ModelInfo model;
  ExportSettings export_settings;  // manifest key "export"
  std::map<std::string, std::string> versions;
  std::string git_sha;  // "" when the manifest says null
  bool has_calibration = false;

  /// Read and verify an artifact folder with the rules of docs/design.md
  /// ("Artifact directory"), in the same order as Python's open_artifact:
  /// the manifest's content (from_json), then every listed file (confined to
  /// the folder after following symlinks, a regular file of the recorded size
  /// and, unless options.verify_hashes is false, SHA-256), then
  /// preprocess.json == the embedded spec.
  /// Throws ArtifactError (folder or manifest.json missing), ManifestError
  /// (content) or IntegrityError (files on disk); each message is one line
  /// "<dir>/manifest.json: <field>: <problem>".
  static Manifest load(const std::string& dir, const LoadOptions& options = {});

  /// Validate manifest JSON text alone (no file access); `source` prefixes
  /// the messages. Throws ManifestError.
  static Manifest from_json(const std::string& text, const std::string& source = "manifest.json");

  /// Path (directory / files[role].path) of the file listed under `role`;
  /// throws ArtifactError if the manifest lists no such role.
  std::string file(const std::string& role) const;

  /// The largest batch the artifact takes: its static batch, or the dynamic maximum.
  int64_t max_batch() const;
};

}  // namespace qtseg
