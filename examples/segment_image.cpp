// Minimal qtseg application: artifact + image in, binary/label mask PNG out.
//   segment_image ARTIFACT_DIR IMAGE MASK.png
#include <iostream>

#include <qtseg/qtseg.hpp>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: segment_image ARTIFACT_DIR IMAGE MASK.png\n";
    return 2;
  }
  try {
    const qtseg::Segmenter segmenter(argv[1]);  // reads manifest.json + preprocess.json, loads the model
    const qtseg::Image image = qtseg::read_image(argv[2]);
    const qtseg::Mask mask = segmenter.segment(image);  // preprocess -> infer -> resize back + arg-max
    qtseg::write_mask_png(argv[3], mask, segmenter.spec().num_classes);

    std::size_t foreground = 0;
    for (uint8_t label : mask.labels) foreground += label != 0;
    std::cout << argv[2] << ": " << mask.width << "x" << mask.height << ", "
              << 100.0 * static_cast<double>(foreground) / static_cast<double>(mask.labels.size())
              << "% foreground (backend " << segmenter.backend().name() << ")\n";
  } catch (const qtseg::Error& e) {
    std::cerr << "segment_image: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
