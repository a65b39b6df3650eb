// preprocess.json parsing with the validation rules of qtseg.preprocess.PreprocessSpec.
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "json_util.hpp"
#include "qtseg/preprocess.hpp"

namespace qtseg {

namespace {

constexpr const char* kSchema = "qtseg.preprocess/1";
const std::set<std::string> kKnownKeys = {"schema", "input_size", "resize",  "interpolation", "channel_order", "scale",
                                          "mean",   "std",        "layout",  "dtype",         "num_classes",   "class_names"};

constexpr const char* kNotFinite = ": scale, mean and std must be finite numbers (no NaN or Inf)";

// float32 rounding of the JSON double, as np.asarray(..., dtype=np.float32) does; a double
// beyond float's range (which would become infinity, or undefined behaviour) is refused.
float float32_number(const detail::Json& value, const std::string& key, const std::string& source) {
  const double v = detail::as_number(value, key, source);
  if (!std::isfinite(v) || std::fabs(v) > static_cast<double>(std::numeric_limits<float>::max())) {
    throw SpecError(source + kNotFinite);
  }
  return static_cast<float>(v);
}

std::array<float, 3> three_floats(const detail::Json& value, const std::string& key, const std::string& source) {
  if (!value.is_array() || value.size() != 3) {
    throw SpecError(source + ": '" + key + "' must be a list of 3 numbers, got " + value.dump());
  }
  return {float32_number(value[0], key, source), float32_number(value[1], key, source),
          float32_number(value[2], key, source)};
}

}  // namespace

PreprocessSpec PreprocessSpec::from_json(const std::string& text, const std::string& source) {
  return detail::preprocess_spec_from_json(detail::parse_json(text, source), source);
}

PreprocessSpec detail::preprocess_spec_from_json(const detail::Json& data, const std::string& source) {
  using detail::as_integer;
  using detail::as_string;
  if (!data.is_object()) throw SpecError(source + ": expected a JSON object");
  std::string unknown;
  for (const auto& item : data.items()) {
    if (!kKnownKeys.count(item.key())) unknown += (unknown.empty() ? "" : ", ") + item.key();
  }
  if (!unknown.empty()) throw SpecError(source + ": unknown preprocess keys: " + unknown);
  const auto get = [&](const char* key) -> const detail::Json* {
    const auto it = data.find(key);
    return it == data.end() ? nullptr : &*it;
  };

  if (const auto* v = get("schema"); v && as_string(*v, "schema", source) != kSchema) {
    throw SpecError(source + ": unsupported preprocess schema " + v->dump() + " (expected '" + kSchema + "')");
  }
  PreprocessSpec spec;
  if (const auto* v = get("input_size")) {
    if (!v->is_array() || v->size() != 2) throw SpecError(source + ": 'input_size' must be [height, width]");
    spec.input_height = static_cast<int>(as_integer((*v)[0], "input_size", source));
    spec.input_width = static_cast<int>(as_integer((*v)[1], "input_size", source));
  }
  if (spec.input_height <= 0 || spec.input_width <= 0 || spec.input_height % 32 || spec.input_width % 32) {
    throw SpecError(source + ": input_size must be two positive multiples of 32, got [" +
                    std::to_string(spec.input_height) + ", " + std::to_string(spec.input_width) + "]");
  }
  if (const auto* v = get("resize"); v && as_string(*v, "resize", source) != "stretch") {
    throw SpecError(source + ": unsupported resize mode " + v->dump() + "; supported: 'stretch'");
  }
  if (const auto* v = get("interpolation"); v && as_string(*v, "interpolation", source) != "bilinear") {
    throw SpecError(source + ": unsupported interpolation " + v->dump() + "; supported: 'bilinear'");
  }
  if (const auto* v = get("channel_order")) {
    const std::string order = as_string(*v, "channel_order", source);
    if (order != "RGB" && order != "BGR") throw SpecError(source + ": channel_order must be 'RGB' or 'BGR', got " + v->dump());
    spec.channel_order = order == "RGB" ? ChannelOrder::RGB : ChannelOrder::BGR;
  }
  const auto* layout = get("layout");
  const auto* dtype = get("dtype");
  if ((layout && as_string(*layout, "layout", source) != "NCHW") ||
      (dtype && as_string(*dtype, "dtype", source) != "float32")) {
    throw SpecError(source + ": only layout 'NCHW' with dtype 'float32' is supported");
  }
  if (const auto* v = get("scale")) spec.scale = float32_number(*v, "scale", source);
  if (const auto* v = get("mean")) spec.mean = three_floats(*v, "mean", source);
  if (const auto* v = get("std")) spec.stddev = three_floats(*v, "std", source);
  if (!(spec.scale > 0.0f) || !(spec.stddev[0] > 0.0f && spec.stddev[1] > 0.0f && spec.stddev[2] > 0.0f)) {
    throw SpecError(source + ": scale and std must be positive");
  }
  if (const auto* v = get("num_classes")) spec.num_classes = static_cast<int>(as_integer(*v, "num_classes", source));
  if (spec.num_classes < 2 || spec.num_classes > 256) {
    throw SpecError(source + ": num_classes must be in [2, 256] (background + classes), got " +
                    std::to_string(spec.num_classes));
  }
  spec.class_names.clear();
  if (const auto* v = get("class_names"); v && v->is_array()) {
    for (const auto& name : *v) spec.class_names.push_back(as_string(name, "class_names", source));
  }
  if (static_cast<int>(spec.class_names.size()) != spec.num_classes) {
    // Same fallback as the Python class: default names instead of an error.
    spec.class_names = {"background"};
    for (int i = 1; i < spec.num_classes; ++i) {
      spec.class_names.push_back(spec.num_classes == 2 ? "foreground" : "class_" + std::to_string(i));
    }
  }
  return spec;
}

PreprocessSpec PreprocessSpec::load(const std::string& path) {
  std::filesystem::path file(path);
  if (std::filesystem::is_directory(file)) file /= "preprocess.json";
  if (!std::filesystem::is_regular_file(file)) throw ArtifactError("preprocess spec not found: " + file.string());
  return from_json(detail::read_text_file(file.string(), "preprocess spec"), file.string());
}

}  // namespace qtseg
