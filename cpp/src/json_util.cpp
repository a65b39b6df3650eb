#include "json_util.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

namespace qtseg::detail {

Json parse_json(const std::string& text, const std::string& source) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw SpecError("malformed " + source + ": " + e.what());
  }
}

const Json& require(const Json& object, const std::string& key, const std::string& source) {
  if (!object.is_object()) throw SpecError(source + ": expected a JSON object");
  const auto it = object.find(key);
  if (it == object.end()) throw SpecError(source + ": missing key '" + key + "'");
  return *it;
}

std::string as_string(const Json& value, const std::string& what, const std::string& source) {
  if (!value.is_string()) throw SpecError(source + ": '" + what + "' must be a string, got " + value.dump());
  return value.get<std::string>();
}

double as_number(const Json& value, const std::string& what, const std::string& source) {
  if (!value.is_number()) throw SpecError(source + ": '" + what + "' must be a number, got " + value.dump());
  return value.get<double>();
}

int64_t as_integer(const Json& value, const std::string& what, const std::string& source) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    const double v = value.get<double>();
    if (std::isfinite(v) && std::floor(v) == v) return static_cast<int64_t>(v);
  }
  throw SpecError(source + ": '" + what + "' must be an integer, got " + value.dump());
}

std::vector<int64_t> as_shape(const Json& value, const std::string& what, const std::string& source) {
  if (!value.is_array()) throw SpecError(source + ": '" + what + "' must be a list of integers, got " + value.dump());
  std::vector<int64_t> shape;
  for (const Json& d : value) {
    // Exporters write dynamic dimensions as -1 (or, from some tools, as null / a symbol name).
    shape.push_back(d.is_number() ? as_integer(d, what, source) : -1);
    if (shape.back() < -1 || shape.back() == 0) {
      throw SpecError(source + ": '" + what + "' has an invalid dimension in " + value.dump());
    }
  }
  return shape;
}

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ArtifactError(what + " not found or unreadable: " + path);
  std::ostringstream out;
  out << file.rdbuf();
  return out.str();
}

}  // namespace qtseg::detail
