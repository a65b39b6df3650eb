// Checks of the public C++ API that the CLI-based pytest tests cannot reach:
// exceptions by type, pixel import, mask round trip, batching and concurrent use.
//   qtseg_api_test [ARTIFACT_DIR IMAGE [CALLS_PER_THREAD]]
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "qtseg/qtseg.hpp"

namespace {

int passed = 0;
int failed = 0;

void check(bool ok, const std::string& what) {
  (ok ? passed : failed) += 1;
  if (!ok) std::cerr << "FAILED: " << what << "\n";
}

template <typename E>
void check_throws(const std::function<void()>& body, const std::string& what, const std::string& needle) {
  try {
    body();
    check(false, what + " (no exception)");
  } catch (const E& e) {
    check(std::string(e.what()).find(needle) != std::string::npos, what + " (message: " + e.what() + ")");
  } catch (const std::exception& e) {
    check(false, what + " (wrong exception type: " + e.what() + ")");
  }
}

void test_pixels() {
  const std::vector<uint8_t> bgra = {10, 20, 30, 255, 40, 50, 60, 0};
  const qtseg::Image image = qtseg::image_from_pixels(bgra.data(), 1, 2, 4, 0, qtseg::PixelOrder::BGR);
  check(image.pixels == std::vector<uint8_t>({30, 20, 10, 60, 50, 40}), "BGRA import swaps to RGB and drops alpha");
  const std::vector<uint8_t> gray = {7, 9};
  check(qtseg::image_from_pixels(gray.data(), 2, 1, 1).pixels == std::vector<uint8_t>({7, 7, 7, 9, 9, 9}),
        "gray import is replicated");
  check_throws<qtseg::ImageError>([&] { qtseg::image_from_pixels(gray.data(), 1, 1, 5); }, "5 channels rejected",
                                  "channels");
  const std::vector<uint8_t> junk = {'G', 'I', 'F', '8', '9', 'a'};
  check_throws<qtseg::ImageError>([&] { qtseg::decode_image(junk.data(), junk.size(), "junk.gif"); },
                                  "GIF bytes rejected", "not a PNG or JPEG");
  const std::vector<uint8_t> truncated_png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0};
  check_throws<qtseg::ImageError>([&] { qtseg::decode_image(truncated_png.data(), truncated_png.size(), "t.png"); },
                                  "truncated PNG rejected", "t.png");
  check_throws<qtseg::ImageError>([] { qtseg::read_image("/nonexistent/x.png"); }, "missing file", "/nonexistent/x.png");
}

void test_mask_round_trip(const std::string& tmp) {
  qtseg::Mask mask{2, 3, {0, 1, 2, 2, 1, 0}};
  const std::string path = tmp + "/qtseg_api_test_mask.png";
  qtseg::write_mask_png(path, mask, 3);
  const qtseg::Image read = qtseg::read_image(path);
  std::vector<uint8_t> red;
  for (std::size_t i = 0; i < read.pixels.size(); i += 3) red.push_back(read.pixels[i]);
  check(red == std::vector<uint8_t>({0, 128, 255, 255, 128, 0}), "scaled 3-class mask is 0/128/255");
  qtseg::write_mask_png(path, mask, 3, qtseg::MaskEncoding::kLabels);
  const qtseg::Image labels = qtseg::read_image(path);
  check(labels.pixels[3] == 1 && labels.pixels[6] == 2, "label mask keeps class indices");
  std::remove(path.c_str());
}

void test_postprocess_ties() {
  // Equal logits everywhere: arg-max ties go to class 0; a NaN wins like numpy.argmax.
  std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  check(qtseg::postprocess(logits.data(), 2, 2, 2, 3, 3).labels == std::vector<uint8_t>(9, 0), "ties -> class 0");
  logits[4] = NAN;
  check(qtseg::postprocess(logits.data(), 2, 2, 2, 2, 2).labels[0] == 1, "NaN -> its class, as numpy.argmax");
}

void test_model(const std::string& artifact, const std::string& image_path) {
  const qtseg::Segmenter seg(artifact);
  const qtseg::Image image = qtseg::read_image(image_path);
  const qtseg::PreprocessSpec& spec = seg.spec();

  qtseg::Tensor wrong({1, 3, spec.input_height / 2, spec.input_width});
  check_throws<qtseg::ShapeError>([&] { seg.infer(wrong); }, "wrong spatial size rejected", "expects");
  qtseg::Tensor four({1, 4, spec.input_height, spec.input_width});
  check_throws<qtseg::ShapeError>([&] { seg.infer(four); }, "4-channel tensor rejected", "expects");

  // A batch of 3 equals three single runs (fixed-batch models run in chunks).
  const qtseg::Tensor one = seg.infer(seg.preprocess({image}));
  const qtseg::Tensor three = seg.infer(seg.preprocess({image, image, image}));
  check(three.shape[0] == 3 && three.data.size() == 3 * one.data.size(), "batch of 3 has 3 samples");
  float diff = 0.0f;
  for (std::size_t i = 0; i < three.data.size(); ++i) {
    diff = std::max(diff, std::fabs(three.data[i] - one.data[i % one.data.size()]));
  }
  check(diff <= 1e-4f, "batched logits equal single logits (max diff " + std::to_string(diff) + ")");

  // NaN/Inf: refused on the way in, with this call's sample index (also when run in chunks).
  qtseg::Tensor poisoned = seg.preprocess({image, image, image});
  poisoned.data[poisoned.data.size() / 3 + 5] = NAN;
  try {
    seg.infer(poisoned);
    check(false, "NaN input refused (no exception)");
  } catch (const qtseg::NonFiniteError& e) {
    check(e.samples() == std::vector<int64_t>{1}, std::string("NaN input names sample 1: ") + e.what());
  }

  // The runtime reports the manifest's properties back (OpenVINO: the compiled model's).
  const auto applied = seg.backend().runtime_properties();
  for (const auto& [key, value] : seg.manifest().runtime.properties) {
    const auto it = applied.find(key);
    check(it != applied.end() && it->second == value, "runtime property " + key + "=" + value + " in effect");
  }

  // Concurrent segment() calls on one Segmenter give the sequential result.
  const qtseg::Mask reference = seg.segment(image);
  std::vector<qtseg::Mask> results(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] { results[t] = seg.segment(image); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& mask : results) check(mask.labels == reference.labels, "concurrent segment() equals sequential");
  check(reference.height == image.height && reference.width == image.width, "mask has the image size");
}

/// 4 threads x `calls` infer() calls on one Segmenter, each thread with its own
/// input: every result equals, bit for bit, the single-threaded result for that
/// input (a shared infer request would mix inputs or fail as busy).
void test_threads(const std::string& artifact, const std::string& image_path, int calls) {
  const qtseg::Segmenter seg(artifact);
  const qtseg::Tensor base = seg.preprocess({qtseg::read_image(image_path)});
  constexpr int kThreads = 4;
  std::vector<qtseg::Tensor> inputs, expected;
  for (int t = 0; t < kThreads; ++t) {
    qtseg::Tensor x = base;
    for (float& v : x.data) v = v * (1.0f - 0.2f * static_cast<float>(t));  // a different image per thread
    expected.push_back(seg.infer(x));
    inputs.push_back(std::move(x));
  }
  std::vector<int> mismatches(kThreads, 0), errors(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < calls; ++i) {
        try {
          const qtseg::Tensor y = seg.infer(inputs[t]);
          const bool same = y.shape == expected[t].shape &&
                            std::memcmp(y.data.data(), expected[t].data.data(), y.data.size() * sizeof(float)) == 0;
          mismatches[t] += same ? 0 : 1;
        } catch (const std::exception&) {
          errors[t] += 1;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    check(errors[t] == 0, "thread " + std::to_string(t) + ": " + std::to_string(errors[t]) + " calls threw");
    check(mismatches[t] == 0, "thread " + std::to_string(t) + ": " + std::to_string(mismatches[t]) + " of " +
                                  std::to_string(calls) + " results differ from the single-threaded ones");
  }
  bool distinct = true;
  for (int t = 1; t < kThreads; ++t) distinct = distinct && expected[t].data != expected[0].data;
  check(distinct, "the threads' inputs give different logits (so a mix-up would show)");
  std::cout << "threads: " << kThreads << " x " << calls << " infer() calls, bit-identical to single-threaded\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    test_pixels();
    test_mask_round_trip(std::filesystem::temp_directory_path().string());
    test_postprocess_ties();
    if (argc > 2) test_model(argv[1], argv[2]);
    if (argc > 3) test_threads(argv[1], argv[2], std::stoi(argv[3]));
  } catch (const std::exception& e) {
    check(false, std::string("unexpected exception: ") + e.what());
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
