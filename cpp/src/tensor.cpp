#include "qtseg/tensor.hpp"

#include <sstream>

#include "qtseg/errors.hpp"

namespace qtseg {

std::size_t shape_numel(const std::vector<int64_t>& shape) {
  std::size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("shape " + shape_to_string(shape) + " has a negative dimension");
    n *= static_cast<std::size_t>(d);
  }
  return n;
}

Tensor::Tensor(std::vector<int64_t> tensor_shape)
    : shape(std::move(tensor_shape)), data(shape_numel(shape), 0.0f) {}

std::size_t Tensor::numel() const { return shape_numel(shape); }

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

bool shape_matches(const std::vector<int64_t>& concrete, const std::vector<int64_t>& pattern) {
  if (concrete.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != -1 && pattern[i] != concrete[i]) return false;
  }
  return true;
}

}  // namespace qtseg
