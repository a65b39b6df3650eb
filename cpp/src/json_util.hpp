// Internal: typed access to nlohmann::json values with SpecError messages
// that name the file and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "qtseg/errors.hpp"
#include "qtseg/preprocess.hpp"

namespace qtseg::detail {

using Json = nlohmann::json;

/// Parse text; SpecError "malformed <source>: ..." on a syntax error.
Json parse_json(const std::string& text, const std::string& source);

std::string as_string(const Json& value, const std::string& what, const std::string& source);
double as_number(const Json& value, const std::string& what, const std::string& source);
int64_t as_integer(const Json& value, const std::string& what, const std::string& source);

/// PreprocessSpec from a parsed JSON object (PreprocessSpec::from_json's rules).
PreprocessSpec preprocess_spec_from_json(const Json& data, const std::string& source);

/// Whole file as a string; ArtifactError if it cannot be opened.
std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace qtseg::detail
