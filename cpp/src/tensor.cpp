#include "qtseg/tensor.hpp"

#include <algorithm>
#include <cstring>
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

namespace {

/// True if any of the `count` floats is NaN or +-inf (exponent bits all ones).
bool any_non_finite(const float* data, std::size_t count) {
  uint32_t bad = 0;
  for (std::size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, data + i, sizeof(bits));
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  return bad != 0;
}

}  // namespace

std::vector<int64_t> non_finite_samples(const Tensor& tensor) {
  std::vector<int64_t> bad;
  if (tensor.data.empty()) return bad;
  const int64_t n = tensor.shape.empty() ? 1 : std::max<int64_t>(tensor.shape[0], 1);
  const std::size_t per_sample = tensor.data.size() / static_cast<std::size_t>(n);
  for (int64_t i = 0; i < n; ++i) {
    const std::size_t count = i + 1 == n ? tensor.data.size() - per_sample * i : per_sample;
    if (any_non_finite(tensor.data.data() + per_sample * i, count)) bad.push_back(i);
  }
  return bad;
}

bool shape_matches(const std::vector<int64_t>& concrete, const std::vector<int64_t>& pattern) {
  if (concrete.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != -1 && pattern[i] != concrete[i]) return false;
  }
  return true;
}

}  // namespace qtseg
