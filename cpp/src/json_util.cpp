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

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ArtifactError(what + " not found or unreadable: " + path);
  std::ostringstream out;
  out << file.rdbuf();
  return out.str();
}

}  // namespace qtseg::detail
