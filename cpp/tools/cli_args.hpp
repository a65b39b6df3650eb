// Command-line options of qtseg_infer and their parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace qtseg::cli {

/// Wrong command line: printed with the usage hint, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string artifact;                   // --artifact DIR
  std::string spec;                       // --spec preprocess.json (preprocessing only, no model)
  std::vector<std::string> inputs;        // --input IMG (repeatable: one batch)
  std::vector<std::string> outputs;       // --output MASK.png (one per --input)
  std::string input_tensor;               // --input-tensor FILE (raw float32, bypasses preprocessing)
  std::vector<int64_t> input_shape;       // --input-shape N,3,H,W (for --input-tensor)
  std::string dump_decoded;               // --dump-decoded FILE (uint8 RGB, HWC, images concatenated)
  std::string dump_input;                 // --dump-input FILE (float32 NCHW)
  std::string dump_logits;                // --dump-logits FILE (float32 NCHW)
  bool raw_labels = false;                // --mask-values labels (default: scaled)
  std::string backend = "auto";           // --backend
  std::string device = "CPU";             // --device
  int threads = 0;                        // --threads
  int bench = 0;                          // --bench N
  int warmup = 3;                         // --warmup N
  bool verify_hashes = true;              // --no-verify-hashes turns it off
  std::size_t max_pixels = 100'000'000;   // --max-pixels N (qtseg::kDefaultMaxPixels)
  bool strict = false;                    // --strict: stop at the first failed image
  bool list_backends = false;             // --list-backends
  bool help = false;                      // --help
  bool version = false;                   // --version
};

/// Parse argv; throws UsageError with a one-line reason.
Options parse_args(int argc, char** argv);

/// The --help text.
std::string usage();

}  // namespace qtseg::cli
