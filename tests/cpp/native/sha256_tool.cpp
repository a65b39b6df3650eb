// SHA-256 of files with qtseg::Sha256, for the comparison with Python's hashlib
// (tests/cpp/test_sha256.py) and for timing the artifact hash check.
//   qtseg_sha256 [--portable] [--chunk N] [--repeat R] FILE...
// prints "<hex>  <file>" per file; --repeat R hashes each file R times and
// adds the fastest time in ms. --chunk N feeds the bytes in N-byte pieces
// (default: qtseg::sha256_file, 1 MiB reads); --portable disables the CPU's
// SHA instructions.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "qtseg/qtseg.hpp"

namespace {

std::string hash_in_chunks(const std::string& path, std::size_t chunk, bool accelerated) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  std::vector<char> bytes(static_cast<std::size_t>(file.tellg()));
  file.seekg(0);
  file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  qtseg::Sha256 hash(accelerated);
  for (std::size_t pos = 0; pos < bytes.size(); pos += chunk) {
    hash.update(bytes.data() + pos, std::min(chunk, bytes.size() - pos));
  }
  return hash.hex_digest();
}

}  // namespace

int main(int argc, char** argv) {
  bool accelerated = true;
  std::size_t chunk = 0;
  int repeat = 0;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--portable") accelerated = false;
    else if (arg == "--chunk" && i + 1 < argc) chunk = std::stoul(argv[++i]);
    else if (arg == "--repeat" && i + 1 < argc) repeat = std::stoi(argv[++i]);
    else files.push_back(arg);
  }
  std::cout << "# cpu extensions: " << (qtseg::Sha256(accelerated).uses_cpu_extensions() ? "yes" : "no") << "\n";
  try {
    for (const std::string& path : files) {
      const auto once = [&] {
        return chunk > 0 ? hash_in_chunks(path, chunk, accelerated) : qtseg::sha256_file(path, accelerated);
      };
      std::string hex = once();
      double best = 1e300;
      for (int r = 0; r < repeat; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        hex = once();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      std::cout << hex << "  " << path;
      if (repeat > 0) std::cout << "  " << best << " ms";
      std::cout << "\n";
    }
  } catch (const qtseg::Error& e) {
    std::cerr << "qtseg_sha256: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
